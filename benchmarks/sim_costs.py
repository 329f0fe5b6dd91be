"""Does the onboarding simulator's clock match measured time? (issue 25.6)

Two streams with different task sizes and teacher counts (fusion, then AdapterDistillation, one
arrival at a time, tiny synthetic tasks) train on a fresh temporary store, their runs interleaved
(A fusion, B fusion, A distillation, B distillation) so both see the same machine load. The cost
model (`cl_sim.sim.costs`) is fitted to stream A's phases only and predicts stream B's simulated
seconds, then the other way round. Compared with what the phases measured: the simulated seconds
(the model over each arrival's phases, summed) against the phases' recorded `wall_s` (summed; a
busy machine's start-up and queueing outside the phases are not counted). Exit 1 if either
prediction is off by more than 25%.

    python benchmarks/sim_costs.py                   # tiny-bert: minutes on 2 idle cores
    python benchmarks/sim_costs.py --backbone minilm # the tenants study's backbone: longer

Machine: the script prints the processor, core count and load average (before and after): name
them with the numbers, and say whether other work shared the CPU.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

TOLERANCE = 0.25
SIZES = {"a": (24, 96, 48, 320), "b": (64, 32, 128, 200, 40)}  # training rows per task, in arrival order


def tasks_override(prefix: str, sizes) -> str:
    items = [f"{{name: {prefix}{i}, tenant: t{i % 2}, family: a, relatedness: 0.8, n_train: {n}, n_dev: 16, "
             f"n_test: 16}}" for i, n in enumerate(sizes)]
    return "tasks=[" + ",".join(items) + "]"


def run(store_dir: str, backbone: str, prefix: str, method: str):
    """One stream, one method, one slot: (config, tasks, timeline rows)."""
    from cl_sim.config import load_config
    from cl_sim.execution.local import LocalExecutor
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks
    from cl_sim.timeline import run_timeline

    cfg = load_config(None, [tasks_override(prefix, SIZES[prefix]), f"backbone.name={backbone}", "training.epochs=1",
                             "training.batch_size=16", "method.distill.min_steps=30", "execution.slots=1",
                             f"execution.store_dir={store_dir}", f"method.name={method}", "training.threads=0"])
    tasks = load_tasks(cfg)
    executor = LocalExecutor(Store(store_dir), tasks, cfg.training.threads)
    return cfg, tasks, run_timeline(cfg, tasks, executor, run_id=f"{prefix}-{method}", log=lambda m: None).rows


def simulated(model, store, tasks, rows) -> float:
    """The model's seconds over each arrival's phases (those reused from the store included)."""
    from cl_sim.phases import Phase

    return sum(model.phase_seconds(Phase.from_dict(store.meta(k)["phase"]), tasks[r["task"]])
               for r in rows for k in dict.fromkeys(r["phase_keys"].split(",")))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="tiny-bert")
    args = p.parse_args(argv)
    from cl_sim.sim.costs import cost_model
    from cl_sim.store import Store

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start; backbone {args.backbone}")
    ok, start = True, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, tasks, rows = None, {}, {"a": [], "b": []}
        for method in ("fusion", "adapter_distillation"):
            for prefix in ("a", "b"):
                cfg, t, r = run(tmp, args.backbone, prefix, method)
                tasks.update(t)
                rows[prefix] += r
        print(f"trained in {time.perf_counter() - start:.0f} s")
        store = Store(tmp)
        for fit_on, predict in (("a", "b"), ("b", "a")):
            keys = [k for r in rows[fit_on] for k in r["phase_keys"].split(",")]
            model = cost_model(cfg, store, keys)
            print(f"fitted on stream {fit_on.upper()} ({len(set(keys))} phases):")
            for kind, c in model.describe().items():
                c_term = "TEACHER_STEP_COST" if c["c_per_teacher"] is None else f"{c['c_per_teacher']:.3g}"
                print(f"  {kind:<8} a={c['a_s']:.3g} s  b={c['b_s_per_pass']:.3g} s/pass  c={c_term}  "
                      f"d={c['d_s_per_dev_row']:.3g} s/dev row  [{c['source']}]")
            for method in ("fusion", "adapter_distillation", "all"):
                g = [r for r in rows[predict] if method in ("all", r["method"])]
                sim, wall = simulated(model, store, tasks, g), sum(r["phase_wall_s"] for r in g)
                within = abs(sim / wall - 1) <= TOLERANCE
                ok &= within or method != "all"
                print(f"  stream {predict.upper()} {method:<22} simulated {sim:7.1f} s  measured {wall:7.1f} s  "
                      f"ratio {sim / wall:.2f}  {'within' if within else 'OUTSIDE'} {TOLERANCE:.0%}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}; {time.perf_counter() - start:.0f} s in all")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
