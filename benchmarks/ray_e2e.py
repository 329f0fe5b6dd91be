"""The README main study end to end: Ray Train phase pool (the default) vs the local executor.

Runs `python experiments/task_order.py` twice in one go, each on a fresh store and a fresh local
Ray cluster: once as users run it (phases on the phase pool, sized from the cluster) and once
with `--local` (each Tune trial trains its phases in its own process), then prints the wall
times, the ratio Ray/local, the per-phase training time on each, the pool's one-line shape /
start-up / overhead report, and whether the tables agree (same seed -> same scores).

    python benchmarks/ray_e2e.py                  # the README main study (MiniLM): ~10-20 min on 2 cores
    python benchmarks/ray_e2e.py --smoke-test     # tiny random BERT (the scripts' --smoke-test): ~2 min
    python benchmarks/ray_e2e.py --order ray,local sweep.sample=2      # extra args go to the script
    python benchmarks/ray_e2e.py --keep runs/ray_e2e  # keep both runs' tables and reports
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run_study(kind: str, root: Path, extra: list[str]) -> dict:
    """One end-to-end run of the study; returns its wall time, tables and the pool's report line."""
    out, store = root / kind / "out", root / kind / "store"
    cmd = [sys.executable, str(ROOT / "experiments" / "task_order.py"), "--address", "local",
           *(["--local"] if kind == "local" else []), *extra, f"output.dir={out}", f"execution.store_dir={store}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{kind} run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    [folder] = [p.parent for p in out.glob("*/tasks.parquet")]
    pool = [line for line in proc.stdout.splitlines() if line.startswith(("ray: phase pool", "executor: local"))]
    return {"kind": kind, "wall_s": wall, "folder": folder, "tasks": pd.read_parquet(folder / "tasks.parquet"),
            "phases": pd.read_parquet(folder / "phases.parquet"), "pool": pool[-1] if pool else "-"}


def same_scores(a: pd.DataFrame, b: pd.DataFrame) -> str:
    cols = ["trial_id", "task", "diag_score", "final_score"]
    x, y = (t[cols].sort_values(cols[:2]).reset_index(drop=True) for t in (a, b))
    diff = (x[cols[2:]] - y[cols[2:]]).abs().max().max()
    return "identical" if diff == 0 else f"differ by up to {diff:.4f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke-test", action="store_true", help="the study's --smoke-test: tiny model and tasks")
    p.add_argument("--order", default="local,ray", help="which runs first (the machine may warm up)")
    p.add_argument("--keep", default=None, help="keep both runs' outputs (tables, reports) under this folder")
    p.add_argument("extra", nargs="*", help="more arguments for experiments/task_order.py")
    args = p.parse_args()
    extra = (["--smoke-test"] if args.smoke_test else []) + args.extra
    if args.keep and Path(args.keep).is_dir() and any(Path(args.keep).iterdir()):
        sys.exit(f"--keep {args.keep}: not empty (both runs need a fresh store)")
    print(f"README main study {'(smoke test) ' if args.smoke_test else ''}on {os.cpu_count()} CPU(s), "
          f"{platform.processor() or platform.machine()}; runs: {args.order}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cl_sim_e2e_") as tmp:
        if args.keep:
            tmp = args.keep
        runs = {}
        for kind in args.order.split(","):
            runs[kind] = run_study(kind, Path(tmp), extra)
            r = runs[kind]
            print(f"{kind:>5}: {r['wall_s']:7.1f} s end to end ({r['folder']}), {len(r['phases'])} phase rows, "
                  f"training {r['phases'].drop_duplicates('key')['wall_s'].sum():.1f} s; {r['pool']}", flush=True)
    ray, local = runs["ray"], runs["local"]
    train = [r["phases"].drop_duplicates("key")["wall_s"].sum() for r in (ray, local)]
    print(f"ratio Ray/local end to end: {ray['wall_s'] / local['wall_s']:.3f} "
          f"({ray['wall_s']:.1f} s vs {local['wall_s']:.1f} s); training time of the phases: "
          f"{train[0] / train[1]:.3f}; scores {same_scores(ray['tasks'], local['tasks'])}; "
          f"executors in the phases tables: ray {sorted(set(ray['phases']['executor']))}, "
          f"local {sorted(set(local['phases']['executor']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
