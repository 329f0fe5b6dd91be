"""The benchmarks a user reruns to check docs/PERFORMANCE.md still run (--smoke: tiny random BERT,
synthetic tasks, seconds) and print their tables; the numbers themselves are measured, not tested."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# AdapterHub's `adapters` pins transformers 4.x, so it lives in a venv of its own (vs_adapterhub_e2e.py)
ADAPTERHUB_PYTHON = Path(os.environ.get("CL_SIM_ADAPTERHUB_PYTHON", "/tmp/ahvenv/bin/python"))


@pytest.mark.parametrize("script,expect", [
    ("length_groups.py", "| **all** |"),
    ("precision.py", "| **all** |"),
    ("teacher_cache.py", "Initialize, all phases: now"),
])
def test_benchmark_smoke_runs(script, expect):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # ~40 s idle; far more on a busy box
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout, done.stdout[-2000:]


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_gpu_check_asserts_on_simulated_gpus():
    """The GPU check's own logic on two declared (CPU-backed) GPUs: 1 and 2 workers, fp32 and bf16."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--simulate", "2",
                           "--backbone", "tiny", "--methods", "st_a,finetune", "--n-train", "64"], cwd=ROOT,
                          capture_output=True, text=True, timeout=880)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    out = done.stdout
    assert "PASS  2 workers ~ 1 fp32 st_a" in out and "PASS  bf16 ~ fp32 2w finetune" in out
    assert "PASS  device 2w bf16 st_a: entries on ['cpu']" in out and "FAIL" not in out


def test_gpu_check_help_says_what_it_asserts():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Asserted" in done.stdout and "--bf16-tol" in done.stdout


@pytest.mark.timeout(1200)
@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "cb").is_dir(), reason="no ../shared/data")
def test_adapterhub_e2e_smoke_prints_the_like_for_like_table():
    """Both libraries run SICK -> CB -> fusion on a tiny random BERT, one process per stage."""
    if not ADAPTERHUB_PYTHON.exists() or subprocess.run(
            [str(ADAPTERHUB_PYTHON), "-c", "import adapters, accelerate, datasets"], capture_output=True).returncode:
        pytest.skip(f"no AdapterHub venv at {ADAPTERHUB_PYTHON} (CL_SIM_ADAPTERHUB_PYTHON)")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vs_adapterhub_e2e.py"), "--smoke",
                           "--adapterhub-python", str(ADAPTERHUB_PYTHON)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1150)  # ~1 min idle; far more on a busy box
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "like for like" in done.stdout and "| all stages | - |" in done.stdout, done.stdout[-2000:]
    assert "| fusion_cb | 32 |" in done.stdout, done.stdout[-2000:]
