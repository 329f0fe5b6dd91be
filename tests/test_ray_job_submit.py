"""The README's cluster path as CI runs it: `ray start --head` on a private head, then
`ray job submit --working-dir . -- python experiments/task_order.py --smoke-test`
(scripts/ray_job_smoke.sh, with token auth on). ~1 minute on 2 cores."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ray_job_submit_runs_the_smoke_ordering_study(tmp_path):
    out = tmp_path / "job"
    env = {**os.environ, "RAY_JOB_SMOKE_OUT": str(out)}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "ray_job_smoke.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=480)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ray job smoke: OK" in proc.stdout
    tasks = pd.read_parquet(out / "task_order_smoke" / "tasks.parquet")
    trials = pd.read_parquet(out / "task_order_smoke" / "trials.parquet")
    assert len(trials) > 0 and len(tasks) == 3 * len(trials)  # one row per (trial, task)
    assert set(tasks["method"]) == {"st_a", "i2i"}
