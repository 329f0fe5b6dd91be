"""Per-task training budgets (issue 28): a task's own `max_train_examples` / `epochs` win over the
`training` section for its phases only, change its store keys, and reach tasks.parquet's rows
(`train_examples`, `epochs`) and the reports' training-size table."""
import pandas as pd
import pytest

from cl_sim.config import load_config, ordering, task_budget
from cl_sim.errors import ConfigError
from cl_sim.execution.local import LocalExecutor
from cl_sim.methods.base import MethodContext
from cl_sim.simulate import run_stream
from cl_sim.store import Store
from cl_sim.report.tables import training_sizes
from cl_sim.tasks import load_tasks

# a teacher on all its rows for 2 epochs, a target on 8 rows for the default epoch
TASKS = ("tasks=[{name: teacher, family: a, n_train: 48, n_dev: 16, n_test: 16, max_train_examples: null, epochs: 2},"
         " {name: target, family: a, n_train: 48, n_dev: 16, n_test: 16, max_train_examples: 8}]")
TINY = ["backbone.name=tiny-bert", "backbone.max_length=24", "training.epochs=1", "training.batch_size=8",
        "training.max_train_examples=24", "training.threads=1", "training.dev_examples=0", TASKS]


def _phases(cfg):
    tasks = load_tasks(cfg)
    return {name: MethodContext(cfg, tasks[name], run=lambda p: p.key()).phase("adapter") for name in tasks}


def test_each_task_gets_its_own_budget_and_the_rest_the_training_default():
    cfg = load_config(None, TINY)
    assert task_budget(cfg, "teacher") == (None, 2)  # null: every row
    assert task_budget(cfg, "target") == (8, 1)
    default = load_config(None, TINY[:-1] + ["tasks=[{name: a, family: a, n_train: 48}]"])
    assert task_budget(default, "a") == (24, 1)  # nothing set: the training section's
    phases = _phases(cfg)
    assert (phases["teacher"].max_examples, phases["teacher"].epochs) == (None, 2)
    assert (phases["target"].max_examples, phases["target"].epochs) == (8, 1)


def test_the_store_key_changes_with_the_budget():
    before = _phases(load_config(None, TINY))["target"].key()
    assert _phases(load_config(None, TINY + ["tasks.1.max_train_examples=16"]))["target"].key() != before
    assert _phases(load_config(None, TINY + ["tasks.1.epochs=3"]))["target"].key() != before
    # the same budget spelled through the training section is the same phase, hence the same key
    same = TINY + ["tasks.1.max_train_examples=training", "training.max_train_examples=8"]
    assert _phases(load_config(None, same))["target"].key() == before


@pytest.mark.parametrize("override, message", [
    ("tasks.1.max_train_examples=0", "tasks.1.max_train_examples: must be > 0"),
    ("tasks.1.max_train_examples=-5", "tasks.1.max_train_examples: must be > 0"),
    ("tasks.1.max_train_examples=lots", "tasks.1.max_train_examples: expected an int > 0, null"),
    ("tasks.1.max_train_examples=2.5", "tasks.1.max_train_examples: expected int, str or null, got float"),
    ("tasks.1.max_train_examples=true", "tasks.1.max_train_examples: expected int, str or null, got bool"),
    ("tasks.0.epochs=0", "tasks.0.epochs: must be > 0"),
    ("tasks.0.epochs=-1", "tasks.0.epochs: must be > 0"),
    ("tasks.0.epochs=two", "tasks.0.epochs: expected int"),
])
def test_bad_budgets_name_the_key_as_overrides_spell_it(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(None, TINY + [override])


def test_rows_carry_the_budget_as_trained_and_the_table_shows_it(tmp_path):
    cfg = load_config(None, TINY + ["method.name=fusion"])
    tasks = load_tasks(cfg)
    rec = run_stream(cfg, tasks, LocalExecutor(Store(tmp_path / "store"), tasks), ordering(cfg), log=lambda m: None)
    rows = {r["task"]: r for r in rec.tasks}
    assert (rows["teacher"]["train_examples"], rows["teacher"]["epochs"]) == (48, 2)  # all 48 rows
    assert (rows["target"]["train_examples"], rows["target"]["epochs"]) == (8, 1)
    fusion = [p for p in rec.phases if p["task"] == "target" and p["kind"] == "fusion"]
    assert fusion and all(p["train_examples"] == 8 for p in fusion)  # the fusion phase keeps the target's budget
    t = pd.DataFrame(rec.tasks).assign(method="fusion")
    sizes = training_sizes(t).set_index("task")
    assert sizes.loc["teacher", "training examples"] == "48" and sizes.loc["target", "training examples"] == "8"
    assert sizes.loc["teacher", "epochs"] == "2"
