"""What the sweep scripts share: flags, the smoke-test settings, and main(). Logic lives in
`cl_sim.execution.ray_tune`; this file only wires the command line to it. Phases train on the
Ray Train phase pool (sized from the cluster) unless `--local` asks for in-process trials."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
# Tiny random BERT, three tiny synthetic tasks, one epoch: seconds of training.
SMOKE = ["backbone.name=tiny-bert", "backbone.max_length=32", "training.epochs=1", "training.batch_size=16",
         "tasks=[" + ", ".join(f"{{name: syn_{f}, family: {f}, n_train: 32, n_dev: 32, n_test: 32}}"
                               for f in "abc") + "]"]


def parse_args(doc: str, name: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(HERE / "configs" / f"{name}.yaml"), help="experiment YAML")
    p.add_argument("--smoke-test", action="store_true", help="tiny model and data: seconds, for CI")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (auto, host:port); `local` = always start a new local one; "
                        "default: $RAY_ADDRESS, a running `ray start` cluster, else a new local one")
    p.add_argument("--local", action="store_true",
                   help="train each trial's phases in its own process instead of the Ray Train phase pool (debugging)")
    p.add_argument("--sample", type=int, metavar="K",
                   help="a seeded sample of K orderings of the tasks (= sweep.orderings=all sweep.sample=K)")
    p.add_argument("--quiet", action="store_true", help="results only: no progress lines (CI)")
    p.add_argument("--verbose", action="store_true", help="also the trials', transformers' and Ray's own output")
    p.add_argument("overrides", nargs="*", help="key=value overrides (sweep.* for the sweep section)")
    return p.parse_args()


def main(doc: str, name: str, smoke: list[str], trials: Callable) -> int:
    """Load the sweep, connect Ray, run `trials(cfg, sweep)` on Tune, print where results went."""
    from cl_sim.errors import CLSimError
    from cl_sim.execution import ray_tune
    from cl_sim.sweep import load_sweep

    args = parse_args(doc, name)
    from cl_sim.progress import NORMAL, QUIET, VERBOSE, set_verbosity

    set_verbosity(QUIET if args.quiet else VERBOSE if args.verbose else NORMAL)
    start = time.perf_counter()
    try:
        sample = ["sweep.orderings=all", f"sweep.sample={args.sample}"] if args.sample else []
        local = ["execution.executor=local"] if args.local else []
        overrides = (SMOKE + smoke if args.smoke_test else []) + sample + args.overrides + local
        cfg, sweep = load_sweep(args.config, overrides)
        todo = trials(cfg, sweep)
        if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") and not Path(cfg.output.dir).is_absolute():
            print(f"note: running as a Ray job, relative output.dir/execution.store_dir live in the job's copy "
                  f"of the working dir ({Path.cwd()}); pass absolute ones to keep them", flush=True)
        ray_tune.connect(args.address, log=_log)
        res = ray_tune.run_sweep(cfg, sweep, todo, log=_log)
    except (CLSimError, ConnectionError) as exc:  # bad input, or no Ray cluster at --address
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    n = len(res.tables["tasks"])
    from cl_sim.analysis import headline
    from cl_sim.sweep import report_tasks

    print(f"\n{headline(report_tasks(res.tables))}\n", flush=True)
    print(f"table:  {res.paths['tasks']}  ({n} rows = trial x task)\nreport: {res.paths['report']}\n"
          f"html:   {res.paths['report'].with_suffix('.html')}\n"
          f"done in {time.perf_counter() - start:.1f} s", flush=True)
    if res.failures:
        print(f"{name}: error: {len(res.failures)} trial(s) failed (see {res.paths['failures']}); the tables "
              f"hold the others", file=sys.stderr)
        return 1
    return 0


def _log(msg: str) -> None:
    from cl_sim.progress import say

    say(msg)  # progress; the result lines (table, report, counts) are printed by main in any case
