"""What does running phases on Ray Train cost over running them in-process?

The same st_a stream (3 arrivals, one phase each) runs on the local executor and on the Ray
executor (phase pool: 1 slot x 1 Train worker holding every core). Seed 0 runs cold on both
(local: backbone load; Ray: `ray.init`, actors, worker-group start, backbone load in the
worker); then seeds 1..N run warm, local and Ray alternating so that load from other processes
hits both alike (a new seed means new task data and store keys, so every phase trains again).
The warm ratio is what every phase of a sweep pays; the cold ratio adds the one-time costs.

    python benchmarks/ray_overhead.py            # MiniLM, phases of ~1 minute on 2 cores (~20 min)
    python benchmarks/ray_overhead.py --quick    # MiniLM, phases of ~8 s (~3 min)
    python benchmarks/ray_overhead.py --smoke    # tiny random BERT: seconds of training (~2 min)
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

SIZES = {  # about 1 min / 8 s per MiniLM phase on 2 idle CPU cores (~120 training examples/s)
    "full": ["backbone.name=minilm", "training.epochs=4", "n_train=1800"],
    "quick": ["backbone.name=minilm", "training.epochs=2", "n_train=480"],
    "smoke": ["backbone.name=tiny-bert", "training.epochs=1", "n_train=64"],
}


def make_cfg(size: str, store: Path, seed: int, executor: str):
    from cl_sim.config import load_config

    *overrides, n_train = SIZES[size]
    n = int(n_train.split("=")[1])
    tasks = ", ".join(f"{{name: t{i}, family: {f}, n_train: {n}, n_dev: 100, n_test: 100}}"
                      for i, f in enumerate("abc"))
    cpus = os.cpu_count() or 1
    return load_config(None, [*overrides, f"tasks=[{tasks}]", f"training.seed={seed}", "training.threads=0",
                              f"execution.executor={executor}", f"execution.cpus_per_worker={cpus}",
                              f"execution.store_dir={store}"])


def run_stream_on(executor_kind: str, size: str, root: Path, seed: int, executor=None):
    """One st_a stream; returns (row, executor). A Ray executor is made on first use and kept."""
    from cl_sim.execution.local import LocalExecutor
    from cl_sim.simulate import run_stream
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks

    cfg = make_cfg(size, root / executor_kind, seed, executor_kind)
    tasks = load_tasks(cfg)
    start = time.perf_counter()
    if executor_kind == "local":
        executor = LocalExecutor(Store(cfg.execution.store_dir), tasks, cfg.training.threads)
    elif executor is None:  # cold: starts Ray, the store actor and (with the first phase) the pool
        from cl_sim.execution.ray_train import make_executor

        executor = make_executor(cfg, Store(cfg.execution.store_dir), tasks, log=lambda m: None)
    else:
        executor.store.register_tasks(tasks)  # another seed draws new task data: ship it
    rec = run_stream(cfg, tasks, executor, tuple(tasks), log=lambda m: None)
    label = "cold" if seed == 0 else "warm"
    return _row(executor_kind, label, seed, time.perf_counter() - start, rec, executor.store), executor


def run_all(size: str, root: Path, repeats: int) -> list[dict]:
    """Cold local, cold Ray, then warm local/Ray pairs alternating, so that load from other
    processes on a shared machine hits both executors alike."""
    rows = [run_stream_on("local", size, root, 0)[0]]  # before Ray starts: nothing else running
    row, ray_ex = run_stream_on("ray", size, root, 0)
    rows.append(row)
    try:
        for seed in range(1, repeats + 1):
            rows.append(run_stream_on("local", size, root, seed)[0])
            rows.append(run_stream_on("ray", size, root, seed, ray_ex)[0])
            print(_pair_line(rows[-2], rows[-1]), flush=True)
    finally:
        ray_ex.shutdown()
    return rows


def _row(executor: str, label: str, seed: int, wall: float, rec, store) -> dict:
    phase_s = [store.meta(r["key"])["metrics"]["wall_s"] for r in rec.phases]
    return {"executor": executor, "start": label, "seed": seed, "wall_s": wall, "phase_s": sum(phase_s),
            "n_phases": len(phase_s)}


def _pair_line(lo: dict, ra: dict) -> str:
    other = lambda r: r["wall_s"] - r["phase_s"]  # noqa: E731  evaluations, dispatch, metrics
    return (f"{lo['start']:<5} seed {lo['seed']}  wall: local {lo['wall_s']:6.1f} s  ray {ra['wall_s']:6.1f} s  "
            f"ratio {ra['wall_s'] / lo['wall_s']:.3f} | training: local {lo['phase_s']:6.1f} s  ray "
            f"{ra['phase_s']:6.1f} s | rest: local {other(lo):5.1f} s  ray {other(ra):5.1f} s")


def report(rows: list[dict], size: str, load: float) -> str:
    import numpy as np

    lo = [r for r in rows if r["executor"] == "local"]
    ra = [r for r in rows if r["executor"] == "ray"]
    warm = [b["wall_s"] / a["wall_s"] for a, b in zip(lo[1:], ra[1:])]
    lo_total, ra_total = sum(r["wall_s"] for r in lo[1:]), sum(r["wall_s"] for r in ra[1:])
    rest = [((b["wall_s"] - b["phase_s"]) - (a["wall_s"] - a["phase_s"])) / b["n_phases"] for a, b in zip(lo[1:], ra[1:])]
    lines = [f"ray_overhead ({size}): 3 st_a arrivals per stream; {platform.machine()}, {os.cpu_count()} CPU cores, "
             f"no GPU; 1-min load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f}",
             _pair_line(lo[0], ra[0]) + "  <- cold: includes ray.init, actors, worker-group start",
             *[_pair_line(a, b) for a, b in zip(lo[1:], ra[1:])],
             f"warm wall ratio ray/local: median {np.median(warm):.3f} (min {min(warm):.3f}, max {max(warm):.3f}); "
             f"Ray's extra time outside training per phase: median {np.median(rest):+.2f} s",
             f"warm totals: local {lo_total:.1f} s, ray {ra_total:.1f} s, ratio {ra_total / lo_total:.3f}; local alone varied "
             f"{min(r['wall_s'] for r in lo[1:]):.1f}-{max(r['wall_s'] for r in lo[1:]):.1f} s warm for the same amount of work",
             "wall = run_stream end to end; training = the phases' own wall_s (inside the Train worker for Ray, "
             "with its per-epoch report + checkpoint); rest = wall - training (evaluations, dispatch, metrics)"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="phases of ~10 s instead of ~1 min")
    p.add_argument("--smoke", action="store_true", help="tiny random BERT (checks that it runs)")
    p.add_argument("--repeats", type=int, default=None, help="warm local/Ray pairs (default 2, quick 3, smoke 3)")
    p.add_argument("--keep", action="store_true", help="keep the stores in the printed folder")
    args = p.parse_args()
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    repeats = args.repeats or (2 if size == "full" else 3)
    root = Path(tempfile.mkdtemp(prefix="cl_sim_ray_overhead_"))
    load = os.getloadavg()[0]
    try:
        rows = run_all(size, root, repeats)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(report(rows, size, load), flush=True)


if __name__ == "__main__":
    main()
