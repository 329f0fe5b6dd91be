"""`cl-sim`: run, validate and report continual-learning streams.

    cl-sim run [CONFIG.yaml] [key=value ...]     # one stream x one method x one seed
    cl-sim run --local ...                       # in-process even against a Ray cluster (debugging)
    cl-sim sweep CONFIG|NAME [key=value ...]     # many runs on Ray Tune: grids, searches, orderings
    cl-sim sweep task_order --smoke-test         # a shipped experiment config by name, tiny model
    cl-sim validate CONFIG.yaml [key=value ...]  # check config and data, train nothing
    cl-sim report RUN_DIR                        # Markdown + PNG report of a finished run
    cl-sim show-config [CONFIG.yaml] [key=value ...]
    cl-sim store ls|verify|gc [--store DIR | CONFIG.yaml key=value ...] [--delete]
    cl-sim export KEY|TASK --format safetensors|adapterhub DIR [--store DIR | CONFIG.yaml ...]

CONFIG is a YAML path or a shipped config's name (cl_sim/configs/: task_order, teacher_count,
low_shot, hparam_search, ordering_search, ...). Bad input exits with status 2 and one line naming
the problem. Parsing this help imports neither Ray nor torch.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import time
from pathlib import Path

from cl_sim.errors import CLSimError, PhaseFailed


def _split_args(args: list[str]) -> tuple[str | None, list[str]]:
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def _load(args: list[str]):
    """The config of a run file, or the base config of a sweep file (its `sweep:` checked too)."""
    from cl_sim.config import load_config

    return load_config(*_split_args(args))


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
    for col in ("task", "diag", "final", "ref", "KT", "KT vs step-matched", "KT vs work-matched", "forgetting",
                "infer. params", "teachers"):
        per_task.add_column(col, justify="right")
    fmt = lambda x, f="{:.3f}": "-" if x is None or x != x else f.format(x)  # noqa: E731
    for r in rec.tasks:
        kts = (fmt(r.get(k), "{:+.1f}") for k in ("kt", "kt_matched", "kt_work"))
        per_task.add_row(r["task"], fmt(r["diag_score"]), fmt(r["final_score"]), fmt(r["ref_score"]), *kts,
                         fmt(r["forgetting"], "{:.1f}"), f"{r['inference_params']:,}", r["teachers"] or "-")
    console.print(per_task)
    s = rec.summary
    console.print("summary: " + "  ".join(f"{k}={fmt(v)}" for k, v in s.items()))
    console.print(f"results: {out}")


def cmd_run(args: list[str]) -> int:
    """cl-sim run [CONFIG.yaml|NAME] [--local] [key=value ...]: one stream x one method x one seed.

    Writes <output.dir>/<output.name, else METHOD-CONFIGHASH>/:
      config.yaml        the resolved config (defaults and overrides applied)
      matrix.parquet     R[i, j]: the score on task j after arrival i
      tasks.parquet      a row per task: scores, KT, forgetting, teachers, parameters, bytes
      phases.parquet     a row per phase: store key, kind, wall time, where it ran
      summary.json       the run's metrics (avg_accuracy, bwt, ...) and R
      attention.parquet  fusion attention per position (fusion methods only)
      tensorboard/       event files: per-step loss, per-phase dev score (needs tensorboardX)
    Trained phases go to the store (execution.store_dir; default $CL_SIM_STORE, else
    ~/.cache/cl_sim/store) and are reused by any later run. Results print on stdout, progress on
    stderr. `cl-sim report DIR` writes report.md/.html from these tables; every key and its
    default: `cl-sim show-config`.
      --local          train in this process even against a Ray cluster (debugging)"""
    from cl_sim.config import ordering
    from cl_sim.execution import open_session
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
        say(note)
    start = time.perf_counter()
    with open_session(cfg, tasks, default="local") as session:  # auto: the pool against a cluster
        cfg, executor = session.cfg, session.executor
        out = run_dir(cfg)
        say(f"cl-sim: {cfg.method.name} on {' > '.join(ordering(cfg))} ({cfg.backbone.name}, "
            f"{cfg.adapter.kind}, seed {cfg.training.seed}, {cfg.execution.executor} executor) -> {out}")
        rec = run_stream(cfg, tasks, executor, ordering(cfg), run_id=out.name, log=say)
    write_run(cfg, rec, out, executor)
    from cl_sim.tb_events import write_events

    events = write_events(out / "tensorboard", Store(cfg.execution.store_dir), rec)  # the durable files
    print_run(rec, out)
    print(f"tensorboard --logdir {events}  (per-step loss, dev scores)" if events
          else "tensorboard: no event files (pip install tensorboardX)")
    say(session.overhead_line())
    print(f"phases trained {executor.trained}, reused from store {executor.reused}; "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def _sweep_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cl-sim sweep", add_help=False, allow_abbrev=False)
    p.add_argument("--smoke-test", action="store_true")
    p.add_argument("--address", default=None)
    p.add_argument("--local", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sample", type=int, default=None)
    p.add_argument("--config", default=None)  # the experiment scripts' spelling of CONFIG
    return p


def _check_flags(rest: list[str], parser: argparse.ArgumentParser) -> None:
    from cl_sim.errors import ConfigError
    from cl_sim.search_space import did_you_mean

    known = [o for a in parser._actions for o in a.option_strings] + ["--quiet", "--verbose", "--help"]
    for arg in rest:
        if arg.startswith("-"):
            raise ConfigError(f"unknown flag '{arg}'{did_you_mean(arg.split('=')[0], known)} (flags: {', '.join(known)})")


def cmd_sweep(args: list[str]) -> int:
    """cl-sim sweep CONFIG|NAME [flags] [key=value ...]: many runs on Ray Tune, one table per sweep.

    CONFIG is an experiment YAML (a `sweep:` section plus a config) or a shipped one's name:
    task_order, teacher_count, low_shot, hparam_search, ordering_search, orderings_120, ...
    Overrides: config keys (training.epochs=2) and sweep keys (sweep.seeds=[0,1],
    sweep.space.training.lr='{loguniform: [1e-4, 1e-2]}', sweep.search=optuna, sweep.scheduler=asha).

      --smoke-test     tiny random model and tasks, one epoch: seconds (CI)
      --address ADDR   Ray cluster to join (auto, host:port); `local` = always a new local one;
                       default: $RAY_ADDRESS, a running `ray start` cluster, else a new local one
      --local          train each trial's phases in its own process, not on the Ray Train phase pool
      --resume         continue the Tune experiment of an interrupted sweep (its searcher and finished
                       trials); finished phases are reused from the store in any case
      --sample K       a seeded sample of K orderings (= sweep.orderings=all sweep.sample=K)
      --quiet/--verbose

    Results: <output.dir>/<sweep.name>/tasks.parquet (a row per trial x task, a column per axis and
    searched key), trials.parquet, matrix.parquet, counts.json, report.md, confirm.json (a search's
    best config on fresh seeds), and Tune's own experiment folder (tune/: params.json, progress.csv,
    TensorBoard events) for ResultGrid and TensorBoard."""
    import os
    import time

    from cl_sim.errors import ConfigError

    parser = _sweep_parser()
    ns, rest = parser.parse_known_args(args)
    _check_flags(rest, parser)
    path, overrides = _split_args(rest)
    path = ns.config or path
    if ns.config and rest and "=" not in rest[0]:
        raise ConfigError(f"sweep: give the config once (--config {ns.config} and {rest[0]})")
    if path is None:
        raise ConfigError("sweep: expected a config: a YAML path or a shipped name (cl-sim sweep task_order)")
    start = time.perf_counter()
    from cl_sim.sweep import load_sweep, trials_for

    extra = (["sweep.orderings=all", f"sweep.sample={ns.sample}"] if ns.sample else []) + overrides
    cfg, sweep = load_sweep(path, extra + (["execution.executor=local"] if ns.local else []), smoke=ns.smoke_test)
    trials = trials_for(cfg, sweep)
    from cl_sim.progress import say
    from cl_sim.preflight import check_destinations

    check_destinations(cfg)  # before Ray starts: one line, nothing written

    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") and not Path(cfg.output.dir).is_absolute():
        say(f"note: running as a Ray job, relative output.dir/execution.store_dir live in the job's copy "
            f"of the working dir ({Path.cwd()}); pass absolute ones to keep them")
    from cl_sim.execution import ray_tune

    try:
        ray_tune.connect(ns.address, log=say)
    except ConnectionError as exc:  # no Ray cluster at --address
        raise ConfigError(f"sweep: {exc}") from None
    res = ray_tune.run_sweep(cfg, sweep, trials, log=say, resume=ns.resume)
    print_sweep(res, time.perf_counter() - start)
    if res.failures:
        print(f"cl-sim: error: {len(res.failures)} trial(s) failed (see {res.paths['failures']}); the tables "
              f"hold the others", file=sys.stderr)
        return 1
    return 0


def print_sweep(res, wall_s: float) -> None:
    from cl_sim.report.analysis import headline
    from cl_sim.sweep import report_tasks

    print(f"\n{headline(report_tasks(res.tables))}\n", flush=True)
    if res.confirm and res.confirm.get("mean") is not None:
        c = res.confirm
        low, high = c["ci95"]
        ci = f"95% interval [{low:.4f}, {high:.4f}]" if low is not None else "no interval (one seed)"
        print(f"best config: {c['best_trial']}\n  {c['metric']} in the search {c['search_score']:.4f} (the best of "
              f"{c['trials_searched']} trials: biased upward)\n  on fresh seeds {c['seeds']}: {c['mean']:.4f}, {ci}")
    if res.stopped:
        print(f"stopped early by the scheduler: {res.stopped} trial(s)")
    n = len(res.tables["tasks"])
    print(f"table:  {res.paths['tasks']}  ({n} rows = trial x task)\nreport: {res.paths['report']}\n"
          f"html:   {res.paths['report'].with_suffix('.html')}\ntune:   {res.out / 'tune'}\n"
          f"done in {wall_s:.1f} s", flush=True)


def cmd_validate(args: list[str]) -> int:
    """cl-sim validate [CONFIG.yaml] [key=value ...]: check the config, the data and the adapter
    positions as `run` would, and train nothing (a sweep file: also its trials; a reproduction file:
    every study)."""
    from cl_sim.config import load
    from cl_sim.preflight import preflight
    from cl_sim.sweep import trials_for

    cfg, sweep, studies = load(*_split_args(args))
    if studies is not None:  # a reproduction file: every study, as experiments/reproduce.py would run it
        for study in studies:
            n = len(preflight(study.config))
            print(f"study ok: {study.name}, {n} tasks, {len(trials_for(study.config, study.sweep))} trial(s) "
                  f"({', '.join(study.sweep.methods)})")
        print(f"config ok: {len(studies.studies)} studies, backbone {cfg.backbone.name}")
        return 0
    tasks = preflight(cfg)
    if sweep is not None:
        print(f"sweep ok: {sweep.name}, {len(trials_for(cfg, sweep))} grid trial(s) x num_samples "
              f"{sweep.num_samples}, search {sweep.search}, scheduler {sweep.scheduler}"
              + (f", space: {', '.join(sweep.space)}" if sweep.space else ""))
    for t in tasks.values():
        sizes = ", ".join(f"{k} {len(v)}" for k, v in t.splits.items())
        print(f"ok  {t.name}: {t.kind}, {t.num_labels} labels, metric {t.metric} ({sizes})")
    print(f"config ok: method {cfg.method.name}, {len(tasks)} tasks, backbone {cfg.backbone.name}")
    return 0


def cmd_show_config(args: list[str]) -> int:
    """cl-sim show-config [CONFIG.yaml|NAME] [key=value ...]: the full config after defaults and
    overrides; for a sweep file also its `sweep:` section (after defaults); for a reproduction file
    (base + studies) every study's."""
    import json

    import yaml

    from cl_sim.config import load

    cfg, sweep, studies = load(*_split_args(args))
    plain = lambda obj: json.loads(json.dumps(dataclasses.asdict(obj)))  # noqa: E731
    if studies is not None:
        tree = {"studies": {s.name: {"title": s.title, "teachers": s.teachers, "sweep": plain(s.sweep),
                                     **plain(s.config)} for s in studies}}
    else:
        tree = {**({"sweep": plain(sweep)} if sweep is not None else {}), **plain(cfg)}
    print(yaml.safe_dump(tree, sort_keys=False))
    return 0


def cmd_report(args: list[str]) -> int:
    """cl-sim report RUN_DIR: report.md, report.html and the PNG plots of a finished run or sweep."""
    import pandas as pd

    from cl_sim.errors import ConfigError
    from cl_sim.report.run import write_report

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
    root = raw if "://" in raw else Path(raw)
    if "://" not in raw and not (root / "manifest").is_dir():
        raise ConfigError(f"store: {root} is not a cl_sim store (no manifest/ folder)")
    store = Store(root)  # a folder or an object-store URI (s3://...): the same layout
    if sub == "ls":
        rows = store_admin.list_entries(store)
        for r in rows:
            state = "current" if r["current"] else "other-version"
            age = "      ?  " if r["age_s"] is None else f"{r['age_s'] / 3600:>7.1f} h"
            print(f"{r['key']:<30} {r['kind']:<8} {r['task']:<14} {r['bytes'] / 1024:>9.1f} KiB "
                  f"{age}  {r['fingerprint']:<19} {state:<13} {r['ran']}")
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
        print(f"{'remove' if delete else 'would remove'}  {r.path}  ({r.reason})")
    if delete:
        n = store_admin.remove(store, plan)
        print(f"gc {root}: removed {len(plan)} files ({n} entries)")
    else:
        print(f"gc {root}: {len(plan)} files would be removed (dry run; add --delete to remove them)")
    return 0


def cmd_export(args: list[str]) -> int:
    """cl-sim export KEY|TASK --format safetensors|adapterhub DIR [--store DIR | CONFIG.yaml key=value ...]:
    write a trained adapter and its task head from the store in a form other tools load.

      KEY|TASK   a store key (`cl-sim store ls`), or a task name: that task's latest deployed adapter
      --format   safetensors: DIR/adapter.safetensors (tensors, metadata: adapter kind, reduction
                 factor, backbone, task, label names) + DIR/cl_sim_adapter.json (the same, as JSON);
                 adapterhub: what AdapterHub's `model.load_adapter(DIR)` reads (adapter_config.json,
                 pytorch_adapter.bin, adapter.safetensors; head_config.json and the head's weights
                 where AdapterHub's heads compute ours: first-token pooling)
      DIR        the folder to write (created)
    The store is --store DIR, else the config's execution.store_dir; with a CONFIG the task's kind
    and label names come from it."""
    from cl_sim import export

    name, fmt, folder, store_dir, config_args = export.parse_args(args)
    cfg = _load(config_args) if config_args else None
    how, files, notes = export.from_store(name, fmt, folder, store_dir or (cfg or _load([])).execution.store_dir, cfg)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"exported {how}\nas {fmt} to {folder}: {', '.join(f.name for f in files)}")
    return 0


COMMANDS = {"run": cmd_run, "sweep": cmd_sweep, "store": cmd_store, "validate": cmd_validate, "report": cmd_report,
            "show-config": cmd_show_config, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cl-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet", action="store_true", help="results only: no progress lines or bars (CI)")
    parser.add_argument("--verbose", action="store_true", help="also transformers' and Ray's own output")
    parser.add_argument("command", help=", ".join(sorted(COMMANDS)))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    if ns.command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(ns.command, list(COMMANDS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        print(f"cl-sim: error: unknown command '{ns.command}'{hint} (commands: {', '.join(sorted(COMMANDS))})",
              file=sys.stderr)
        return 2
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
    except PhaseFailed as exc:  # the work failed where it ran (a Ray worker): one line, status 1
        print(f"cl-sim: failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
