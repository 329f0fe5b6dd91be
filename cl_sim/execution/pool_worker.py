"""The train loop of a phase-pool slot: one Ray Train worker group serving many phases.

Rank 0 asks the pool for a job and broadcasts it to the other ranks (torch.distributed), every
rank runs `cl_sim.train.run_phase` with a `Dist` whose `wrap` is `ray.train.torch.prepare_model`
(DDP when there are several workers), and rank 0 puts the states into the store actor and
answers the pool. After every epoch all ranks call `ray.train.report` (it is a barrier) and rank
0 attaches a checkpoint of the trainable weights and optimizer state: when a worker is lost,
Ray Train restarts the group, the pool hands the same job back, and the phase continues from
that checkpoint instead of starting over.
"""
from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

import ray
import ray.train
import torch

from cl_sim.execution.ray_logs import quiet_report_log
from cl_sim.execution.store_actor import NAMESPACE, RayStoreClient

IDLE_POLL_S = 10.0  # an idle rank 0 re-polls this often, so other ranks never sit in a broadcast for long

# Test hook: when this env var names an existing file, rank 0 deletes the file and exits hard
# right after reporting its first checkpoint (simulates a lost worker, once per file).
CRASH_ENV = "CL_SIM_TEST_CRASH_FILE"
FAIL_RANK_ENV = "CL_SIM_TEST_FAIL_RANK_FILE"  # tests: while this file exists, rank 1 raises mid-phase


def pool_loop(config: dict) -> None:
    """Serve pool jobs until a `stop` job arrives (the `train_loop_per_worker` of a slot)."""
    torch.set_num_threads(config["threads"])  # Ray sets OMP_NUM_THREADS=1 in workers
    quiet_report_log()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar per worker and backbone, prefixed by Ray
    from cl_sim.execution.devices import ddp_wrap, worker_device
    from cl_sim.phases import Dist

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = torch.device(worker_device(config["use_gpu"]))
    dist = Dist(rank=rank, world_size=world, wrap=lambda m: ddp_wrap(m, str(device), world), device=str(device),
                eval_batch_size=config["eval_batch_size"])
    pool = ray.get_actor(config["pool"], namespace=NAMESPACE)
    store = RayStoreClient.connect(config["store_root"], config["store_actor"])
    resume = load_checkpoint(ray.train.get_checkpoint())
    while True:
        job = next_job(pool, config["slot"]) if rank == 0 else None
        job = share(job, world, device)
        if job is None:
            continue
        if job["op"] == "stop":
            return
        mine = resume is not None and (resume["job"], resume["key"]) == (job["id"], job.get("key"))
        state = resume if mine else None
        resume = None  # a checkpoint belongs to one job: never resume a later one from it
        result, error = None, None
        try:
            result = run_job(job, store, dist, state, config["checkpoint_every_s"])
        except Exception as exc:  # report the failure to the caller; keep serving other jobs
            error = _portable(exc)
            error.cl_sim_where = where(rank)  # the caller's one-line error says where the log is
            if world > 1:  # the other ranks may wait in a collective this rank will never join:
                # fail the job now (its caller sees this error), then take the worker group down
                ray.get(pool.finish.remote(config["slot"], job["id"], None, error))
                raise
        if rank == 0:
            ray.get(pool.finish.remote(config["slot"], job["id"], result, error))


def next_job(pool, slot: int) -> Optional[dict]:
    """The pool's next job for this slot; a `stop` when the pool is gone (its driver exited)."""
    try:
        return ray.get(pool.next_job.remote(slot, IDLE_POLL_S))
    except ray.exceptions.RayActorError:
        return {"op": "stop"}


def share(job, world: int, device):
    """Rank 0's job (or decision) on every rank."""
    if world == 1:
        return job
    box = [job]
    torch.distributed.broadcast_object_list(box, src=0, device=device if device.type != "cpu" else None)
    return box[0]


def run_job(job: dict, store: RayStoreClient, dist, resume: Optional[dict], every_s: float) -> Optional[dict]:
    """Run one phase or evaluation job; rank 0 writes the result to the store."""
    task = store.task(job["task"])
    if job["op"] == "eval":
        return _evaluate(job, task, store, dist)
    from cl_sim.phases import Phase, phase_meta
    from cl_sim.train import run_phase

    key = job["key"]
    if store.has(key):  # finished before a crash that came between `put` and `finish`
        return {"slot_wall_s": 0.0, "resumed_from_epoch": None}
    phase = Phase.from_dict(job["phase"])
    marker = os.environ.get(FAIL_RANK_ENV)
    if marker and dist.rank == 1 and os.path.exists(marker):
        raise RuntimeError("injected failure on rank 1 (test hook)")  # rank 0 goes on into DDP's first all-reduce
    cuda = dist.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    checkpointer = Checkpointer(job, dist, every_s)
    out = run_phase(phase, task, store, dist, resume=resume["state"] if resume else None, checkpoint=checkpointer)
    info = {"slot_wall_s": time.perf_counter() - start, "checkpoints": checkpointer.reports,
            "resumed_from_epoch": resume["state"]["epoch"] if resume else None,
            "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}
    if dist.rank == 0:
        from cl_sim.execution.devices import runtime_record

        execution = {"executor": "ray", **runtime_record(dist.device, dist.world_size),
                     "node_id": ray.get_runtime_context().get_node_id(), **info}
        # the fingerprint the driver computed the key with (one per job): a node with another torch
        # build or image must not record a different one for the same key
        store.put(key, out.states, phase_meta(phase, out.metrics, out.attention, execution=execution,
                                              stamp=job.get("fingerprint")))
    return info


def _evaluate(job: dict, task, store: RayStoreClient, dist) -> Optional[dict]:
    if dist.rank != 0:  # evaluation is cheap and not data-parallel: other ranks wait for the next job
        return None
    from cl_sim.methods.base import Deployed
    from cl_sim.train import evaluate_deployed

    score, attention = evaluate_deployed(Deployed(**job["dep"]), task, store, device=dist.device,
                                         batch_size=dist.eval_batch_size)
    store.put_score(job["key"], score, attention, refs=sorted({k for k in job["dep"].values() if k}))
    return {"score": score, "attention": attention}


class Checkpointer:
    """`run_phase`'s per-epoch callback: reports the epoch (with its checkpoint) when `every_s`
    seconds have passed since the phase started or last reported. Rank 0's clock decides for every
    rank (`ray.train.report` must be called by all ranks alike, or the group stalls)."""

    def __init__(self, job: dict, dist, every_s: float):
        self.job, self.dist, self.every_s = job, dist, every_s
        self.last = time.monotonic()
        self.reports = 0  # checkpoints this phase reported (recorded in its store entry)

    def __call__(self, state: dict) -> None:
        due = share(time.monotonic() - self.last >= self.every_s, self.dist.world_size, torch.device(self.dist.device))
        if due:
            report_epoch(self.job, state, self.dist.rank)
            self.reports += 1
            self.last = time.monotonic()


def report_epoch(job: dict, state: dict, rank: int) -> None:
    """Report an epoch to Ray Train; rank 0 attaches the phase's resumable state."""
    metrics = {"job": job["id"], "epoch": state["epoch"], "steps": state["steps"]}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"job": job["id"], "key": job["key"], "state": state}, Path(tmp) / "phase.pt")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    _maybe_crash()


def load_checkpoint(checkpoint) -> Optional[dict]:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as path:
        return torch.load(Path(path) / "phase.pt", weights_only=True, map_location="cpu")


def _maybe_crash() -> None:
    marker = os.environ.get(CRASH_ENV)
    if marker and os.path.exists(marker):
        os.remove(marker)
        time.sleep(3.0)  # let the controller (polling every 0.2 s) register the checkpoint just reported
        os._exit(1)


def where(rank: int) -> str:
    """`rank 1, node gpu-3 (pid 4242), logs in /tmp/ray/session_.../logs`: where a failure happened."""
    import socket

    node = getattr(ray._private.worker.global_worker, "node", None)
    logs = getattr(node, "get_logs_dir_path", lambda: None)()
    return f"rank {rank}, node {socket.gethostname()} (pid {os.getpid()})" + (f", logs in {logs}" if logs else "")


def _portable(exc: Exception) -> Exception:
    """The exception itself when it pickles (callers can catch its type), else its text."""
    import pickle

    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, Exception):
        exc = exc.cause  # e.g. a StoreError raised inside the store actor
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return RuntimeError("".join(traceback.format_exception(exc)))
