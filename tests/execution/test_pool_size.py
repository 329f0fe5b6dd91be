"""The phase pool's shape from the cluster's resources, and which executor a run gets (no Ray)."""
import pytest

from cl_sim.config import ExecutionConfig, load_config
from cl_sim.errors import ConfigError
from cl_sim.execution import executor_kind, open_executor, resolve
from cl_sim.execution.local import LocalExecutor
from cl_sim.execution.pool_size import shape_line, size_pool

TWO_CORES = [{"CPU": 2.0}]


def test_a_run_gets_one_slot_with_every_core_and_a_sweep_a_slot_per_core():
    run = size_pool(ExecutionConfig(), TWO_CORES, parallel=1)
    assert (run.slots, run.num_workers, run.cpus_per_worker) == (1, 1, 1.98)  # a sliver left for trials
    sweep = size_pool(ExecutionConfig(), TWO_CORES, parallel=12)
    assert (sweep.slots, sweep.cpus_per_worker) == (2, 0.98)
    assert shape_line(sweep) == "2 slots x 1 worker x 0.98 CPU"
    assert size_pool(sweep, TWO_CORES, parallel=12) == sweep  # sizing a sized pool changes nothing


def test_explicit_settings_win_and_workers_share_the_cpus():
    ex = size_pool(ExecutionConfig(slots=3, cpus_per_worker=0.5), TWO_CORES, parallel=12)
    assert (ex.slots, ex.cpus_per_worker) == (3, 0.5)
    ddp = size_pool(ExecutionConfig(num_workers=2), [{"CPU": 8.0}], parallel=12)
    assert ddp.slots == 4 and ddp.slots * ddp.num_workers * ddp.cpus_per_worker <= 8


def test_gpus_one_per_worker_and_cpus_that_fit_on_a_gpu_node():
    nodes = [{"CPU": 4.0}, {"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}]
    ex = size_pool(ExecutionConfig(use_gpu=True), nodes, parallel=10)
    assert ex.slots == 2 and ex.cpus_per_worker <= 8
    with pytest.raises(ConfigError, match="execution.use_gpu: true, but the Ray cluster has 0 GPU"):
        size_pool(ExecutionConfig(use_gpu=True), TWO_CORES)


def test_auto_means_ray_against_a_cluster_else_the_default(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = load_config(None, [])
    assert cfg.execution.executor == "auto"
    assert executor_kind(cfg) == "local" and executor_kind(cfg, default="ray") == "ray"
    assert executor_kind(load_config(None, ["execution.address=auto"])) == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # as under `ray job submit`
    assert executor_kind(cfg) == "ray"
    assert executor_kind(load_config(None, ["execution.executor=local"])) == "local"  # --local


def test_open_executor_local_follows_the_protocol(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = resolve(load_config(None, [f"execution.store_dir={tmp_path}"]))
    assert cfg.execution.executor == "local"
    executor = open_executor(cfg, {}, threads=1)
    assert isinstance(executor, LocalExecutor) and executor.store.root == tmp_path
    for name in ("run", "submit", "evaluate", "close"):
        assert callable(getattr(executor, name))
    executor.close()

