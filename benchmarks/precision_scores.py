"""Scores of one sweep run in two precisions (or any two runs of the same grid), paired per arrival.

    python benchmarks/precision_scores.py -a runs/big120/orderings_120 -a runs/big120b/orderings_120 \
        -b runs/big120c/orderings_120

Each side is one or more sweep output folders (their `tasks.parquet` and `config.yaml`; several
partial runs of one config are pooled, an arrival's first score kept). An arrival is a task
after a given prefix of tasks (`mr` after `sst2>subj`): sweeps share prefixes, so one arrival
appears in many trials but was trained once; rows are reduced to distinct arrivals before pairing.
Prints the arrivals both runs finished, B - A on `final_score` (mean, mean |difference|, largest),
and the mean final score per ordering both finished (same orderings, same seed, same data on both
sides: only what differs between the configs differs).

Seeds are the replicates (`cl_sim.report.stats`): the 95% t-interval is over the per-seed mean differences,
printed only with two or more seeds. Arrivals are not replicates: they share prefix adapters (`mr`
after `sst2>subj` is trained from the same `sst2` adapter as every other arrival after `sst2`), the
seed and the data, so an interval over them would be too narrow. With one seed the script says so
and prints no interval.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cl_sim.report.stats import mean_ci  # noqa: E402


def tasks_of(folders: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f / "tasks.parquet") for f in folders], ignore_index=True)


def arrivals(tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct (method, seed, prefix, task) with its final score."""
    order = tasks["ordering"].str.split(">")
    tasks = tasks.assign(prefix=[">".join(o[:p]) for o, p in zip(order, tasks["position"])])
    keys = ["method", "seed", "prefix", "task"]
    return tasks.groupby(keys, as_index=False).agg(final_score=("final_score", "first"))


def seed_interval(both: pd.DataFrame) -> str:
    """B - A with a 95% t-interval over seeds (each seed's mean over its paired arrivals), or why
    there is none: arrivals share prefix adapters, the seed and the data, so they are not replicates."""
    per_seed = both.groupby("seed")["diff"].mean()
    if len(per_seed) < 2:
        return (f"one seed ({per_seed.index[0]}): no interval. Seeds are the replicates; the arrivals of one "
                "seed share prefix adapters and data, so a t-interval over them would be too narrow")
    ci = mean_ci(per_seed.tolist())
    return (f"over {ci.n} seeds: {ci.mean * 100:+.2f} points, 95% CI [{ci.low * 100:+.2f}, {ci.high * 100:+.2f}]")


def setting(folder: Path, key: str) -> str:
    cfg = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    section, name = key.split(".")
    return str((cfg.get(section) or {}).get(name, "default"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-a", type=Path, action="append", required=True, help="sweep output folder of side A (repeatable)")
    p.add_argument("-b", type=Path, action="append", required=True, help="sweep output folder of side B (repeatable)")
    p.add_argument("--key", default="training.precision", help="config key to label the sides with")
    args = p.parse_args(argv)
    for folder in args.a + args.b:
        if not (folder / "tasks.parquet").is_file():
            p.error(f"{folder} has no tasks.parquet: give a sweep's output folder (<output.dir>/<sweep.name>)")
    labels = [{setting(f, args.key) for f in side} for side in (args.a, args.b)]
    if any(len(side) > 1 for side in labels):
        p.error(f"the folders of one side differ in {args.key}: {labels}")
    la, lb = (side.pop() for side in labels)
    ta, tb = tasks_of(args.a), tasks_of(args.b)
    a, b = arrivals(ta), arrivals(tb)
    both = a.merge(b, on=["method", "seed", "prefix", "task"], suffixes=("_a", "_b"))
    if both.empty:
        print("no arrival finished in both runs")
        return 1
    diff = both["final_score_b"] - both["final_score_a"]
    print(f"{args.key}: A = {la}, B = {lb}; {len(both)} distinct arrivals in both "
          f"(A has {len(a)}, B has {len(b)})")
    print(f"final_score B - A: {diff.mean() * 100:+.2f} points over arrivals; |B - A| mean "
          f"{diff.abs().mean() * 100:.2f}, max {diff.abs().max() * 100:.2f} points; identical {int((diff == 0).sum())}")
    print(seed_interval(both.assign(diff=diff)))
    ta, tb = (t.drop_duplicates(["run_id", "task"]) for t in (ta, tb))
    per = (ta.groupby("ordering")["final_score"].mean().to_frame("A")
           .join(tb.groupby("ordering")["final_score"].mean().to_frame("B"), how="inner"))
    if len(per):
        per["B - A"] = per["B"] - per["A"]
        print(f"\nmean final score per ordering ({len(per)} orderings in both):")
        print(per.round(4).to_markdown())
        spread = {k: (v.max() - v.min()) * 100 for k, v in (("A", per["A"]), ("B", per["B"]))}
        print(f"\nspread across these orderings: A {spread['A']:.2f} points, B {spread['B']:.2f} points; "
              f"best A {per['A'].idxmax()}, best B {per['B'].idxmax()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
