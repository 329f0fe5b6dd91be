"""One way to run a thing: the `Executor` protocol and `open_executor`, for the CLI, the sweeps,
the experiments and the tenants script alike.

    cfg = resolve(cfg, default="ray")            # executor chosen; for ray: Ray up, pool sized
    executor = open_executor(cfg, tasks)         # LocalExecutor or RayExecutor
    try:
        rec = run_stream(cfg, tasks, executor, ordering)
    finally:
        executor.close()

`execution.executor=auto` (the default) means the Ray Train phase pool for experiments and for
any run against a cluster (`execution.address` or `$RAY_ADDRESS`, as under `ray job submit`),
else the in-process executor; `local`/`ray` choose explicitly (`--local` on the command lines).
The resolved config says which ran (`executor: local|ray`, the pool's shape). Ray started here
stays up until the process exits: a pool is stopped by the executor that started it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from concurrent.futures import Future
from typing import Callable, Iterator, Optional, Protocol

from cl_sim.config import Config
from cl_sim.data.task import Task

Log = Callable[[str], None]


class Executor(Protocol):
    """Runs phases and evaluations; every finished phase is in `store` (a `Store` or the store
    actor's client). `trained` / `reused` count phases this executor trained / found finished."""

    store: object
    trained: int
    reused: int
    overheads: list  # per trained phase: round trip minus time on its worker, s (empty in-process)
    thread_safe: bool  # may several threads run phases at once (the timeline's concurrent arrivals)

    def run(self, phase) -> str:
        """Train `phase` (or find it in the store); returns its store key."""

    def submit(self, phase) -> Future:
        """`run` without waiting (the future's result is the key); synchronous in-process."""

    def evaluate(self, dep, task: Task) -> tuple[float, Optional[list]]:
        """Score a deployment on its task's eval split: (score, fusion attention or None)."""

    def close(self) -> None:
        """Release what this executor started (a phase pool it created); idempotent."""


def executor_kind(cfg: Config, default: str = "local") -> str:
    """`local` or `ray`: as configured, or for `auto` ray against a cluster, else `default`."""
    ex = cfg.execution
    if ex.executor != "auto":
        return ex.executor
    return "ray" if ex.address is not None or os.environ.get("RAY_ADDRESS") else default


def resolve(cfg: Config, default: str = "local", parallel: int = 1, log: Log = print) -> Config:
    """The config a run executes with: `execution.executor` local or ray and, for ray, the pool's
    shape sized from the cluster (`pool_size.size_pool`; Ray is joined or started here).

    Args:
        default: what `auto` means off a cluster (`ray` for experiments, `local` for `cl-sim run`).
        parallel: phases the work can run at once (sweep: trials; run: 1; tenants: slots).
    """
    kind = executor_kind(cfg, default)
    ex = dataclasses.replace(cfg.execution, executor=kind)
    if kind == "ray":
        from cl_sim.execution.pool_size import await_nodes, size_pool
        from cl_sim.execution.ray_train import init_ray

        init_ray(ex, log)
        ex = size_pool(ex, await_nodes(ex, log), parallel)
    return cfg.replace(execution=ex)


def open_executor(cfg: Config, tasks: dict[str, Task], threads: int = 0, log: Optional[Log] = None,
                  default: str = "local") -> Executor:
    """The executor `cfg` asks for (resolved with `resolve` if it is not yet), over the store at
    `execution.store_dir`. `threads`: torch threads of an in-process executor when
    `training.threads` is 0 (0 = every core)."""
    from cl_sim.store import Store

    from cl_sim.progress import say

    log = log or (lambda m: say(f"  {m}"))
    cfg = resolve(cfg, default, log=log)
    store = Store(cfg.execution.store_dir)
    if cfg.execution.executor == "ray":
        from cl_sim.execution.ray_train import make_executor

        return make_executor(cfg, store, tasks, log=log)
    from cl_sim.execution.local import LocalExecutor, local_device

    return LocalExecutor(store, tasks, cfg.training.threads or threads, log=log,
                         device=local_device(cfg.execution.use_gpu), eval_batch_size=cfg.training.eval_batch_size)


def overhead_line(cfg: Config, opened_s: float, overheads: list[float]) -> str:
    """One line: the pool's shape, the one-time start-up and the per-phase overhead.

    `overheads`: per trained phase, the caller's round trip minus the phase's time on its worker,
    in the order they finished; the first also holds the worker groups' start-up (lazy)."""
    from cl_sim.execution.pool_size import shape_line

    ex = cfg.execution
    if ex.executor != "ray":
        return "executor: local (phases in this process)"
    first, rest = (overheads[0], overheads[1:]) if overheads else (0.0, [])
    per = f"{statistics.median(rest):+.2f} s median over {len(rest)}" if rest else "- (one phase or none)"
    return (f"ray: phase pool {shape_line(ex)}; start-up {opened_s + first:.1f} s once (Ray, actors, "
            f"worker groups); per phase {per} (dispatch, state transfer, reports, queueing)")


@dataclasses.dataclass
class Session:
    """What `open_session` opened: the resolved config (executor, pool shape), the executor, and how
    long opening took (Ray start or join, sizing; the pool's worker groups start with the first phase)."""

    cfg: Config
    executor: Executor
    opened_s: float

    def overhead_line(self) -> str:
        return overhead_line(self.cfg, self.opened_s, self.executor.overheads)


@contextlib.contextmanager
def open_session(cfg: Config, tasks: dict[str, Task], default: str = "local", parallel: int = 1,
                 threads: int = 0, log: Optional[Log] = None) -> Iterator[Session]:
    """The one door to execution: choose local or Ray (`resolve`: start or join Ray, size the pool),
    open the executor (torch threads set there), and close it however the block ends.

        with open_session(cfg, tasks, default="ray") as session:
            rec = run_stream(session.cfg, tasks, session.executor, order)
        print(session.overhead_line())
    """
    from cl_sim.progress import say

    start = time.perf_counter()
    cfg = resolve(cfg, default, parallel, log=log or say)  # progress: stderr
    executor = open_executor(cfg, tasks, threads=threads, log=log)
    try:
        yield Session(cfg, executor, time.perf_counter() - start)
    finally:
        executor.close()
