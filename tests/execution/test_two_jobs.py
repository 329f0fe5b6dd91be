"""Two jobs on one cluster and one store (issue 24, defect 4): the short one finishes while the long
one is mid-stream, and the long one still completes. Before, both shared one named pool owned by the
first driver; the moment the short job's `shutdown()` ran, the long one died with `ActorDiedError`
("all references to the actor were removed", actor `cl_sim_pool:…`)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

from cl_sim.store import Store  # noqa: E402

pytestmark = pytest.mark.ray


def tasks(n: int, n_train: int) -> str:
    return "tasks=[" + ", ".join(f"{{name: t{i}, family: f{i}, n_train: {n_train}, n_dev: 16, n_test: 16}}"
                                 for i in range(n)) + "]"


def cl_sim_run(address: str, store, out, name: str, *overrides: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "cl_sim.cli", "run", "backbone.name=tiny-bert", "backbone.max_length=32",
            "training.threads=1", "execution.executor=ray", f"execution.address={address}",
            "execution.cpus_per_worker=1", "execution.slots=1", f"execution.store_dir={store}",
            f"output.dir={out}", f"output.name={name}", *overrides]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


SHORT_JOB = """
import sys, time
from pathlib import Path
import ray
from cl_sim.config import load_config
from cl_sim.execution.ray_train import make_executor
from cl_sim.simulate import run_stream
from cl_sim.store import Store
from cl_sim.tasks import load_tasks

address, store, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
ray.init(address=address, namespace="cl_sim")
cfg = load_config(None, ["backbone.name=tiny-bert", "backbone.max_length=32", "training.threads=1",
                         "training.epochs=1", "execution.executor=ray", "execution.cpus_per_worker=1",
                         "execution.slots=1", f"execution.store_dir={store}", sys.argv[4]])
tasks = load_tasks(cfg)
executor = make_executor(cfg, Store(store), tasks, log=lambda m: None)
run_stream(cfg, tasks, executor, ["s0"], log=lambda m: None)
print("short: trained", flush=True)
while not go.exists():  # the test lets it end once the long job is mid-stream
    time.sleep(0.2)
executor.shutdown()
print("short: done", flush=True)
"""


@pytest.mark.timeout(900)
def test_the_first_job_finishing_early_leaves_the_second_running(tmp_path):
    """As reproduced in the issue: the short job starts first (before, its pool was the one a later
    job on the same store and shape joined), the long one starts and trains, the short one shuts
    down and exits; the long one must still finish."""
    ray.init(num_cpus=2, include_dashboard=False, namespace="cl_sim")
    try:
        address, store, go = ray.get_runtime_context().gcs_address, tmp_path / "store", tmp_path / "go"
        short = subprocess.Popen([sys.executable, "-c", SHORT_JOB, address, str(store), str(go),
                                  "tasks=[{name: s0, family: g, n_train: 32, n_dev: 16, n_test: 16}]"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in short.stdout:  # Ray's own lines first, then the job's
            if line.strip() == "short: trained":
                break
        else:
            pytest.fail(f"the short job ended before training (status {short.wait()})")
        long = cl_sim_run(address, store, tmp_path, "long", tasks(4, 64), "training.epochs=10")
        first = len(Store(store).keys())
        deadline = time.monotonic() + 300
        while len(Store(store).keys()) == first and time.monotonic() < deadline:  # the long job trains
            assert long.poll() is None, long.communicate()[0][-3000:]
            time.sleep(0.5)
        go.touch()  # the short job shuts down and exits mid-way through the long one
        short_out = short.communicate(timeout=300)[0]
        assert short.returncode == 0 and "short: done" in short_out, short_out[-3000:]
        assert long.poll() is None, "the long job should still be running when the short one exits"
        long_out = long.communicate(timeout=600)[0]
        assert long.returncode == 0, long_out[-3000:]
        assert "phases trained" in long_out and "ActorDiedError" not in long_out
    finally:
        ray.shutdown()
