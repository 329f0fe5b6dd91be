"""The Ray executor against the local reference: same results, DDP, a lost worker, store reuse.

One local Ray cluster for the whole module (started here, `ray.shutdown()` at the end; never
`ray stop`, which would stop every Ray process on the machine). Each test shuts its phase pool
down so that the next test's worker groups get the 2 CPUs.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from cl_sim.config import load_config  # noqa: E402
from cl_sim.errors import PhaseFailed, StoreError  # noqa: E402
from cl_sim.execution.local import LocalExecutor  # noqa: E402
from cl_sim.execution.pool_worker import CRASH_ENV, FAIL_RANK_ENV  # noqa: E402
from cl_sim.execution.ray_train import make_executor  # noqa: E402
from cl_sim.methods.base import MethodContext  # noqa: E402
from cl_sim.simulate import run_stream  # noqa: E402
from cl_sim.store import Store  # noqa: E402
from cl_sim.tasks import load_tasks  # noqa: E402

pytestmark = pytest.mark.ray

TASKS = "[" + ", ".join(f"{{name: {n}, family: {n}, n_train: 64, n_dev: 32, n_test: 32}}" for n in "ab") + "]"


def make_cfg(store_dir, *overrides):
    return load_config(None, ["backbone.name=tiny-bert", f"tasks={TASKS}", "training.epochs=1", "training.threads=1",
                              "execution.executor=ray", "execution.cpus_per_worker=1", "execution.max_failures=2",
                              f"execution.store_dir={store_dir}", *overrides])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # The crash hook is read in the Train workers, which inherit the environment of the Ray
    # processes started here; it stays inert until a test creates the file.
    marker = tmp_path_factory.mktemp("crash") / "crash-once"
    os.environ[CRASH_ENV] = str(marker)
    os.environ[FAIL_RANK_ENV] = str(marker.with_name("fail-rank-1"))
    ray.init(num_cpus=2, include_dashboard=True, namespace="cl_sim")
    yield marker
    ray.shutdown()
    os.environ.pop(CRASH_ENV, None)
    os.environ.pop(FAIL_RANK_ENV, None)


def quiet(msg):
    pass


def local_run(cfg, store_dir, order=("a", "b")):
    tasks = load_tasks(cfg)
    executor = LocalExecutor(Store(store_dir), tasks, threads=1)
    return run_stream(cfg, tasks, executor, order, log=quiet), executor


def ray_run(cfg, order=("a", "b")):
    tasks = load_tasks(cfg)
    executor = make_executor(cfg, Store(cfg.execution.store_dir), tasks, log=quiet)
    try:
        rec = run_stream(cfg, tasks, executor, order, log=quiet)
    finally:
        executor.shutdown()
    return rec, executor


@pytest.fixture(scope="module")
def i2i_runs(cluster, tmp_path_factory):
    """The same i2i stream (fusion, distillation and adapter phases) on both executors."""
    root = tmp_path_factory.mktemp("i2i")
    cfg = make_cfg(root / "ray-store", "method.name=i2i")
    ray_rec, ray_ex = ray_run(cfg)
    local_rec, local_ex = local_run(cfg, root / "local-store")
    return cfg, ray_rec, ray_ex, local_rec, local_ex


def test_ray_equals_local_for_one_worker(i2i_runs):
    cfg, ray_rec, ray_ex, local_rec, local_ex = i2i_runs
    assert np.array_equal(ray_rec.R, local_rec.R, equal_nan=True)
    assert ray_ex.trained == local_ex.trained > 0
    ray_store, local_store = Store(cfg.execution.store_dir), local_ex.store
    assert ray_store.keys() == local_store.keys()
    for key in local_store.keys():
        a, b = ray_store.states(key), local_store.states(key)
        for group in b:
            for name, tensor in b[group].items():
                assert torch.equal(a[group][name], tensor), f"{key} {group}/{name}"
        assert ray_store.meta(key)["execution"]["workers"] == 1
        # execution.checkpoint_every_s (30 s) reaches the workers: these second-long phases (distill:
        # 13 epochs for its step floor) report no checkpoint; each report waits ~0.2 s for the controller
        assert ray_store.meta(key)["execution"]["checkpoints"] == 0, key


def test_a_stopped_pool_leaves_no_train_checkpoints(i2i_runs):
    cfg, *_ = i2i_runs  # its slots stopped with the executor: each removed its Train run's folder
    checkpoints = Path(cfg.execution.store_dir) / "checkpoints"
    assert checkpoints.is_dir() and not any(checkpoints.iterdir()), sorted(p.name for p in checkpoints.iterdir())


def test_rerun_reuses_every_phase(i2i_runs):
    cfg, ray_rec, *_ = i2i_runs
    rec, executor = ray_run(cfg)  # a fresh store actor: it re-reads the durable files
    assert executor.trained == 0 and executor.reused > 0
    assert np.array_equal(rec.R, ray_rec.R, equal_nan=True)


def test_two_workers_agree_with_one_and_train_a_phase_once_after_an_error(cluster, tmp_path):
    cfg = make_cfg(tmp_path / "ddp-store", "execution.num_workers=2")
    tasks = load_tasks(cfg)
    executor = make_executor(cfg, Store(cfg.execution.store_dir), tasks, log=quiet)
    try:
        phase = MethodContext(cfg, tasks["a"], executor.run).phase("adapter")  # st_a's phase for a
        with pytest.raises(StoreError, match="no entry"):  # the worker's error reaches the caller
            executor.run(dataclasses.replace(phase, init="adapter-missing"))
        twice = [executor.submit(phase), executor.submit(phase)]  # e.g. two trials at once
        assert twice[0].result() == twice[1].result() == phase.key()
        assert (executor.trained, executor.reused) == (1, 1)
        ddp_rec = run_stream(cfg, tasks, executor, ("a",), log=quiet)
    finally:
        executor.shutdown()
    one_rec, one_ex = local_run(cfg, tmp_path / "local-store", order=("a",))
    ddp_store = Store(cfg.execution.store_dir)
    assert ddp_store.keys() == [phase.key()]
    assert ddp_store.meta(phase.key())["execution"]["workers"] == 2
    ddp, one = ddp_store.states(phase.key()), one_ex.store.states(phase.key())
    for group in one:
        for name, tensor in one[group].items():
            torch.testing.assert_close(ddp[group][name], tensor, atol=1e-5, rtol=1e-4)
    assert abs(ddp_rec.R[0, 0] - one_rec.R[0, 0]) <= 1 / 32  # at most one test example apart


@pytest.mark.timeout(300)
def test_an_error_on_one_rank_fails_the_phase_promptly_instead_of_hanging(cluster, tmp_path):
    # rank 1 raises before its first step while rank 0 goes on into DDP's first all-reduce: without
    # the failing rank taking the group down, rank 0 would wait forever (pytest-timeout would fire)
    cfg = make_cfg(tmp_path / "rank-store", "execution.num_workers=2", "execution.max_failures=0")
    tasks = load_tasks(cfg)
    fail = cluster.with_name("fail-rank-1")
    fail.write_text("rank 1 raises")
    executor = make_executor(cfg, Store(cfg.execution.store_dir), tasks, log=quiet)
    try:
        phase = MethodContext(cfg, tasks["a"], executor.run).phase("adapter")
        with pytest.raises(PhaseFailed, match=r"phase adapter of task a \(adapter-\w+\) failed: RuntimeError: "
                                             r"injected failure on rank 1 .*\[rank 1, node .*logs in "):
            executor.run(phase)  # one line: the phase, the cause, where the worker's log is
        fail.unlink()
        assert executor.run(phase) == phase.key()  # the pool serves the next job on a fresh group
    finally:
        fail.unlink(missing_ok=True)
        executor.shutdown()
    assert Store(cfg.execution.store_dir).keys() == [phase.key()]


def test_lost_worker_resumes_from_checkpoint(cluster, tmp_path):
    cfg = make_cfg(tmp_path / "crash-store", "training.epochs=2", "execution.checkpoint_every_s=0")
    cluster.write_text("crash rank 0 once after its first checkpoint")
    rec, executor = ray_run(cfg, order=("a",))
    assert not cluster.exists(), "the crash hook never fired"
    store = Store(cfg.execution.store_dir)
    [key] = store.keys()
    assert store.meta(key)["execution"]["resumed_from_epoch"] == 0
    assert store.meta(key)["execution"]["checkpoints"] == 1  # checkpoint_every_s=0: the resumed run's epoch 1
    ref_rec, ref_ex = local_run(cfg, tmp_path / "local-store", order=("a",))
    for group, part in ref_ex.store.states(key).items():
        for name, tensor in part.items():
            assert torch.equal(store.states(key)[group][name], tensor), f"{group}/{name}"
    assert rec.R[0, 0] == ref_rec.R[0, 0]


# every method with 2 DDP workers (gloo on CPU). Before: full fine-tuning left the unused pooler
# trainable and DDP failed on step 2 ("Expected to have finished reduction in the prior iteration");
# hidden-only distillation without a task term left the head out of the loss the same way.
METHODS = {
    "st_a": [], "head_only": [], "finetune": [], "sequential_ft": [], "fusion": [],
    "i2i": ["method.i2i_variant=FF"], "i2i-LL": ["method.name=i2i", "method.i2i_variant=LL"],
    "adapter_distillation": [],
    "distill-hidden-only": ["method.name=adapter_distillation", "method.distill.target=hidden",
                            "method.distill.task_weight=0"],
}


@pytest.fixture(scope="module")
def ddp_executor(cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp-all")
    cfg = make_cfg(root / "store", "execution.num_workers=2")
    executor = make_executor(cfg, Store(cfg.execution.store_dir), load_tasks(cfg), log=quiet)
    yield root, executor
    executor.shutdown()


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_with_two_workers(ddp_executor, name):
    root, executor = ddp_executor
    method = [] if any(o.startswith("method.name=") for o in METHODS[name]) else [f"method.name={name}"]
    cfg = make_cfg(root / "store", "execution.num_workers=2", *method, *METHODS[name])
    tasks = load_tasks(cfg)
    before = executor.trained
    rec = run_stream(cfg, tasks, executor, ("a", "b"), log=quiet)
    assert executor.trained > before and np.isfinite(np.diag(rec.R)).all()
    store = Store(cfg.execution.store_dir)
    assert {store.meta(k)["execution"]["workers"] for k in store.keys()} == {2}
    if name not in ("finetune", "sequential_ft"):  # frozen backbones: no dropout, so DDP = one process
        one, _ = local_run(cfg, root / f"local-{name}")
        assert np.nanmax(np.abs(rec.R - one.R)) <= 2 / 32, (rec.R, one.R)  # a test example or two apart
