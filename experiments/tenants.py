"""Tenants over time: several tenants' tasks arrive (seeded Poisson), wait for one of the
cluster's slots, train, and become teachers once ready. Compares methods on onboarding latency
(arrival -> adapter ready), storage per tenant, tenants within a storage budget, and accuracy.

    python experiments/tenants.py --smoke-test                      # tiny-bert, tiny tasks, seconds
    python experiments/tenants.py --config experiments/configs/tenants.yaml --methods fusion,adapter_distillation
    python experiments/tenants.py stream.seed=3 execution.slots=4    # key=value overrides
    python experiments/tenants.py --local                           # in-process, no Ray (debugging)
    python experiments/tenants.py --quiet                           # results only; --verbose: Ray's, transformers' too
    ray job submit --working-dir . -- python experiments/tenants.py

Phases train on the Ray Train phase pool (sized to execution.slots) unless --local is given.
Progress lines go to stderr, results to stdout, as with `cl-sim`.

Writes runs/tenants-<config hash>/: tenants.parquet (one row per (method, task)), summary.json,
config.yaml, attention.parquet and report.md (+ onboarding timeline PNG).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import pandas as pd

from cl_sim.config import config_hash, derive, load, save_config
from cl_sim.errors import CLSimError
from cl_sim.execution import open_session
from cl_sim.io import atomic_write_json, atomic_write_parquet
from cl_sim.progress import NORMAL, QUIET, VERBOSE, say, set_verbosity
from cl_sim.report.run import write_report
from cl_sim.store import Store
from cl_sim.tasks import load_tasks
from cl_sim.timeline import cost_model, run_timeline, stream_events, summarize

HERE = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(HERE / "configs" / "tenants.yaml"))
    p.add_argument("--methods", default="fusion,adapter_distillation", help="comma-separated method names")
    p.add_argument("--smoke-test", action="store_true", help="tiny-bert, tiny synthetic tasks: seconds")
    p.add_argument("--address", default=None, help="existing Ray cluster (auto, host:port); default: $RAY_ADDRESS, "
                                                   "else a new local one")
    p.add_argument("--local", action="store_true", help="phases in this process instead of on Ray Train (debugging)")
    p.add_argument("--quiet", action="store_true", help="results only: no progress lines (CI)")
    p.add_argument("--verbose", action="store_true", help="also transformers' and Ray's own output")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    return p.parse_args(argv)


COLUMNS = {"method": "method", "tasks": "tasks", "onboarding_p50_s": "p50 s", "onboarding_p90_s": "p90 s",
           "onboarding_p99_s": "p99 s", "queue_wait_p90_s": "wait p90 s", "bytes_per_tenant_mean": "B/tenant",
           "tenants_within_budget": "tenants fit", "mean_score": "score", "wall_s": "wall s"}


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def print_tables(summary: list[dict], rows: pd.DataFrame, costs: dict, cfg) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 110))
    t = Table(title=f"onboarding latency (arrival -> ready, simulated s) and storage; "
                    f"budget {cfg.stream.storage_budget_bytes:,} B")
    for key, label in COLUMNS.items():
        t.add_column(label, justify="left" if key == "method" else "right", no_wrap=key == "method")
    for s in summary:
        t.add_row(*[_cell(s[c]) for c in COLUMNS])
    console.print(t)
    per = rows.groupby(["tenant", "method"])["stored_bytes"].sum().unstack("method")
    t = Table(title="stored bytes per tenant")
    t.add_column("tenant")
    for m in per.columns:
        t.add_column(m, justify="right")
    for tenant, r in per.iterrows():
        t.add_row(tenant, *[f"{int(v):,}" for v in r])
    console.print(t)
    used = sorted(set(rows["phase_keys"].str.split(",").explode().str.split("-").str[0]))
    console.print("cost model (simulated s = a + b x passes x (1 + c x (teachers - 1)) + d x dev rows): "
                  + "; ".join(f"{k} a={costs[k]['a_s']:.3g} b={costs[k]['b_s_per_pass']:.3g} "
                              f"c={'default' if costs[k]['c_per_teacher'] is None else format(costs[k]['c_per_teacher'], '.3g')}"
                              f" d={costs[k]['d_s_per_dev_row']:.3g} [{costs[k]['source']}]" for k in used if k in costs))
    console.print("simulated vs measured phase seconds: " + "  ".join(
        f"{s['method']} {s['simulated_train_s']:.1f} vs {s['phase_wall_s']:.1f}" for s in summary))


def run(args: argparse.Namespace) -> Path:
    overrides = list(args.overrides)
    overrides += ["execution.executor=local"] if args.local else []
    overrides += [f"execution.address={args.address}"] if args.address else []
    cfg = load(args.config, overrides, smoke=args.smoke_test).config  # --smoke-test: tenants.yaml's `smoke:`
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    cfgs = {m: derive(cfg, {"method.name": m}) for m in methods}  # each validated like a loaded config
    tasks = load_tasks(cfg)
    log = lambda m: say(f"    {m}")  # noqa: E731 - progress: stderr, silent with --quiet
    with open_session(cfg, tasks, default="ray", parallel=cfg.execution.slots or 1, log=log) as session:
        cfg, executor = session.cfg, session.executor  # the pool: a slot per timeline slot, every method
        events = stream_events(cfg, tasks)  # one stream, every method
        out = Path(cfg.output.dir) / (cfg.output.name or f"tenants-{config_hash(cfg)}")
        say(f"tenants: {len(events)} arrivals from {len({e.tenant for e in events})} tenants over "
              f"{cfg.stream.horizon:g} s on {cfg.execution.slots} slots ({cfg.backbone.name}, "
              f"{cfg.execution.executor} executor); methods {', '.join(methods)}")
        for e in events:
            say(f"  t={e.time:8.2f}  {e.tenant:<8} {e.task}")
        rows, attention = [], []
        costs = cost_model(cfg, Store(cfg.execution.store_dir))  # fitted once: every method, one clock
        for method, mcfg in cfgs.items():
            say(f"== {method}")
            before = (executor.trained, executor.reused)
            rec = run_timeline(mcfg, tasks, executor, events, run_id=f"{method}-seed{cfg.training.seed}",
                               log=lambda m: say(f"  {m}"), costs=costs)
            rows += rec.rows
            attention += [{"method": method, **a} for a in rec.attention]
            print(f"  phases trained {executor.trained - before[0]}, reused from the store {executor.reused - before[1]}")
    print(session.overhead_line())
    table = pd.DataFrame(rows)
    summary = summarize(rows, cfg.stream.storage_budget_bytes)
    save_config(cfg, out / "config.yaml")
    atomic_write_parquet(out / "tenants.parquet", table)
    if attention:
        atomic_write_parquet(out / "attention.parquet", pd.DataFrame(attention))
    atomic_write_json(out / "summary.json", {"methods": summary, "events": [dataclasses.asdict(e) for e in events],
                                             "cost_model": costs.describe()})
    report = write_report(out, tenants=table, attention=pd.DataFrame(attention) if attention else None)
    print_tables(summary, table, costs.describe(), cfg)
    print(f"table: {out / 'tenants.parquet'}\nreport: {report}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    set_verbosity(QUIET if args.quiet else VERBOSE if args.verbose else NORMAL)  # as `cl-sim --quiet/--verbose`
    start = time.perf_counter()
    try:
        run(args)
    except CLSimError as exc:
        print(f"tenants: error: {exc}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
