"""Reproduce the seed papers' comparisons on real tasks (../shared/data), with seeds, intervals and
compute-matched controls, and write docs/RESULTS.md from the tables.

    python experiments/reproduce.py                        # CPU suite (MiniLM): about 3 h on 2 cores
    python experiments/reproduce.py --studies nli          # one study (nli 19 min, orderings 20 min,
                                                           # orderings_ff an estimated 60-90 min more on 2 idle cores)
    python experiments/reproduce.py --studies strong_nli   # issue 28, strong teachers (1,000 rows on CPU) ->
                                                           # small targets: strong_nli 29 min, weak_nli (its
                                                           # 200-row twin, reusing its ST-A phases) 15 min,
                                                           # strong_sentiment_similar 13 min, _random 4 min,
                                                           # strong_targets_ft 4 min (2 shared cores, load 12-45)
    python experiments/reproduce.py --config experiments/configs/reproduce_gpu.yaml   # papers' scale, GPU
    python experiments/reproduce.py --smoke-test           # tiny model, a few examples: minutes, for CI
    python experiments/reproduce.py --results-only         # rewrite RESULTS.md from the finished tables

Each study is one Ray Tune sweep (methods x orderings x seeds, phases on the Ray Train pool;
`--local` trains in the trial processes). Its tables go to <output.dir>/<study>/, the report beside
them, and the suite's RESULTS.md to --results (default: docs/RESULTS.md for the CPU suite, the
output folder otherwise; a smoke test never writes into docs/). Studies accumulate: a study this run
did not finish keeps the section RESULTS.md already had for it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(HERE / "configs" / "reproduce_cpu.yaml"))
    p.add_argument("--studies", default="", help="comma-separated study names (default: all)")
    p.add_argument("--results", default=None, help="where RESULTS.md goes")
    p.add_argument("--smoke-test", action="store_true", help="tiny-bert, 32 examples, 1 epoch, 2 seeds")
    p.add_argument("--local", action="store_true", help="train in the trial processes, not the Ray Train pool")
    p.add_argument("--results-only", action="store_true",
                   help="run nothing: rewrite RESULTS.md from the studies already finished in the output folder")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS or a new local one)")
    p.add_argument("--quiet", action="store_true", help="results only: no progress lines (CI)")
    p.add_argument("--verbose", action="store_true", help="also the trials', transformers' and Ray's own output")
    p.add_argument("overrides", nargs="*", help="key=value overrides of every study's config (e.g. output.dir=...)")
    return p.parse_args(argv)


def load_studies(config: str, overrides: list[str], smoke: bool, local: bool):
    """The suite's studies through the one loader (`cl_sim.config.load`), every one checked before any
    runs; a relative `data_root` is the repository's (not the working directory's)."""
    from cl_sim.config import load

    suite = load(config, overrides + (["execution.executor=local"] if local else []), smoke=smoke).studies
    if suite is None:
        from cl_sim.errors import ConfigError

        raise ConfigError(f"{config}: not a reproduction file (base: + studies:)")
    return {s.name: dataclasses.replace(s, config=s.config.replace(data_root=str(ROOT / s.config.data_root)))
            if s.config.data_root and not Path(s.config.data_root).is_absolute() else s for s in suite}


def main(argv=None) -> int:
    from cl_sim.errors import CLSimError
    from cl_sim.execution import ray_tune
    from cl_sim.io import atomic_write_json, atomic_write_text
    from cl_sim.report.results_md import machine_line, results_markdown
    from cl_sim.sweep import trials_for

    args = parse_args(argv)
    from cl_sim.progress import NORMAL, QUIET, VERBOSE, say, set_verbosity

    set_verbosity(QUIET if args.quiet else VERBOSE if args.verbose else NORMAL)
    try:
        studies = load_studies(args.config, args.overrides, args.smoke_test, args.local)
        names = [s for s in args.studies.split(",") if s] or list(studies)
        unknown = sorted(set(names) - set(studies))
        if unknown:
            raise CLSimError(f"--studies: unknown study {unknown[0]!r} (known: {', '.join(studies)})")
        if not args.results_only:
            ray_tune.connect(args.address, log=say)
        for name in ([] if args.results_only else names):
            cfg, sweep = studies[name].config, studies[name].sweep
            start = time.perf_counter()
            res = ray_tune.run_sweep(cfg, sweep, trials_for(cfg, sweep), log=say)
            command = ("python experiments/reproduce.py" + (f" --config {args.config}" if "cpu" not in args.config
                                                             else "") + f" --studies {name}"
                       + (" --local" if args.local else "") + (" --smoke-test" if args.smoke_test else ""))
            atomic_write_json(res.out / "study.json", {
                "name": name, "title": studies[name].title, "command": command,
                "seeds": list(sweep.seeds), "trials": len(res.tables["trials"]), "machine": machine_line(),
                "wall_s": time.perf_counter() - start, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "scale": scale_line(cfg), "failed_trials": len(res.failures),
                "phases_trained": sum(res.counts["trained"].values()),
                "phases_reused": sum(res.counts["reused"].values())})
            print(f"study {name}: {res.paths['report']}", flush=True)
            if res.failures:
                say(f"study {name}: {len(res.failures)} trial(s) failed, so it stays out of RESULTS.md; its finished "
                    f"phases are in the store: rerun `{command}` to finish it")
    except (CLSimError, ConnectionError, OSError, KeyError) as exc:
        print(f"reproduce: error: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(studies[names[0]].config.output.dir)
    default = (ROOT / "docs" / "RESULTS.md" if "cpu" in Path(args.config).name and not args.smoke_test
               else out_dir / "RESULTS.md")
    out = Path(args.results) if args.results else default
    titles = {n: study.title for n, study in studies.items()}
    previous = out.read_text() if out.exists() else ""  # studies not finished here keep their section
    finished = [{**s, "teachers": studies[s["name"]].teachers,  # the verdict's columns
                 "note": studies[s["name"]].note or s.get("note", ""),  # the file's note, as it reads now
                 "tasks": with_controls(s["tasks"], studies[s["name"]].config)}
                for s in finished_studies(out_dir, list(titles))]
    atomic_write_text(out, results_markdown(finished, titles, previous))
    print(f"results: {out}")
    return 0


def scale_line(cfg) -> str:
    t = cfg.training
    from cl_sim.config import task_budget

    examples = f"at most {t.max_train_examples} training examples per task" if t.max_train_examples else "full data"
    if any(task_budget(cfg, tc.name) != (t.max_train_examples, t.epochs) for tc in cfg.tasks):
        examples = f"each task's own training budget (table 'Training size per task'; default {examples})"
    return (f"{cfg.backbone.name}, {cfg.adapter.kind} adapters, {examples}, max length {cfg.backbone.max_length}, "
            f"{t.epochs} epochs, batch {t.batch_size}, lr {t.lr:g} (adapters) / {t.finetune_lr:g} (full FT)")


def with_controls(tasks, cfg):
    """`tasks` with the negative controls the study's file names now (`role: control`): a control
    trains as a target does, so a table written before the file named it is relabelled, not rerun."""
    from cl_sim.config import task_role

    if "role" not in tasks:
        return tasks
    named = tasks["task"].map(lambda t: task_role(cfg, t) == "control")
    return tasks.assign(role=tasks["role"].where(~(named & (tasks["role"] == "target")), "control"))


def finished_studies(out_dir: Path, names: list[str]) -> list[dict]:
    """Every study of the suite whose tables are in `out_dir` and whose trials all finished, in the
    suite's order (studies run in separate invocations add up; a rerun replaces its own)."""
    import pandas as pd

    from cl_sim.sweep import report_tasks

    done = []
    for name in names:
        folder = out_dir / name
        if not (folder / "study.json").exists() or not (folder / "tasks.parquet").exists():
            continue
        study = json.loads((folder / "study.json").read_text())
        if study.get("failed_trials"):  # an interrupted or partly failed study is not a finding yet
            continue
        tables = {t: pd.read_parquet(folder / f"{t}.parquet") if (folder / f"{t}.parquet").exists()
                  else pd.DataFrame() for t in ("tasks", "phases")}
        done.append({**study, "tasks": report_tasks(tables)})
    return done


if __name__ == "__main__":
    sys.exit(main())
