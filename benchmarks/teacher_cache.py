"""How much faster is I2I's Initialize (a distill phase) than before the teacher cache and length
groups? Three arms on the same phase, data and seed, repetitions interleaved:

    now        the fused teacher's outputs computed once per example (`cl_sim/teacher_cache.py`)
               and length groups (`cl_sim.model.GROUP_OVERHEAD_TOKENS`): the defaults
    no cache   the teacher rerun on every step, length groups on: the cache's own share
    before     the teacher rerun on every step, one padded batch: Initialize as it ran before both

An i2i stream is trained once (local executor, a temporary store); then every distill phase of it
runs again in each arm. Prints wall time per phase and arm, the ratios and the dev scores.

    python benchmarks/teacher_cache.py              # MiniLM, the real-task stream sst2 -> subj -> mr -> cr, 300 examples, FF
    python benchmarks/teacher_cache.py --variant LL # the low-shot variant (10%: the step floor repeats it)
    python benchmarks/teacher_cache.py --smoke      # tiny random BERT, synthetic tasks: seconds
"""
from __future__ import annotations

import argparse
import dataclasses
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
    tasks = [{"name": n, "source": "shared"} for n in ("sst2", "subj", "mr", "cr")]  # real_tasks.yaml's stream
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

    from cl_sim import model as model_mod
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
    groups = model_mod.GROUP_OVERHEAD_TOKENS
    arms = {"now": (True, groups), "no cache": (False, groups), "before": (False, 0)}  # (cache, group overhead)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        rec = run_stream(cfg, tasks, LocalExecutor(store, tasks), ordering(cfg), log=lambda m: None)
        keys = [r["key"] for r in rec.phases if r["kind"] == "distill"]
        print(f"# {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, backbone "
              f"{cfg.backbone.name}, i2i {cfg.method.i2i_variant}, {args.repeats} interleaved repeats (median)")
        print("| phase | teachers | train rows | steps | now s | no cache s | before s | now / before "
              "| now / no cache | dev now | dev no cache | dev before |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        totals = dict.fromkeys(arms, 0.0)
        try:
            for key in keys:
                base = Phase.from_dict(store.meta(key)["phase"])
                teachers = len(Phase.from_dict(store.meta(base.spec.teacher_fusion)["phase"]).spec.teachers)
                runs = {a: [] for a in arms}
                for r in range(args.repeats):
                    for arm in arms if r % 2 == 0 else list(arms)[::-1]:
                        cached, model_mod.GROUP_OVERHEAD_TOKENS = arms[arm]
                        spec = dataclasses.replace(base.spec, distill=dataclasses.replace(base.spec.distill,
                                                                                          cache_teacher=cached))
                        phase = dataclasses.replace(base, spec=spec)
                        start = time.perf_counter()
                        out = run_phase(phase, tasks[phase.task], store)
                        runs[arm].append((time.perf_counter() - start, out.metrics))
                med = {a: statistics.median(t for t, _ in runs[a]) for a in arms}
                for a in arms:
                    totals[a] += med[a]
                m = runs["now"][0][1]
                dev = " | ".join(f"{runs[a][0][1]['dev_score']:.3f}" for a in arms)
                print(f"| {base.task} | {teachers} | {m['train_examples']} | {m['steps']} | {med['now']:.1f} "
                      f"| {med['no cache']:.1f} | {med['before']:.1f} | {med['now'] / med['before']:.2f} "
                      f"| {med['now'] / med['no cache']:.2f} | {dev} |", flush=True)
        finally:
            model_mod.GROUP_OVERHEAD_TOKENS = groups
        print(f"\nInitialize, all phases: now {totals['now']:.1f} s, no cache {totals['no cache']:.1f} s, "
              f"before {totals['before']:.1f} s; now / before {totals['now'] / max(totals['before'], 1e-9):.2f} "
              f"(target <= 0.6), now / no cache {totals['now'] / max(totals['no cache'], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
