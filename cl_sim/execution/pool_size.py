"""How big the phase pool is: slots x Train workers x CPUs (GPUs) per worker, filling what the Ray
cluster reports, unless the config sets them (`execution.slots`, `num_workers`, `cpus_per_worker`).

    ex = size_pool(cfg.execution, cluster_nodes(), parallel=len(trials))

* slots: `execution.slots`, else as many phases as the work can run at once (`parallel`: 1 for a
  run, the trial count for a sweep) and the cluster holds at one CPU (GPU) per worker. A run
  trains one phase at a time on every core; a sweep gets a slot per core, as the local executor
  gives each trial a core (README study on 2 cores: 1 slot x 1 worker x 1 CPU took 1.8x local).
* cpus_per_worker: `execution.cpus_per_worker`, else the CPUs shared out among the workers (at
  most one node's worth), less a sliver per Tune trial that drives the pool (`TRIAL_CPU`).
* GPUs: with `use_gpu`, one per worker and slots = GPUs // num_workers; too few GPUs is an error.
"""
from __future__ import annotations

import dataclasses
import math

from cl_sim.config import ExecutionConfig
from cl_sim.errors import ConfigError

TRIAL_CPU = 0.01  # a Tune trial whose phases run on the pool (RAY-NOTES: {"cpu": 0} is rejected)
TRIALS_PER_SLOT = 2  # concurrent trials per slot: one trains while the other evaluates or waits


def size_pool(ex: ExecutionConfig, nodes: list[dict], parallel: int = 1) -> ExecutionConfig:
    """`ex` with slots and cpus_per_worker filled in from `nodes` (each node's Ray resources)."""
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = sum(n.get("GPU", 0.0) for n in nodes)
    workers = ex.num_workers
    if ex.use_gpu and gpus < workers:
        raise ConfigError(f"execution.use_gpu: true, but the Ray cluster has {gpus:g} GPU(s) and a phase needs "
                          f"{workers} (execution.num_workers); start GPU nodes or set execution.use_gpu=false")
    fits = int(gpus // workers) if ex.use_gpu else int(cpus // workers)
    slots = ex.slots or max(1, min(parallel, fits))
    per = ex.cpus_per_worker or _cpus_per_worker(nodes, cpus, slots * workers, slots, ex.use_gpu)
    return dataclasses.replace(ex, slots=slots, cpus_per_worker=per)


def _cpus_per_worker(nodes: list[dict], cpus: float, n_workers: int, slots: int, use_gpu: bool) -> float:
    spare = cpus - TRIAL_CPU * TRIALS_PER_SLOT * slots
    per = spare / n_workers
    if use_gpu:  # a GPU worker shares its node's CPUs with the node's other GPUs
        per = min([per] + [n.get("CPU", 0.0) / n["GPU"] for n in nodes if n.get("GPU", 0) >= 1])
    per = min(per, max(n.get("CPU", 0.0) for n in nodes) - TRIAL_CPU * TRIALS_PER_SLOT)  # fits on a node
    return max(TRIAL_CPU, math.floor(per * 100) / 100)


def cluster_nodes() -> list[dict]:
    """The resources of every live node of the Ray cluster this process is connected to."""
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def shape_line(ex: ExecutionConfig) -> str:
    """`2 slots x 1 worker x 0.98 CPU` (GPU: `x 1 GPU + 7.98 CPU`)."""
    unit = f"1 GPU + {ex.cpus_per_worker:g} CPU" if ex.use_gpu else f"{ex.cpus_per_worker:g} CPU"
    return (f"{ex.slots} slot{'s' * (ex.slots != 1)} x {ex.num_workers} worker{'s' * (ex.num_workers != 1)} "
            f"x {unit}")
