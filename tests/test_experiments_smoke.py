"""The sweep scripts as users run them: `python experiments/<name>.py --smoke-test`, each starting
its own local Ray (`--address local`: never joining a cluster someone else started on this
machine) that stops when the script exits. Outputs and store go to tmp_path."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]


def command(script: str, tmp: Path, store: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "experiments" / f"{script}.py"), "--smoke-test", "--address", "local",
            f"output.dir={tmp}", f"execution.store_dir={store}", *extra]


def run_script(script: str, tmp: Path, store: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(script, tmp, store, *extra), cwd=ROOT, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def check_table(out: Path, name: str) -> pd.DataFrame:
    tasks = pd.read_parquet(out / f"{name}_smoke" / "tasks.parquet")
    trials = pd.read_parquet(out / f"{name}_smoke" / "trials.parquet")
    assert len(tasks) == len(trials) * 3  # one row per (trial, task): three smoke tasks
    assert not tasks.duplicated(["trial_id", "task"]).any()
    assert (out / f"{name}_smoke" / "report.md").is_file()
    return tasks


def test_task_order_smoke(tmp_path):
    proc = run_script("task_order", tmp_path, tmp_path / "store")
    tasks = check_table(tmp_path, "task_order")
    assert set(tasks["method"]) == {"st_a", "i2i"} and tasks["ordering"].nunique() == 2
    assert "phases trained" in proc.stderr and "table:" in proc.stdout  # progress on stderr, results on stdout
    assert "phases trained" not in proc.stdout and "pid=" not in proc.stdout + proc.stderr  # no Ray prefixes
    # the default path is the Ray Train pool; the end says where its slots' time went
    [busy] = [line for line in proc.stderr.splitlines() if line.startswith("ray: slots busy")]
    assert "phases" in busy and "evaluations" in busy


@pytest.mark.parametrize("script, column", [("teacher_count", "teacher_count"), ("low_shot", "low_shot_fraction")])
def test_other_sweeps_smoke(tmp_path, script, column):
    run_script(script, tmp_path, tmp_path / "store", "--local")  # the pool path: task_order and job-submit tests
    tasks = check_table(tmp_path, script)
    assert tasks[column].nunique() > 1


@pytest.mark.slow
def test_killed_driver_then_rerun_gives_the_uninterrupted_table(tmp_path):
    # in the trial processes (--local): durability is the store's; the pool's is test_ray_executor's
    run_script("task_order", tmp_path / "a", tmp_path / "store_a", "--local")
    store_b = tmp_path / "store_b"
    log = tmp_path / "b.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command("task_order", tmp_path / "b", store_b, "--local"), cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while len(list((store_b / "manifest").glob("*.json"))) < 4 and time.time() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, f"the sweep ended ({proc.returncode}) before it could be killed:\n" + log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started (its local Ray)
        proc.wait()
    assert not (tmp_path / "b" / "task_order_smoke" / "tasks.parquet").exists()
    done_before = len(list((store_b / "manifest").glob("*.json")))
    rerun = run_script("task_order", tmp_path / "b", store_b, "--local")
    assert "phases trained" in rerun.stderr
    counts = json.loads((tmp_path / "b" / "task_order_smoke" / "counts.json").read_text())
    # finished phases were kept (trial processes may finish a few more while they notice their
    # cluster is gone) and the rerun trained only the rest
    kept = sum(counts["store_before"].values())
    assert kept >= done_before > 0
    assert sum(counts["trained"].values()) == sum(counts["store_after"].values()) - kept
    for name in ("tasks", "matrix", "trials"):
        a = pd.read_parquet(tmp_path / "a" / "task_order_smoke" / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "b" / "task_order_smoke" / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "cb").is_dir(), reason="../shared/data is not beside the repo")
def test_reproduce_smoke_writes_results_from_the_tables(tmp_path):
    results = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "reproduce.py"), "--smoke-test", "--local",
                           "--address", "local", "--studies", "nli", "--results", str(results),
                           f"output.dir={tmp_path / 'out'}", f"execution.store_dir={tmp_path / 'store'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = results.read_text()
    for needle in ("ST-A - full FT, cb", "Fusion - ST-A", "AdapterDistillation - Fusion", "KT vs step-matched ST-A",
                   "mean forgetting", "Seeds: [0, 1]", "--studies nli --local --smoke-test", "Scale: tiny-bert"):
        assert needle in text, needle


def test_cl_sim_sweep_hparam_search_with_optuna_and_asha(tmp_path):
    """The must-show search: Optuna over training.lr and adapter.reduction_factor, ASHA over arrivals,
    a column per searched key, the best config re-run on fresh seeds."""
    pytest.importorskip("optuna")
    proc = subprocess.run([sys.executable, "-m", "cl_sim.cli", "sweep", "hparam_search", "--smoke-test", "--local",
                           "--address", "local", f"output.dir={tmp_path}", f"execution.store_dir={tmp_path / 'store'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "hparam_search_smoke"
    tasks = pd.read_parquet(out / "tasks.parquet")
    assert {"training.lr", "adapter.reduction_factor"} <= set(tasks.columns)
    assert tasks["training.lr"].between(1e-4, 1e-2).all()
    assert "asha: stopped" in proc.stderr and "trials early" in proc.stderr  # how many ASHA stopped, printed
    confirm = json.loads((out / "confirm.json").read_text())
    assert len(confirm["seeds"]) == 2 and 0 not in confirm["seeds"] and "biased upward" in confirm["note"]
    assert "best config:" in proc.stdout and "on fresh seeds" in proc.stdout
