"""Does caching the frozen teacher pay? I2I's Initialize (a distill phase) with the fused teacher's
outputs computed once per example (`cl_sim/teacher_cache.py`) against rerunning the teacher on every
step, on the same phase, data and seed, repetitions interleaved (cached, recomputed, cached, ...).

An i2i stream is trained once (local executor, a temporary store); then every distill phase of it
runs again both ways. Prints wall time per phase, the ratio cached/recomputed and both dev scores.

    python benchmarks/teacher_cache.py              # MiniLM, sst2 -> mr -> cr (../shared/data), 300 examples, FF
    python benchmarks/teacher_cache.py --variant LL # the low-shot variant (10%: the step floor repeats it)
    python benchmarks/teacher_cache.py --smoke      # tiny random BERT, synthetic tasks: seconds
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def overrides(args) -> tuple[Path, list[str]]:
    if args.smoke:
        return ROOT / "experiments/configs/transfer_tiny.yaml", ["method.name=i2i"]
    data = os.environ.get("CL_SIM_DATA", str(ROOT.parent / "shared" / "data"))
    tasks = [{"name": n, "source": "shared"} for n in ("sst2", "mr", "cr")]
    return ROOT / "experiments/configs/real_tasks.yaml", [
        f"data_root={data}", f"tasks={tasks}".replace("'", '"'), "method.name=i2i",
        f"method.i2i_variant={args.variant}", "method.low_shot_fraction=0.1",
        f"training.max_train_examples={args.examples}"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="FF", choices=["FF", "FL", "LL"])
    p.add_argument("--examples", type=int, default=300)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args()

    import torch

    from cl_sim.config import load_config, ordering
    from cl_sim.execution.local import LocalExecutor
    from cl_sim.phases import Phase
    from cl_sim.progress import QUIET, set_verbosity
    from cl_sim.simulate import run_stream
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks
    from cl_sim.train import run_phase

    set_verbosity(QUIET)
    config, extra = overrides(args)
    cfg = load_config(config, extra)
    torch.set_num_threads(os.cpu_count() or 1)
    tasks = load_tasks(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        rec = run_stream(cfg, tasks, LocalExecutor(store, tasks), ordering(cfg), log=lambda m: None)
        keys = [r["key"] for r in rec.phases if r["kind"] == "distill"]
        print(f"# {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, backbone "
              f"{cfg.backbone.name}, i2i {cfg.method.i2i_variant}, {args.repeats} interleaved repeats")
        print("| phase | train rows | steps | cached s | recomputed s | cached / recomputed | dev cached | dev recomputed |")
        print("|---|---|---|---|---|---|---|---|")
        totals = {True: 0.0, False: 0.0}
        for key in keys:
            base = Phase.from_dict(store.meta(key)["phase"])
            runs = {True: [], False: []}
            for _ in range(args.repeats):
                for cached in (True, False):
                    phase = Phase.from_dict({**base.to_dict(), "distill": {**base.distill, "cache_teacher": cached}})
                    start = time.perf_counter()
                    out = run_phase(phase, tasks[phase.task], store)
                    runs[cached].append((time.perf_counter() - start, out.metrics))
            med = {c: statistics.median(t for t, _ in runs[c]) for c in runs}
            for c in totals:
                totals[c] += med[c]
            m = runs[True][0][1]
            print(f"| {base.task} | {m['train_examples']} | {m['steps']} | {med[True]:.1f} | {med[False]:.1f} | "
                  f"{med[True] / med[False]:.2f} | {m['dev_score']:.3f} | {runs[False][0][1]['dev_score']:.3f} |")
        print(f"\nInitialize, all phases: cached {totals[True]:.1f} s, recomputed {totals[False]:.1f} s, "
              f"ratio {totals[True] / max(totals[False], 1e-9):.2f} (target <= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
