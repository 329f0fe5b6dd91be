"""The phase pool: long-lived Ray Train worker groups that run many phases each.

A `TorchTrainer.fit()` costs ~15 s of fixed start-up (RAY-NOTES.md), more than many phases
take. So the pool starts `slots` trainers once; each trainer's train loop
(`cl_sim.execution.pool_worker.pool_loop`) asks the pool for the next job, runs it and
answers, until the pool tells it to stop. The driver's run and every Tune trial of its job share
these worker groups (the pool is a named actor of the job).

    pool = PhasePool.options(name=pool_name(spec), namespace="cl_sim").remote(spec)
    ray.get(pool.start.remote())
    info = ray.get(pool.run.remote(phase_dict, key, data_hash, stamp))   # {"key", "trained", ...}

Lifetime: one pool per Ray job (its name holds the job id), owned by the job's driver. Another
job on the same cluster and store gets its own pool, so one job's exit or `shutdown()` never
takes down a phase another job waits for; the jobs share the store actor, whose claims make a
phase both want train once.

Jobs: `phase` (train and store), `eval` (score a deployment, cache the score), `stop`; served
evaluations first, then phases, then stops (`PRIORITY`), each kind in order of arrival.
A phase is claimed in the store when a slot takes it, not when it is queued, and its lease is
renewed only while the slot runs it: a pool whose trainers wait for resources holds no claim
another job's running pool would wait on (two pools of different shapes cannot deadlock).
A job stays assigned to its slot until the slot answers `finish`: when Ray Train restarts a
lost worker group (`FailureConfig`), the restarted loop asks again and gets the same job back,
and resumes it from the checkpoint it reported after its last finished epoch.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from typing import Any, Optional

import ray

from cl_sim.execution.store_actor import LEASE_S, NAMESPACE, this_node
from cl_sim.storage import resolve as resolve_root
from cl_sim.storage import remove_train_run, train_storage

log = logging.getLogger("cl_sim.pool")

# Ray Train's controller polls workers every 2 s by default and each `report` waits for it
# (~1.4 s per report, RAY-NOTES.md); the preemption watcher prints a core_worker error line per
# start. Both are read in the process that calls fit() and propagated to controller and workers.
TRAIN_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}

# Evaluations go first: they take a second and each unblocks a caller that then queues its next
# phase, so the slots stay busy; `stop` goes last, after every queued job ("let queued jobs finish").
PRIORITY = {"eval": 0, "phase": 1, "stop": 2}

MAX_SLOT_RESTARTS = 3  # consecutive trainer failures without a finished job before a slot gives up


def pool_name(spec: dict) -> str:
    """One pool per job, store and shape (the driver's trials find it; other jobs make their own)."""
    shape = f"w{spec['num_workers']}-{'gpu' if spec['use_gpu'] else 'cpu'}{spec['cpus_per_worker']}-s{spec['slots']}"
    return f"cl_sim_pool:{spec['job']}:{resolve_root(spec['store_root'])}:{shape}"


def loop_config(spec: dict, slot: int, pool: str) -> dict:
    """What every rank of a slot's worker group needs from the pool's settings (`pool_loop`'s config)."""
    keys = ("store_root", "store_actor", "threads", "eval_batch_size", "checkpoint_every_s", "use_gpu")
    return {"pool": pool, "slot": slot, **{k: spec[k] for k in keys}}


@ray.remote(num_cpus=0)
def serve_slot(spec: dict, slot: int, pool: str) -> dict:
    """Run one long-lived TorchTrainer whose loop serves the pool's jobs; returns when stopped."""
    os.environ.update({k: os.environ.get(k, v) for k, v in TRAIN_ENV.items()})
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from cl_sim.execution.devices import torch_backend
    from cl_sim.execution.pool_worker import pool_loop

    resources = {"CPU": spec["cpus_per_worker"], **({"GPU": 1} if spec["use_gpu"] else {})}
    name = f"pool-slot{slot}-{uuid.uuid4().hex[:8]}"
    storage, filesystem = train_storage(spec["store_root"], "checkpoints")  # shared storage: any node resumes
    trainer = TorchTrainer(
        pool_loop,
        train_loop_config=loop_config(spec, slot, pool),
        scaling_config=ScalingConfig(num_workers=spec["num_workers"], use_gpu=spec["use_gpu"],
                                     resources_per_worker=resources),
        torch_config=TorchConfig(backend=torch_backend(spec["use_gpu"])),
        run_config=RunConfig(name=name, storage_path=storage, storage_filesystem=filesystem,
                             failure_config=FailureConfig(max_failures=spec["max_failures"]),
                             checkpoint_config=CheckpointConfig(num_to_keep=1),
                             # INFO prints a line per report (per epoch) and per worker-group start
                             logging_config=LoggingConfig(log_level="WARNING")),
    )
    try:
        trainer.fit()
    finally:  # checkpoints only matter while their job runs; the store keeps the results
        remove_train_run(storage, filesystem, name)
    return {"slot": slot, "run": name}


@ray.remote(num_cpus=0)
class PhasePool:
    """Queue of jobs served by `slots` long-lived Ray Train worker groups (async actor)."""

    def __init__(self, spec: dict):
        self.spec, self.name = spec, pool_name(spec)
        self.store = ray.get_actor(spec["store_actor"], namespace=NAMESPACE)
        self.queue: Optional[asyncio.PriorityQueue] = None  # (PRIORITY[op], job id): FIFO within an op
        self.jobs: dict[int, dict] = {}  # job id -> {"job": ..., "future": ...}
        self.assigned: dict[int, int] = {}  # slot -> job id it holds until `finish`
        self.watchers: dict[int, Any] = {}
        self.ids = itertools.count()
        self.stopping = False
        self.stats = {"trained": 0, "reused": 0, "evaluated": 0, "slot_restarts": 0,
                      "phase_s": 0.0, "eval_s": 0.0}  # slot-seconds spent on each kind of job
        self.since: dict[int, tuple[str, float]] = {}  # slot -> (op, when it took its job)
        self.renewals: dict[int, asyncio.Future] = {}  # slot -> renewal of the claim on the phase it runs
        self.inflight: dict[str, asyncio.Future] = {}  # phase key -> its job's outcome (callers share it)

    async def start(self) -> dict:
        """Get ready to take jobs (idempotent). Worker groups start with the first job, so a run
        whose phases are all in the store never pays for them."""
        fresh = self.queue is None
        if fresh:
            self.queue = asyncio.PriorityQueue()
            await self.store.release_owner.remote(self.name)  # claims a dead predecessor held
        return {"name": self.name, "slots": self.spec["slots"], "fresh": fresh}

    def _launch(self) -> None:
        for slot in range(self.spec["slots"]):
            self.watchers[slot] = asyncio.ensure_future(self._keep_slot(slot))

    async def _keep_slot(self, slot: int) -> None:
        """Run slot `slot` and restart it when its trainer fails for good (max_failures spent)."""
        failures = 0
        while not self.stopping and failures < MAX_SLOT_RESTARTS:
            done_before = self.stats["trained"] + self.stats["evaluated"]
            try:
                await serve_slot.options(runtime_env=self._slot_env(),  # beside the pool (`this_node`)
                                         scheduling_strategy=this_node()).remote(self.spec, slot, self.name)
            except Exception as exc:  # the trainer gave up: fail its job, start a fresh trainer
                self._fail_slot_job(slot, exc)
                progressed = self.stats["trained"] + self.stats["evaluated"] > done_before
                failures = 1 if progressed else failures + 1
                self.stats["slot_restarts"] += 1
                log.warning("pool slot %d: trainer failed (%s); restarting", slot, type(exc).__name__)
                continue
            return
        if not self.stopping and not any(not w.done() for s, w in self.watchers.items() if s != slot):
            while not self.queue.empty():  # no slot left to serve what is queued
                self._fail_job(self.queue.get_nowait()[1], RuntimeError("every phase-pool slot failed"))

    @staticmethod
    def _slot_env() -> dict:
        """Name this cluster for Ray Train's helper actors: its PlacementGroupCleaner finds the
        state API by address auto-detection, which fails (a traceback per check) whenever a
        second Ray instance runs on the machine (parallel test sessions, a `ray start` cluster).
        (Env vars merge with the job's: the driver's forwarded settings stay, `devices.job_runtime_env`.)"""
        return {"env_vars": {"RAY_ADDRESS": ray.get_runtime_context().gcs_address}}

    def _fail_slot_job(self, slot: int, exc: BaseException) -> None:
        job_id = self.assigned.pop(slot, None)
        self._end_claim(slot, job_id, failed=True)
        if job_id is not None:
            self._fail_job(job_id, exc)

    def _end_claim(self, slot: int, job_id: Optional[int], failed: bool) -> None:
        """Stop renewing the claim on the phase `slot` ran; a failed phase releases it so that a
        waiting caller (here or in another job) may train it instead."""
        renewal = self.renewals.pop(slot, None)
        if renewal is not None:
            renewal.cancel()
            job = self.jobs.get(job_id, {}).get("job", {})
            if failed and job.get("op") == "phase":
                self.store.release.remote(job["key"])

    def _fail_job(self, job_id: int, exc: BaseException) -> None:
        entry = self.jobs.pop(job_id, None)
        if entry is not None and not entry["future"].done():
            entry["future"].set_exception(exc)

    async def _submit(self, job: dict) -> Any:
        if self.queue is None:
            await self.start()
        if job["op"] != "stop" and all(w.done() for w in self.watchers.values()):
            self._launch()  # the first job, or every slot gave up earlier: (re)start the trainers
        job["id"] = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.jobs[job["id"]] = {"job": job, "future": future}
        self.queue.put_nowait((PRIORITY[job["op"]], job["id"]))
        return await future

    async def run(self, phase: dict, key: str, data_hash: str, stamp: Optional[dict] = None) -> dict:
        """Train `phase` unless the store has it or someone is training it (then wait for it).

        `stamp`: the fingerprint the caller computed the key with, written into the entry."""
        if await self.store.has.remote(key):
            self.stats["reused"] += 1
            return {"key": key, "trained": False}
        if key in self.inflight:  # another trial of this job asked first: share its outcome
            await asyncio.shield(self.inflight[key])
            self.stats["reused"] += 1
            return {"key": key, "trained": False}
        outcome = self.inflight[key] = asyncio.get_running_loop().create_future()
        try:
            info = await self._submit({"op": "phase", "key": key, "phase": phase, "task": data_hash,
                                       "fingerprint": stamp})
            outcome.set_result(None)
        except BaseException as exc:
            outcome.set_exception(exc)
            outcome.exception()  # retrieved: sharers re-raise it, nobody else needs to
            raise
        finally:
            self.inflight.pop(key, None)
        self.stats["trained" if info.get("trained", True) else "reused"] += 1
        return {"key": key, "trained": True, **info}

    async def _renew(self, key: str) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            await self.store.renew.remote(key, self.name)

    async def evaluate(self, dep: dict, data_hash: str, key: str) -> tuple:
        """Score a deployment on a worker (cached in the store under `key`)."""
        cached = await self.store.score.remote(key)
        if cached is not None:
            return tuple(cached)
        out = await self._submit({"op": "eval", "key": key, "dep": dep, "task": data_hash})
        self.stats["evaluated"] += 1
        return out["score"], out["attention"]

    async def next_job(self, slot: int, timeout: float) -> Optional[dict]:
        """Called by a slot's rank 0: its unfinished job (after a restart), a new job, or None."""
        held = self.assigned.get(slot)
        if held is not None and held in self.jobs:
            return {**self.jobs[held]["job"], "redelivered": True}
        try:
            _, job_id = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if job_id not in self.jobs:  # failed while queued
            return None
        job = self.jobs[job_id]["job"]
        if job["op"] == "stop":
            self.jobs.pop(job_id)["future"].set_result(None)
            return job
        if job["op"] == "phase" and not await self.store.claim.remote(job["key"], self.name):
            # another job's pool trained it while this one queued: nothing to run
            self.jobs.pop(job_id)["future"].set_result({"trained": False})
            return None
        if job["op"] == "phase":  # the lease lives while this slot runs the phase, no longer
            self.renewals[slot] = asyncio.ensure_future(self._renew(job["key"]))
        self.assigned[slot] = job_id
        self.since[slot] = (job["op"], time.monotonic())
        return job

    async def finish(self, slot: int, job_id: int, result: Optional[dict] = None,
                     error: Optional[BaseException] = None) -> None:
        self.assigned.pop(slot, None)
        self._end_claim(slot, job_id, failed=error is not None)
        op, since = self.since.pop(slot, (None, 0.0))
        if op is not None:
            self.stats[f"{op}_s"] += time.monotonic() - since
        entry = self.jobs.pop(job_id, None)
        if entry is None or entry["future"].done():
            return
        if error is not None:
            entry["future"].set_exception(error)
        else:
            entry["future"].set_result(result or {})

    async def stop(self, timeout: float = 120.0) -> dict:
        """Let queued jobs finish, then end every trainer's loop and wait for the trainers."""
        self.stopping = True
        alive = [w for w in self.watchers.values() if not w.done()]
        if not alive:
            return self.stats
        stops = [self._submit({"op": "stop"}) for _ in alive]  # one per trainer still serving
        try:
            await asyncio.wait_for(asyncio.gather(*stops, *alive, return_exceptions=True), timeout)
        except asyncio.TimeoutError:
            log.warning("phase pool: trainers did not stop within %.0f s", timeout)
        return self.stats

    async def status(self) -> dict:
        return {**self.stats, "queued": self.queue.qsize() if self.queue else 0, "busy": len(self.assigned),
                "slots": self.spec["slots"], "name": self.name}
