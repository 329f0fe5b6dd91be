"""`cl-sim`: run, validate and report continual-learning streams.

    cl-sim run [CONFIG.yaml] [key=value ...]     # one stream x one method x one seed
    cl-sim run --local ...                       # in-process even against a Ray cluster (debugging)
    cl-sim validate CONFIG.yaml [key=value ...]  # check config and data, train nothing
    cl-sim report RUN_DIR                        # Markdown + PNG report of a finished run
    cl-sim show-config [CONFIG.yaml] [key=value ...]
    cl-sim store ls|verify|gc [--store DIR | CONFIG.yaml key=value ...] [--delete]

Bad input exits with status 2 and one line naming the problem.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import time
from pathlib import Path

from cl_sim.errors import CLSimError


def _split_args(args: list[str]) -> tuple[str | None, list[str]]:
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def _load(args: list[str]):
    from cl_sim.config import load_config

    path, overrides = _split_args(args)
    return load_config(path, overrides)


def print_run(rec, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="accuracy matrix R[i, j]: score on task j after arrival i")
    table.add_column("after")
    for name in rec.ordering:
        table.add_column(name, justify="right")
    for i, name in enumerate(rec.ordering):
        table.add_row(name, *[f"{x:.3f}" if x == x else "" for x in rec.R[i]])
    console.print(table)
    per_task = Table(title="per task")
    for col in ("task", "diag", "final", "ref", "KT", "KT vs matched", "forgetting", "infer. params", "teachers"):
        per_task.add_column(col, justify="right")
    fmt = lambda x, f="{:.3f}": "-" if x is None or x != x else f.format(x)  # noqa: E731
    for r in rec.tasks:
        per_task.add_row(r["task"], fmt(r["diag_score"]), fmt(r["final_score"]), fmt(r["ref_score"]),
                         fmt(r["kt"], "{:+.1f}"), fmt(r.get("kt_matched"), "{:+.1f}"), fmt(r["forgetting"], "{:.1f}"), f"{r['inference_params']:,}",
                         r["teachers"] or "-")
    console.print(per_task)
    s = rec.summary
    console.print("summary: " + "  ".join(f"{k}={fmt(v)}" for k, v in s.items()))
    console.print(f"results: {out}")


def cmd_run(args: list[str]) -> int:
    """cl-sim run [CONFIG.yaml] [--local] [key=value ...]: one stream x one method x one seed; results
    under output.dir (tables, config.yaml, report.md/.html). Keys: `cl-sim show-config`; SPEC §7."""
    from cl_sim.config import ordering
    from cl_sim.execution import open_executor, resolve
    from cl_sim.execution.base import overhead_line
    from cl_sim.preflight import preflight
    from cl_sim.progress import say
    from cl_sim.results import run_dir, write_run
    from cl_sim.simulate import run_stream

    local = "--local" in args  # debugging: phases in this process even against a cluster
    cfg = _load([a for a in args if a != "--local"])
    if local:
        cfg = cfg.replace(execution=dataclasses.replace(cfg.execution, executor="local"))
    tasks = preflight(cfg)  # everything validate rejects, before the store or results folder exists
    from cl_sim.store import Store
    from cl_sim.store_admin import foreign_note

    if note := foreign_note(Store(cfg.execution.store_dir), cfg.backbone.name):
        print(note, flush=True)
    start = time.perf_counter()
    cfg = resolve(cfg, default="local")  # auto: the Ray Train phase pool against a cluster
    executor = open_executor(cfg, tasks)
    opened = time.perf_counter() - start
    out = run_dir(cfg)
    print(f"cl-sim: {cfg.method.name} on {' > '.join(ordering(cfg))} ({cfg.backbone.name}, "
          f"{cfg.adapter.kind}, seed {cfg.training.seed}, {cfg.execution.executor} executor) -> {out}", flush=True)
    try:
        rec = run_stream(cfg, tasks, executor, ordering(cfg), run_id=out.name, log=say)
    finally:
        executor.close()
    write_run(cfg, rec, out, executor)
    print_run(rec, out)
    print(overhead_line(cfg, opened, getattr(executor, "overheads", [])))
    print(f"phases trained {executor.trained}, reused from store {executor.reused}; "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def cmd_validate(args: list[str]) -> int:
    """cl-sim validate [CONFIG.yaml] [key=value ...]: check the config, the data and the adapter
    positions as `run` would, and train nothing."""
    from cl_sim.preflight import preflight

    cfg = _load(args)
    tasks = preflight(cfg)
    for t in tasks.values():
        sizes = ", ".join(f"{k} {len(v)}" for k, v in t.splits.items())
        print(f"ok  {t.name}: {t.kind}, {t.num_labels} labels, metric {t.metric} ({sizes})")
    print(f"config ok: method {cfg.method.name}, {len(tasks)} tasks, backbone {cfg.backbone.name}")
    return 0


def cmd_show_config(args: list[str]) -> int:
    """cl-sim show-config [CONFIG.yaml] [key=value ...]: the full config after defaults and overrides."""
    import yaml

    print(yaml.safe_dump(_load(args).to_dict(), sort_keys=False))
    return 0


def cmd_report(args: list[str]) -> int:
    """cl-sim report RUN_DIR: report.md, report.html and the PNG plots of a finished run or sweep."""
    import pandas as pd

    from cl_sim.errors import ConfigError
    from cl_sim.report import write_report

    if len(args) != 1 or not Path(args[0]).is_dir():
        raise ConfigError(f"report: expected one results folder, got {' '.join(args) or 'nothing'}")
    folder = Path(args[0])
    tables = {}
    for name in ("matrix", "tasks", "attention", "tenants"):
        path = folder / f"{name}.parquet"
        tables[name] = pd.read_parquet(path) if path.is_file() else None
    if tables["matrix"] is None and tables["tasks"] is None:
        raise ConfigError(f"report: {folder} holds no matrix.parquet or tasks.parquet")
    path = write_report(folder, **tables)
    print(f"report: {path}\nhtml:   {path.with_suffix('.html')}")
    return 0


def cmd_store(args: list[str]) -> int:
    """cl-sim store ls|verify|gc [--store DIR | CONFIG.yaml key=value ...] [--delete]: list the store's
    entries, check their sha256, or remove entries from other code versions (gc is a dry run
    without --delete). The store is --store DIR, else the config's execution.store_dir."""
    from cl_sim.errors import ConfigError
    from cl_sim.store import Store
    from cl_sim import store_admin

    if not args or args[0] not in ("ls", "verify", "gc"):
        raise ConfigError("store: expected a subcommand: ls, verify or gc")
    sub, rest = args[0], list(args[1:])
    delete = "--delete" in rest
    rest = [a for a in rest if a != "--delete"]
    if delete and sub != "gc":
        raise ConfigError(f"store {sub}: --delete only applies to gc")
    if rest[:1] == ["--store"]:
        if len(rest) != 2:
            raise ConfigError("store: --store takes one folder and nothing else")
        raw = rest[1]
    else:
        raw = _load(rest).execution.store_dir
    root = Path(raw)
    if "://" in raw:
        raise ConfigError("store: ls/verify/gc work on local or NFS folders; for an object store, use its own "
                          "tools on the bucket (the layout is the same: states/, manifest/, scores/)")
    if not (root / "manifest").is_dir():
        raise ConfigError(f"store: {root} is not a cl_sim store (no manifest/ folder)")
    store = Store(root)
    if sub == "ls":
        rows = store_admin.list_entries(store)
        for r in rows:
            state = "current" if r["current"] else "other-version"
            print(f"{r['key']:<30} {r['kind']:<8} {r['task']:<14} {r['bytes'] / 1024:>9.1f} KiB "
                  f"{r['age_s'] / 3600:>7.1f} h  {r['fingerprint']:<19} {state}")
        n_cur = sum(r["current"] for r in rows)
        print(f"{len(rows)} entries ({n_cur} current, {len(rows) - n_cur} from other code versions), "
              f"{sum(r['bytes'] for r in rows) / 2**20:.1f} MiB in {root}")
        return 0
    if sub == "verify":
        problems = store_admin.verify(store)
        for line in problems:
            print(f"bad  {line}")
        print(f"verify {root}: {len(store.keys())} entries, {len(problems)} problems")
        return 1 if problems else 0
    plan = store_admin.gc_plan(store)
    for r in plan:
        print(f"{'remove' if delete else 'would remove'}  {r.path.relative_to(root)}  ({r.reason})")
    if delete:
        n = store_admin.remove(plan)
        print(f"gc {root}: removed {len(plan)} files ({n} entries)")
    else:
        print(f"gc {root}: {len(plan)} files would be removed (dry run; add --delete to remove them)")
    return 0


COMMANDS = {"run": cmd_run, "store": cmd_store, "validate": cmd_validate, "report": cmd_report, "show-config": cmd_show_config}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cl-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet", action="store_true", help="results only: no progress lines or bars (CI)")
    parser.add_argument("--verbose", action="store_true", help="also transformers' and Ray's own output")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    flags = {"--quiet", "--verbose"}  # also accepted after the command
    quiet, verbose = ns.quiet or "--quiet" in ns.args, ns.verbose or "--verbose" in ns.args
    ns.args = [a for a in ns.args if a not in flags]
    if {"-h", "--help"} & set(ns.args):  # `cl-sim run --help`: the command's own usage, not a config named --help
        print(inspect.cleandoc(COMMANDS[ns.command].__doc__))
        return 0
    from cl_sim.progress import NORMAL, QUIET, VERBOSE, set_verbosity

    set_verbosity(QUIET if quiet else VERBOSE if verbose else NORMAL)
    try:
        return COMMANDS[ns.command](ns.args)
    except CLSimError as exc:
        print(f"cl-sim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
