"""Task roles (issue 28): `teacher` tasks learn alone and teach, `target` tasks learn from the
teachers and never teach, so several targets share one stream (and one set of teachers) without
teaching each other; RESULTS.md's comparisons read the targets only."""
import pandas as pd
import pytest

from cl_sim.config import load_config, ordering
from cl_sim.errors import ConfigError
from cl_sim.execution.local import LocalExecutor
from cl_sim.report.results_md import targets
from cl_sim.simulate import run_stream
from cl_sim.store import Store
from cl_sim.tasks import load_tasks

TASKS = ("tasks=[{name: t1, family: a, n_train: 24, n_dev: 16, n_test: 16, role: teacher},"
         " {name: t2, family: b, n_train: 24, n_dev: 16, n_test: 16, role: teacher},"
         " {name: small, family: a, n_train: 16, n_dev: 16, n_test: 16, role: target},"
         " {name: small_b, family: a, n_train: 16, n_dev: 16, n_test: 16, role: target}]")
TINY = ["backbone.name=tiny-bert", "backbone.max_length=24", "training.epochs=1", "training.batch_size=8",
        "training.threads=1", "training.dev_examples=0", "method.kt_matched=false", TASKS]


def test_teachers_learn_alone_and_targets_learn_from_teachers_only(tmp_path):
    cfg = load_config(None, TINY + ["method.name=fusion"])
    tasks = load_tasks(cfg)
    rec = run_stream(cfg, tasks, LocalExecutor(Store(tmp_path / "store"), tasks), ordering(cfg), log=lambda m: None)
    taught = {r["task"]: r["teachers"] for r in rec.tasks}
    assert taught == {"t1": "", "t2": "", "small": "t1,t2", "small_b": "t1,t2"}  # not small -> small_b
    t = pd.DataFrame(rec.tasks)
    assert set(t.loc[targets(t), "task"]) == {"small", "small_b"}


def test_a_role_outside_the_three_is_named():
    with pytest.raises(ConfigError, match=r"tasks\[t1\]\.role: 'student' is not one of both, teacher, target, control"):
        load_config(None, TINY + ["tasks.0.role=student"])


def test_a_negative_control_learns_from_the_teachers_and_teaches_no_one(tmp_path):
    """Role `control` (an unrelated target): taught like a target, never a teacher of a later task."""
    tasks_ = ("tasks=[{name: t1, family: a, n_train: 24, n_dev: 16, n_test: 16, role: teacher},"
              " {name: unrelated, family: b, n_train: 16, n_dev: 16, n_test: 16, role: control},"
              " {name: small, family: a, n_train: 16, n_dev: 16, n_test: 16, role: both}]")
    cfg = load_config(None, TINY[:-1] + [tasks_, "method.name=fusion"])
    tasks = load_tasks(cfg)
    rec = run_stream(cfg, tasks, LocalExecutor(Store(tmp_path / "store"), tasks), ordering(cfg), log=lambda m: None)
    taught = {r["task"]: r["teachers"] for r in rec.tasks}
    assert taught == {"t1": "", "unrelated": "t1", "small": "t1"}  # the control taught no one
    assert {r["task"]: r["role"] for r in rec.tasks}["unrelated"] == "control"
    assert set(pd.DataFrame(rec.tasks).loc[targets(pd.DataFrame(rec.tasks)), "task"]) == {"small"}
