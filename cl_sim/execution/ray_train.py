"""The Ray executor: phases run on long-lived Ray Train worker groups, states live in a store actor.

    from cl_sim.execution.ray_train import make_executor
    executor = make_executor(cfg, Store(cfg.execution.store_dir), tasks)   # starts or joins Ray
    rec = run_stream(cfg, tasks, executor, ordering)                       # same loop as local
    executor.shutdown()                                                    # the driver that made it

    cl-sim run execution.executor=ray execution.num_workers=2             # DDP with 2 workers

Pieces (docs/ray.md has the picture):
    store actor  `cl_sim.execution.store_actor`  owns every finished state (object refs) and
                 writes the durable store; claims make concurrent requests train a phase once.
    phase pool   `cl_sim.execution.phase_pool`   `execution.slots` TorchTrainers started once,
                 shared by every run and Tune trial on the same store and scaling settings.
    pool loop    `cl_sim.execution.pool_worker`  what each Train worker runs: pull a job, run
                 `run_phase` (DDP via `prepare_model`), report a checkpoint per epoch.

The executor itself is thin: it turns `run(phase)` into a pool call and counts what was trained
and what was reused. Trials of a sweep call `make_executor` too (it finds the actors by name)
and `close()` when done; `shutdown()` stops the pool only in the executor that started it.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import ray

from cl_sim.config import Config, ExecutionConfig
from cl_sim.data.task import Task
from cl_sim.execution.local import eval_key
from cl_sim.execution.phase_pool import NAMESPACE, PhasePool, pool_name
from cl_sim.execution.pool_size import await_nodes, size_pool
from cl_sim.execution.ray_logs import quiet_ray_driver_logs
from cl_sim.execution.store_actor import RayStoreClient, this_node
from cl_sim.errors import CLSimError, PhaseFailed
from cl_sim.storage import resolve as resolve_root
from cl_sim.phases import Phase, job_fingerprint

__all__ = ["RayExecutor", "make_executor", "init_ray", "pool_spec"]


class RayExecutor:
    """`run(phase) -> key` and `evaluate(dep, task)` on the phase pool; `store` is the store actor.

    Thread-safe: several threads (or `submit`) may run phases at once; the pool runs as many
    as it has slots and queues the rest.
    """

    thread_safe = True  # read by cl_sim.timeline to run independent arrivals concurrently

    def __init__(self, store: RayStoreClient, pool, tasks: dict[str, Task], log: Callable[[str], None],
                 owns_ray: bool = False, owns_pool: bool = False):
        self.store, self.pool, self.tasks, self.log = store, pool, dict(tasks), log
        self.trained, self.reused, self.evaluated = 0, 0, 0
        self.overheads: list[float] = []  # per trained phase: round trip - time on the worker (s)
        self.owns_ray, self.owns_pool = owns_ray, owns_pool
        self._lock = threading.Lock()

    def submit(self, phase: Phase) -> concurrent.futures.Future:
        """Start `phase` (or find it in the store) without waiting; the future's result is its key."""
        key = phase.key()
        if self.store.has(key):
            self._count(reused=1)
            done: concurrent.futures.Future = concurrent.futures.Future()
            done.set_result(key)
            return done
        start = time.perf_counter()
        ref = self.pool.run.remote(phase.to_dict(), key, phase.data_hash, job_fingerprint(phase.backbone))
        future = ref.future()
        out: concurrent.futures.Future = concurrent.futures.Future()
        future.add_done_callback(lambda f: self._settle(phase, f, out, start))
        return out

    def run(self, phase: Phase) -> str:
        return self.submit(phase).result()

    def _settle(self, phase: Phase, future: concurrent.futures.Future, out: concurrent.futures.Future,
                start: float) -> None:
        # Runs on a Ray callback thread: whatever happens, `out` must resolve or callers hang.
        try:
            info = future.result()
            if info["trained"]:
                self._count(trained=1)
                self.overheads.append(time.perf_counter() - start - info["slot_wall_s"])
                resumed = info.get("resumed_from_epoch")
                note = f", resumed after epoch {resumed}" if resumed is not None else ""
                self.log(f"train {phase.kind:<8} {phase.task:<12} {info['key']}  {info['slot_wall_s']:.1f} s{note}")
            else:
                self._count(reused=1)  # another run or trial trained it while we asked
            out.set_result(info["key"])
        except BaseException as exc:  # the phase failed on the cluster: the caller sees its error
            out.set_exception(_failure(exc, f"phase {phase.kind} of task {phase.task} ({phase.key()})"))

    def _count(self, trained: int = 0, reused: int = 0) -> None:
        with self._lock:
            self.trained += trained
            self.reused += reused

    def evaluate(self, dep, task: Task) -> tuple[float, Optional[list]]:
        """Score a deployed task on its eval split; computed on a pool worker, cached in the store."""
        key = eval_key(dep, task, task.eval_split)
        cached = self.store.score(key)
        if cached is not None:
            return cached
        self._register(task)
        try:
            score, attention = ray.get(self.pool.evaluate.remote(dataclasses.asdict(dep), task.data_hash(), key))
        except BaseException as exc:
            raise _failure(exc, f"evaluation of task {task.name}") from None
        with self._lock:
            self.evaluated += 1
        return score, attention

    def _register(self, task: Task) -> None:
        """Make sure the cluster holds the task's data (tasks given later than construction)."""
        if self.tasks.get(task.name) is not task:
            self.tasks[task.name] = task
            self.store.register_tasks({task.name: task})

    def status(self) -> dict:
        return ray.get(self.pool.status.remote())

    def close(self) -> None:
        """Release what this executor holds: stop the pool if it created it (`shutdown`), else only
        forget it (Tune trials sharing the driver's pool); detach from the store actor either way."""
        if self.owns_pool:
            self.shutdown()
        self.pool = None
        self.store.close()

    def shutdown(self, stop_ray: Optional[bool] = None, force: bool = False) -> None:
        """Stop the pool's worker groups and the actors if this executor started them (or `force`),
        and Ray if `make_executor` started it (or `stop_ray`). Idempotent; also runs at exit."""
        if self.pool is not None and (self.owns_pool or force) and ray.is_initialized():
            try:
                ray.get(self.pool.stop.remote())
            except Exception as exc:  # a hung or dead pool must not keep the driver from exiting
                self.log(f"phase pool did not stop cleanly ({type(exc).__name__}); killing it")
            ray.kill(self.pool)
        self.pool = None
        if ray.is_initialized():
            self.store.close()
        if (stop_ray if stop_ray is not None else self.owns_ray) and ray.is_initialized():
            ray.shutdown()


def _unwrap(exc: BaseException) -> BaseException:
    """The user's exception from a Ray task error (our errors carry the message users need)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _failure(exc: BaseException, what: str) -> BaseException:
    """The error a caller sees when `what` failed on the cluster: our own errors (bad input, a corrupt
    store) as they are; anything else as one `PhaseFailed` line with the cause's first line and where
    the worker's full log is."""
    exc = _unwrap(exc)
    if isinstance(exc, (CLSimError, KeyboardInterrupt)):
        return exc
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [""]
    if lines[0].startswith("Traceback"):  # an unpicklable error sent as its traceback (`_portable`)
        cause = lines[-1]  # ends with the exception's own `Type: message` line
    else:
        cause = f"{type(exc).__name__}: {lines[0]}"
    where = getattr(exc, "cl_sim_where", None) or "on the Ray cluster (`ray logs`, or the dashboard's Jobs page)"
    return PhaseFailed(f"{what} failed: {cause[:300]} [{where}]")


def pool_spec(cfg: Config, store_root: Path, store_actor: str, job: str) -> dict:
    """Plain-dict settings of the pool (part of its name: other settings get another pool).
    `store_actor`: the store actor's name; `job`: the Ray job id that owns the pool."""
    ex = cfg.execution
    threads = cfg.training.threads or max(1, round(ex.cpus_per_worker))  # 1.98 CPUs (a sliver kept for trials): 2
    return {"job": job, "store_root": str(store_root), "store_actor": store_actor, "num_workers": ex.num_workers,
            "use_gpu": ex.use_gpu, "cpus_per_worker": ex.cpus_per_worker, "slots": ex.slots,
            "max_failures": ex.max_failures, "threads": threads, "eval_batch_size": cfg.training.eval_batch_size,
            "checkpoint_every_s": ex.checkpoint_every_s}


def init_ray(ex: ExecutionConfig, log: Callable[[str], None] = print) -> bool:
    """Join the running Ray (inside a job or trial), the cluster at `execution.address`, or start a
    local one. Returns True when this call started Ray (then the caller owns its shutdown)."""
    if ray.is_initialized():
        return False
    from cl_sim.execution.devices import job_runtime_env
    from cl_sim.progress import QUIET, verbosity

    # --quiet: a failed phase is one line naming it, the cause and where its log is, not a worker
    # traceback of dozens of lines
    common = dict(namespace=NAMESPACE, logging_level=logging.WARNING, runtime_env=job_runtime_env(),
                  log_to_driver=verbosity() > QUIET)
    if ex.address is not None or os.environ.get("RAY_ADDRESS"):  # `ray job submit` sets RAY_ADDRESS
        ray.init(address=ex.address, **common)
        quiet_ray_driver_logs()
        log(f"ray: joined {ex.address or os.environ['RAY_ADDRESS']}")
        return False
    need = ex.slots * ex.num_workers * ex.cpus_per_worker
    cpus = max(os.cpu_count() or 1, math.ceil(need))
    # The dashboard costs ~1.5 s at start, but without it Ray Train V2 floods the log with
    # "PlacementGroupCleaner ... Failed to query" lines (RAY-NOTES.md): readable logs win.
    ray.init(num_cpus=cpus, include_dashboard=True, configure_logging=True, **common)
    quiet_ray_driver_logs()
    log(f"ray: started a local cluster with {cpus} CPUs")
    return True


def make_executor(cfg: Config, store, tasks: dict[str, Task], log: Optional[Callable[[str], None]] = None
                  ) -> RayExecutor:
    """Start or join Ray, the store actor and the phase pool; return an executor over them.

    Args:
        cfg: the run's config (`execution` section: workers, GPU, CPUs per worker, slots,
            address, max_failures, store folder).
        store: the core `Store` (or anything with `.root`): its folder names the store actor.
        tasks: every task the run may touch; their data is shipped to the cluster once.
        log: one-line progress messages (default: print, indented like the local executor's).
    """
    log = log or (lambda m: print(f"  {m}", flush=True))
    root = resolve_root(getattr(store, "root", cfg.execution.store_dir))
    owns_ray = init_ray(cfg.execution, log)
    if not (cfg.execution.slots and cfg.execution.cpus_per_worker):  # not sized yet (`resolve` sizes)
        nodes = await_nodes(cfg.execution, log)
        cfg = cfg.replace(execution=size_pool(cfg.execution, nodes))
    client = RayStoreClient.start(root)
    client.register_tasks(tasks)
    spec = pool_spec(cfg, root, client.name, ray.get_runtime_context().get_job_id())
    pool = PhasePool.options(name=pool_name(spec), namespace=NAMESPACE, get_if_exists=True,
                             max_concurrency=1000, scheduling_strategy=this_node()).remote(spec)
    fresh = ray.get(pool.start.remote())["fresh"]
    if fresh:  # trials joining a running pool stay quiet
        ex = cfg.execution
        log(f"ray: phase pool with {ex.slots} slot(s) x {ex.num_workers} worker(s) "
            f"({'GPU' if ex.use_gpu else f'{ex.cpus_per_worker:g} CPU'} each, {spec['threads']} torch threads); "
            f"store {root}")
    executor = RayExecutor(client, pool, tasks, log, owns_ray=owns_ray, owns_pool=fresh)
    if fresh:  # a driver that never calls shutdown() (e.g. `cl-sim run`) still stops its trainers
        atexit.register(executor.shutdown)  # cleanly, before Ray's own exit hook (registered earlier)
    return executor
