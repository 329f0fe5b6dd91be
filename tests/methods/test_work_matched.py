"""The work-matched ST-A control (`cl_sim.sim.references`): an arrival's work in example-passes follows
the definition, the control trains ST-A for that work, and it is never shorter than the
step-matched control where the method's steps carry full batches."""
import math
from pathlib import Path

import pytest

from cl_sim.config import load_config, ordering
from cl_sim.execution.local import LocalExecutor
from cl_sim.kinds.fusion import TEACHER_STEP_COST
from cl_sim.methods.base import MethodContext
from cl_sim.sim.references import FORWARD_SHARE, phase_work, work_matched_steps
from cl_sim.simulate import run_stream
from cl_sim.store import Store
from cl_sim.tasks import load_tasks

TRANSFER = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "transfer_tiny.yaml"
EPOCHS, FLOOR = 1, 6  # training.epochs, method.distill.min_steps
QUICK = (f"training.epochs={EPOCHS}", f"method.distill.min_steps={FLOOR}", "training.threads=1")
C = TEACHER_STEP_COST["plain"]  # each fused adapter beyond the first, as a share of a pass
SMALL = 16  # `small`'s training rows = one batch: one step per epoch
RUNS = {"fusion": ("method.name=fusion",), "i2i": ("method.name=i2i",),
        "adapter_distillation": ("method.name=adapter_distillation",),
        "ad_uncached": ("method.name=adapter_distillation", "method.distill.cache_teacher=false")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("store"))
    out = {}
    for label, overrides in RUNS.items():  # one store: the runs share their ST-A phases
        cfg = load_config(TRANSFER, [*QUICK, *overrides])
        tasks = load_tasks(cfg)
        rec = run_stream(cfg, tasks, LocalExecutor(store, tasks, threads=1), ordering(cfg), log=lambda m: None)
        out[label] = (cfg, tasks, rec, store)
    return out


# `small` by hand: its phases' steps are epochs (16 rows, batch 16); a fusion over k adapters costs
# 1 + C (k - 1) a pass; a distillation adds its teacher's forward (a third of a pass of the teacher
# fusion), once per row when cached, else once per example of every step
EXPECTED_SMALL = {
    # ST-A adapter + fusion over rel_a, rel_b and its own adapter
    "fusion": EPOCHS * SMALL + EPOCHS * SMALL * (1 + 2 * C),
    # Improvise (fusion over 2 teachers) + Initialize (distillation: the step floor) + Train
    "i2i": EPOCHS * SMALL * (1 + C) + FLOOR * SMALL + SMALL * FORWARD_SHARE * (1 + C) + EPOCHS * SMALL,
    # student adapter + fusion over 2 teachers and the student + distillation (the step floor)
    "adapter_distillation": EPOCHS * SMALL + EPOCHS * SMALL * (1 + 2 * C) + FLOOR * SMALL
    + SMALL * FORWARD_SHARE * (1 + 2 * C),
    "ad_uncached": EPOCHS * SMALL + EPOCHS * SMALL * (1 + 2 * C) + FLOOR * SMALL
    + FLOOR * SMALL * FORWARD_SHARE * (1 + 2 * C),
}


@pytest.mark.parametrize("label", list(RUNS))
def test_an_arrivals_work_follows_the_definition(runs, label):
    cfg, tasks, rec, store = runs[label]
    first, small = rec.tasks[0], rec.tasks[-1]
    assert first["train_work"] == pytest.approx(EPOCHS * 200)  # plain ST-A: epochs x rows
    assert small["train_work"] == pytest.approx(EXPECTED_SMALL[label])
    assert small["train_work"] == pytest.approx(sum(phase_work(store, k) for k in small["phase_keys"].split(",")))


@pytest.mark.parametrize("label", list(RUNS))
def test_work_matched_steps_equal_step_matched_for_adapter_work_and_exceed_them_for_teacher_phases(runs, label):
    cfg, tasks, rec, store = runs[label]
    for row in rec.tasks:
        steps = work_matched_steps(cfg, tasks[row["task"]], row["train_work"])
        if row["n_teachers"] == 0:  # the first arrival: one adapter phase, both controls are the same phase
            assert steps == row["train_steps"]
            assert row["ref_work_score"] == row["ref_matched_score"]
        else:
            assert steps >= row["train_steps"]
    small = rec.tasks[-1]
    steps = work_matched_steps(cfg, tasks["small"], small["train_work"])
    assert steps == math.ceil(EXPECTED_SMALL[label] / SMALL - 1e-9) > small["train_steps"]
    # the control that scored `ref_work_score`: ST-A on `small` alone with that step floor, in the store
    ctx = MethodContext(cfg, tasks["small"], lambda p: "")
    key = ctx.phase("adapter", min_steps=steps).key()
    assert store.has(key) and store.meta(key)["metrics"]["steps"] == steps
    assert small["kt_work"] == small["kt_work"] and rec.summary["mean_kt_work"] is not None  # defined


def test_no_matched_control_without_teachers_or_with_kt_matched_off(tmp_path):
    for overrides in (["method.name=st_a"], ["method.name=fusion", "method.kt_matched=false"]):
        cfg = load_config(TRANSFER, [*overrides, "training.epochs=1", "training.threads=1"])
        tasks = load_tasks(cfg)
        rec = run_stream(cfg, tasks, LocalExecutor(Store(tmp_path / overrides[-1]), tasks, threads=1), ordering(cfg),
                         log=lambda m: None)
        assert all(r["train_work"] is None and r["ref_work_score"] is None for r in rec.tasks)
        assert rec.summary["mean_kt_work"] is None
