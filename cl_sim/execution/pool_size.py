"""How big the phase pool is: slots x Train workers x CPUs (GPUs) per worker, filling what the Ray
cluster reports, unless the config sets them (`execution.slots`, `num_workers`, `cpus_per_worker`).

    ex = size_pool(cfg.execution, cluster_nodes(), parallel=len(trials))

* slots: `execution.slots`, else as many phases as the work can run at once (`parallel`: 1 for a
  run, the trial count for a sweep) and the cluster holds at one CPU (GPU) per worker. A run
  trains one phase at a time on every core; a sweep gets a slot per core, as the local executor
  gives each trial a core (README study on 2 cores: 1 slot x 1 worker x 1 CPU took 1.8x local).
* cpus_per_worker: `execution.cpus_per_worker`, else the CPUs shared out among the workers (at
  most one node's worth), less a sliver per Tune trial that drives the pool (`TRIAL_CPU`).
* GPUs: with `use_gpu`, one per worker and slots = GPUs // num_workers. A cluster that has fewer
  GPUs than one phase needs (an autoscaling cluster starts with `min_workers: 0`) is asked for them
  (`await_nodes`: `ray.autoscaler.sdk.request_resources`) and waited for, with a progress line,
  up to `execution.scale_timeout_s`; a local cluster started by this process cannot grow: an error.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

from cl_sim.config import ExecutionConfig
from cl_sim.errors import ConfigError

TRIAL_CPU = 0.01  # a Tune trial whose phases run on the pool (RAY-NOTES: {"cpu": 0} is rejected)
TRIALS_PER_SLOT = 2  # concurrent trials per slot: one trains while the other evaluates or waits


def size_pool(ex: ExecutionConfig, nodes: list[dict], parallel: int = 1) -> ExecutionConfig:
    """`ex` with slots and cpus_per_worker filled in from `nodes` (each node's Ray resources);
    unchanged when both are set already (a trial joining its driver's pool)."""
    if ex.slots and ex.cpus_per_worker:
        return ex
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = _gpus(nodes)
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


def await_nodes(ex: ExecutionConfig, log: Callable[[str], None], can_scale: bool | None = None,
                poll_s: float = 2.0, every_s: float = 30.0) -> list[dict]:
    """The live nodes' resources, once they hold one phase's workers (with `use_gpu`: a GPU each).

    Too few GPUs: ask the autoscaler for them and wait, a line every `every_s`, up to
    `execution.scale_timeout_s`; raises when they do not come, or at once when `can_scale` is False
    (default: unless this process started the cluster: a local one has no autoscaler)."""
    nodes = cluster_nodes()
    can_scale = not started_here() if can_scale is None else can_scale
    if not ex.use_gpu or _gpus(nodes) >= ex.num_workers:
        return nodes
    need = f"{ex.num_workers} GPU(s) (execution.num_workers)"
    if not can_scale:
        raise ConfigError(f"execution.use_gpu: true, but this local Ray cluster has {_gpus(nodes):g} GPU(s) and a "
                          f"phase needs {need}; join a cluster with GPU nodes (execution.address) or set "
                          f"execution.use_gpu=false")
    from ray.autoscaler.sdk import request_resources

    bundle = {"GPU": 1, "CPU": ex.cpus_per_worker or 1}
    request_resources(bundles=[bundle] * ex.num_workers * max(1, ex.slots))
    start = last = time.monotonic()
    log(f"ray: the cluster has {_gpus(nodes):g} GPU(s), a phase needs {need}: asked the autoscaler, waiting "
        f"(up to {ex.scale_timeout_s:g} s, execution.scale_timeout_s)")
    try:
        while _gpus(nodes) < ex.num_workers:
            waited = time.monotonic() - start
            if waited >= ex.scale_timeout_s:
                raise ConfigError(f"execution.use_gpu: true, but the Ray cluster still has {_gpus(nodes):g} GPU(s) "
                                  f"after {waited:.0f} s and a phase needs {need}: check the autoscaler "
                                  f"(`ray status`, its GPU node type's max_workers) or raise execution.scale_timeout_s")
            if time.monotonic() - last >= every_s:
                log(f"ray: waiting for GPU nodes: {_gpus(nodes):g} of {ex.num_workers} GPU(s) up after {waited:.0f} s")
                last = time.monotonic()
            time.sleep(poll_s)
            nodes = cluster_nodes()
    finally:
        request_resources(bundles=[])  # a standing request would keep nodes up after the job ends
    log(f"ray: {_gpus(nodes):g} GPU(s) up after {time.monotonic() - start:.0f} s")
    return nodes


def _gpus(nodes: list[dict]) -> float:
    return sum(n.get("GPU", 0.0) for n in nodes)


def started_here() -> bool:
    """True when this process started its Ray cluster (`ray.init()` without an address)."""
    import ray

    node = getattr(ray._private.worker.global_worker, "node", None)
    return bool(getattr(node, "head", False))


def cluster_nodes() -> list[dict]:
    """The resources of every live node of the Ray cluster this process is connected to."""
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def shape_line(ex: ExecutionConfig) -> str:
    """`2 slots x 1 worker x 0.98 CPU` (GPU: `x 1 GPU + 7.98 CPU`)."""
    unit = f"1 GPU + {ex.cpus_per_worker:g} CPU" if ex.use_gpu else f"{ex.cpus_per_worker:g} CPU"
    return (f"{ex.slots} slot{'s' * (ex.slots != 1)} x {ex.num_workers} worker{'s' * (ex.num_workers != 1)} "
            f"x {unit}")
