"""The benchmarks a user reruns to check docs/PERFORMANCE.md still run (--smoke: tiny random BERT,
synthetic tasks, seconds) and print their tables; the numbers themselves are measured, not tested."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script,expect", [
    ("length_groups.py", "| **all** |"),
    ("precision.py", "| **all** |"),
    ("teacher_cache.py", "Initialize, all phases: now"),
])
def test_benchmark_smoke_runs(script, expect):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout, done.stdout[-2000:]
