"""The compute-matched controls (cl_sim/sim/references.py) ask for whole epochs: `min_steps` only adds
whole epochs, so a control whose floor adds none is ST-A's own phase, and controls of the same
epochs are one phase, trained once (issue 28: a teacher's controls; one per epoch count)."""
import pytest

from cl_sim.config import load_config, ordering
from cl_sim.execution.local import LocalExecutor
from cl_sim.sim.references import matched_reference_scores
from cl_sim.simulate import run_stream
from cl_sim.store import Store
from cl_sim.tasks import load_tasks

TASKS = ("tasks=[{name: t1, family: a, n_train: 24, n_dev: 16, n_test: 16, role: teacher},"
         " {name: small, family: a, n_train: 16, n_dev: 16, n_test: 16, role: target}]")
TINY = ["backbone.name=tiny-bert", "backbone.max_length=24", "training.epochs=1", "training.batch_size=8",
        "training.threads=1", "training.dev_examples=0", "method.distill.min_steps=8", TASKS]


def adapter_phases(tmp_path, method):
    """Per task, the adapter phases (ST-A and its controls) a `method` run left in the store."""
    cfg = load_config(None, TINY + [f"method.name={method}"])
    tasks = load_tasks(cfg)
    store = Store(tmp_path / "store")
    rec = run_stream(cfg, tasks, LocalExecutor(store, tasks), ordering(cfg), log=lambda m: None)
    phases = {}
    for k in store.keys():
        p = store.meta(k)["phase"]
        if p["kind"] == "adapter":
            phases.setdefault(p["task"], []).append(p["min_steps"])
    return {r["task"]: r for r in rec.tasks}, phases


@pytest.fixture(scope="module")
def fusion_run(tmp_path_factory):
    return adapter_phases(tmp_path_factory.mktemp("fusion"), "fusion")


def test_a_floor_within_the_tasks_own_epochs_is_st_as_phase(fusion_run):
    rows, phases = fusion_run
    assert phases["t1"] == [0]  # the teacher's step- and work-matched controls: its ST-A phase itself
    assert rows["t1"]["ref_matched_score"] == rows["t1"]["ref_score"]
    assert rows["t1"]["ref_work_score"] == rows["t1"]["ref_score"]


def test_a_floor_past_them_trains_its_own_longer_phase(fusion_run):
    rows, phases = fusion_run  # the target: its ST-A + Fusion's steps (4 > 2)
    assert rows["small"]["train_steps"] == 4
    assert sorted(phases["small"])[:2] == [0, 4]  # ST-A, and the step-matched control of 2 epochs
    assert all(n % 2 == 0 for n in phases["small"])  # every control: whole epochs of 2 steps


def test_controls_of_the_same_epochs_are_one_phase():
    cfg = load_config(None, TINY + ["method.name=fusion"])
    tasks = load_tasks(cfg)
    asked = []
    executor = type("Record", (), {"run": lambda self, p: asked.append(p.min_steps) or p.key(),
                                   "evaluate": lambda self, dep, task: (0.5, None)})()
    matched_reference_scores(cfg, ["small"] * 3, tasks, executor, [3, 4, 5])  # 2 steps per epoch
    assert asked == [4, 4, 6]
