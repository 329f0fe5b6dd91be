"""Ordering search against ground truth (issue 26.3): how much of the exhaustive compute does a
search over orderings need to land within 1 point of the best ordering's average accuracy?

    python benchmarks/ordering_search.py --tabulate   # every ordering of 5 tasks, in-process: the table
    python benchmarks/ordering_search.py              # replay the searches on the table: seconds

`--tabulate` trains every ordering of five tiny synthetic tasks with I2I (tiny random BERT, on one
store, so shared prefixes train once) and writes `benchmarks/ordering_search_table.csv`: one row
per ordered prefix (5 + 20 + 60 + 120 + 120 = 325) with the running average after its last arrival
and the store keys of the phases that arrival trained. Running averages depend only on the prefix
(earlier tasks' adapters are final when they arrive), so the table answers any search exactly,
the way Syne Tune replays tabulated benchmarks.

The replay runs the search `cl-sim sweep` runs (`sweep.orderings: search`): an ordering is one
uniform key per task, sampled at random or by Optuna's TPE (told each trial's last reported
running average, as Tune's OptunaSearch is), with ASHA over arrivals (Ray's rule: at a rung, stop
when below the (1 - 1/eta) percentile of the values recorded there), one trial at a time. Compute
= distinct phases trained (the store reuses shared prefixes) / the exhaustive table's phases.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import math
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TABLE = HERE / "ordering_search_table.csv"
TASKS = ("[{name: a1, family: a, n_train: 64}, {name: a2, family: a, relatedness: 0.6, n_train: 16}, "
         "{name: b1, family: b, n_train: 64}, {name: b2, family: b, relatedness: 0.6, n_train: 16}, "
         "{name: c1, family: c, n_train: 32}]")
SETTINGS = ["backbone.name=tiny-bert", "backbone.max_length=24", "training.epochs=4", "training.lr=0.01",
            "training.batch_size=16", "training.threads=1", "training.dev_examples=0", "adapter.reduction_factor=1",
            "method.name=i2i", "method.kt_matched=false", "method.distill.min_steps=10", "method.fusion.lr=0.005",
            "execution.executor=local"]


def tabulate(out: Path, store: str) -> None:
    from cl_sim.config import load_config
    from cl_sim.execution.trial import run_trial

    tasks = TASKS.replace("}", ", n_dev: 16, n_test: 96, n_signal_words: 6, n_filler_words: 12}")
    cfg = load_config(None, [*SETTINGS, f"tasks={tasks}", f"execution.store_dir={store}"])
    names = [t.name for t in cfg.tasks]
    rows: dict[str, dict] = {}
    for n, order in enumerate(itertools.permutations(names), 1):
        seen: list[dict] = []
        res = run_trial(cfg.to_dict(), {"ordering": order, "method": "i2i", "seed": 0}, log=lambda m: None,
                        report=seen.append)
        reports = [*seen, res["last"]]
        for row, rep in zip(res["rows"]["tasks"], reports):
            prefix = ">".join(order[: rep["arrival"]])
            rows.setdefault(prefix, {"prefix": prefix, "depth": rep["arrival"], "running_avg": round(rep["running_avg"], 6),
                                     "phase_keys": row["phase_keys"].replace(",", ";")})
        print(f"{n}/120 {'>'.join(order)}: avg {res['last']['running_avg']:.4f}", flush=True)
    with open(out, "w", newline="") as f:
        f.write("# python benchmarks/ordering_search.py --tabulate  (tiny-bert, I2I, 5 synthetic tasks, seed 0)\n")
        w = csv.DictWriter(f, fieldnames=["prefix", "depth", "running_avg", "phase_keys"])
        w.writeheader()
        w.writerows(sorted(rows.values(), key=lambda r: (r["depth"], r["prefix"])))


def load(path: Path) -> tuple[dict[str, float], dict[str, set], list[str]]:
    with open(path) as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    avg = {r["prefix"]: float(r["running_avg"]) for r in rows}
    keys = {r["prefix"]: set(r["phase_keys"].split(";")) for r in rows}
    names = sorted(p for p in avg if ">" not in p)
    return avg, keys, names


def search(avg, keys, names, seed: int, searcher: str, grace: int, eta: float, tol: float = 0.01,
           max_trials: int = 400) -> dict:
    """One search, one trial at a time: the compute fraction when the best finished ordering is first
    within `tol` of the true best."""
    n = len(names)
    finals = {p: v for p, v in avg.items() if p.count(">") == n - 1}
    target = max(finals.values()) - tol
    total = len(set().union(*keys.values()))
    rungs: dict[int, list[float]] = {}
    levels = [] if grace is None else [grace * int(eta ** k) for k in range(8) if grace * eta ** k < n]
    spent: set = set()
    rng = np.random.default_rng(seed)
    study = None
    if searcher == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    best = -math.inf
    for t in range(1, max_trials + 1):
        if study is not None:
            trial = study.ask()
            key = {m: trial.suggest_float(f"order.{m}", 0.0, 1.0) for m in names}
        else:
            key = dict(zip(names, rng.uniform(size=n)))
        order = sorted(names, key=lambda m: (key[m], m))
        value = None
        for depth in range(1, n + 1):
            prefix = ">".join(order[:depth])
            spent |= keys[prefix]
            value = avg[prefix]
            if depth in levels:
                recorded = rungs.setdefault(depth, [])
                recorded.append(value)
                if value < np.nanpercentile(recorded, (1 - 1 / eta) * 100):
                    break
        else:
            best = max(best, value)
        if study is not None:
            study.tell(trial, value)
        if best >= target:
            return {"trials": t, "fraction": len(spent) / total, "found": best}
    # never found: counted as the exhaustive compute (what one would fall back to)
    return {"trials": max_trials, "fraction": 1.0, "found": best, "missed": True}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tabulate", action="store_true", help="train every ordering and write the table (minutes)")
    p.add_argument("--table", default=str(TABLE))
    p.add_argument("--seeds", type=int, default=20)
    args = p.parse_args()
    if args.tabulate:
        with tempfile.TemporaryDirectory() as store:
            tabulate(Path(args.table), store)
    avg, keys, names = load(Path(args.table))
    finals = sorted((v for k, v in avg.items() if k.count(">") == len(names) - 1), reverse=True)
    print(f"{len(finals)} orderings: best {finals[0]:.4f}, median {np.median(finals):.4f}, worst {finals[-1]:.4f}; "
          f"{sum(v >= finals[0] - 0.01 for v in finals)} within 1 point of the best; "
          f"{len(set().union(*keys.values()))} phases to train them all")
    for tol in (0.01, 0.0):  # the criterion, then the single best ordering itself
        print(f"\nwithin {100 * tol:g} point(s) of the best ({sum(v >= finals[0] - tol for v in finals)} orderings "
              f"qualify), {args.seeds} search seeds:\n")
        print("| searcher | scheduler | compute: median | mean | max | seeds <= 25% | trials (median) |")
        print("|---|---|---|---|---|---|---|")
        for searcher, grace, eta in (("random", None, 2), ("random", 1, 2), ("random", 2, 2), ("random", 1, 3),
                                     ("optuna", 1, 2), ("optuna", 2, 2)):
            runs = [search(avg, keys, names, s, searcher, grace, eta, tol=tol) for s in range(args.seeds)]
            f = np.array([r["fraction"] for r in runs])
            missed = sum(r.get("missed", False) for r in runs)
            sched = "fifo" if grace is None else f"asha grace {grace} eta {eta:g}"
            print(f"| {searcher} | {sched} | {np.median(f):.1%} | {f.mean():.1%} | {f.max():.1%} | "
                  f"{(f <= 0.25).sum()}/{len(f)} | {np.median([r['trials'] for r in runs]):.0f}"
                  f"{f' ({missed} never found it in 400 trials: counted as 100%)' if missed else ''} |")

if __name__ == "__main__":
    main()
