"""Two jobs on one cluster and one store (issue 24, defect 4): the short one finishes while the long
one is mid-stream, and the long one still completes. Before, both shared one named pool owned by the
first driver; the moment the short job's `shutdown()` ran, the long one died with `ActorDiedError`
("all references to the actor were removed", actor `cl_sim_pool:…`).

Both jobs are gated by files, not by timing: the long job trains, waits until the short one has shut
down and exited, then trains more on the same executor. (An earlier version raced a 10-epoch job
against the short one's exit and failed on a fast machine where the long job simply finished first.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

JOB = """
import sys, time
from pathlib import Path
import ray
from cl_sim.config import load_config
from cl_sim.execution.ray_train import make_executor
from cl_sim.simulate import run_stream
from cl_sim.store import Store
from cl_sim.tasks import load_tasks

name, address, store, go = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
first, then = sys.argv[5].split(","), [t for t in sys.argv[6].split(",") if t]
ray.init(address=address, namespace="cl_sim")
names = first + then
spec = ", ".join(f"{{name: {t}, family: f{i}, n_train: 32, n_dev: 16, n_test: 16}}" for i, t in enumerate(names))
cfg = load_config(None, ["backbone.name=tiny-bert", "backbone.max_length=32", "training.threads=1",
                         "training.epochs=1", "execution.executor=ray", "execution.cpus_per_worker=1",
                         "execution.slots=1", f"execution.store_dir={store}", f"tasks=[{spec}]"])
tasks = load_tasks(cfg)
executor = make_executor(cfg, Store(store), tasks, log=lambda m: None)
run_stream(cfg, tasks, executor, first, log=lambda m: None)
print(f"{name}: trained", flush=True)
while not go.exists():  # the test decides when this job goes on
    time.sleep(0.2)
if then:
    rec = run_stream(cfg, tasks, executor, then, run_id="then", log=lambda m: None)
    print(f"{name}: trained again, {len(rec.tasks)} rows", flush=True)
executor.shutdown()
print(f"{name}: done", flush=True)
"""


def start(name: str, address: str, store: Path, go: Path, first: str, then: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOB, name, address, str(store), str(go), first, then],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(proc: subprocess.Popen, line: str) -> None:
    for got in proc.stdout:  # Ray's own lines first, then the job's
        if got.strip() == line:
            return
    pytest.fail(f"the job ended before printing {line!r} (status {proc.wait()})")


@pytest.mark.timeout(900)
def test_the_first_job_finishing_early_leaves_the_second_running(tmp_path):
    """As reproduced in the issue: the short job starts first (before, its pool was the one a later
    job on the same store and shape joined), the long one starts and trains, the short one shuts
    down and exits; the long one must still train and finish on its own executor."""
    ray.init(num_cpus=2, include_dashboard=False, namespace="cl_sim")
    try:
        address, store = ray.get_runtime_context().gcs_address, tmp_path / "store"
        go_short, go_long = tmp_path / "go_short", tmp_path / "go_long"
        short = start("short", address, store, go_short, "s0")
        wait_for(short, "short: trained")
        long = start("long", address, store, go_long, "t0,t1", "t2,t3")
        wait_for(long, "long: trained")
        go_short.touch()  # the short job shuts down and exits while the long one is mid-way
        short_out = short.communicate(timeout=300)[0]
        assert short.returncode == 0 and "short: done" in short_out, short_out[-3000:]
        assert long.poll() is None, "the long job is gated; it cannot have ended yet"
        go_long.touch()  # now the long job trains new phases through the pool it shared
        long_out = long.communicate(timeout=600)[0]
        assert long.returncode == 0, long_out[-3000:]
        assert "long: trained again, 2 rows" in long_out and "long: done" in long_out, long_out[-3000:]
        assert "ActorDiedError" not in long_out
    finally:
        ray.shutdown()
