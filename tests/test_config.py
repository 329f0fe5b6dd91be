"""The config tree: unknown keys and wrong types name the dotted key, YAML + overrides, and
cross-field rules (ordering, duplicates, teacher_count, low-shot fraction, method)."""
import pytest
import yaml

from cl_sim.config import Config, TaskConfig, load_config, save_config
from cl_sim.errors import ConfigError

TASKS = ("tasks=[{name: a, family: a, n_train: 64, n_dev: 32, n_test: 32},"
         " {name: b, family: b, n_train: 64, n_dev: 32, n_test: 32},"
         " {name: c, family: c, n_train: 64, n_dev: 32, n_test: 32}]")


def _error(*overrides, path=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, [TASKS, *overrides])
    return str(info.value)


@pytest.mark.parametrize("override, key", [
    ("bogus=1", "'bogus'"),
    ("training.epoch=3", "'training.epoch'"),
    ("method.fusion.learning_rate=0.1", "'method.fusion.learning_rate'"),
])
def test_unknown_key_names_the_dotted_key(override, key):
    msg = _error(override)
    assert "unknown config key" in msg and key in msg


def test_unknown_key_inside_a_task_names_the_task_item(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("tasks:\n  - {name: a, family: a}\n  - {name: b, famly: b}\n")
    with pytest.raises(ConfigError, match=r"tasks\.1\.famly.*did you mean .tasks\.1\.family."):  # the form overrides take
        load_config(path)


@pytest.mark.parametrize("override, key", [
    ("training.epochs=abc", "training.epochs"),
    ("training.lr=[1]", "training.lr"),
    ("training.batch_size=1.5", "training.batch_size"),
    ("execution.use_gpu=maybe", "execution.use_gpu"),
    ("backbone=tiny-bert", "backbone"),
    ("stream.ordering=a", "stream.ordering"),
])
def test_wrong_type_names_the_key(override, key):
    msg = _error(override)
    assert msg.startswith(f"{key}:"), msg
    assert "expected" in msg


def test_yaml_then_overrides_then_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "backbone": {"name": "tiny-bert"},
        "training": {"epochs": 2, "batch_size": 8},
        "method": {"name": "i2i", "teacher_count": 1},
    }))
    cfg = load_config(path, [TASKS, "training.epochs=5", "method.fusion.lr=0.5"])
    assert cfg.training.epochs == 5  # override beats YAML
    assert cfg.training.batch_size == 8  # YAML kept where not overridden
    assert cfg.backbone.name == "tiny-bert" and cfg.method.teacher_count == 1
    assert cfg.method.fusion.lr == 0.5 and cfg.method.fusion.value_reg == 1e-2  # nested default kept
    assert cfg.training.lr == 1e-3 and cfg.adapter.kind == "pfeiffer"  # defaults
    assert [t.name for t in cfg.tasks] == ["a", "b", "c"]
    assert isinstance(cfg.tasks[0], TaskConfig) and cfg.tasks[0].n_train == 64


def test_exponent_without_dot_is_a_float(tmp_path):
    # YAML 1.1 reads `1e-3` as the string "1e-3"; a float field must still take it
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  lr: 1e-3\n  finetune_lr: 2e-5\n")
    cfg = load_config(path, [TASKS, "method.fusion.lr=3e-4"])
    assert cfg.training.lr == 0.001 and type(cfg.training.lr) is float
    assert cfg.training.finetune_lr == 2e-5
    assert cfg.method.fusion.lr == 3e-4 and type(cfg.method.fusion.lr) is float
    assert type(load_config(None, [TASKS, "training.lr=1"]).training.lr) is float  # int -> float


def test_a_string_is_still_rejected_for_a_float():
    assert _error("training.lr=fast").startswith("training.lr:")


@pytest.mark.parametrize("overrides, needle", [
    (["stream.ordering=[a, zz]"], "stream.ordering: unknown task 'zz'"),
    (["stream.ordering=[a, b, a]"], "stream.ordering: task 'a' appears more than once"),
    (["method.name=i2i", "method.teacher_count=3"], "method.teacher_count: 3"),
    (["method.teacher_count=-1", "method.name=fusion"], "method.teacher_count"),
    (["method.low_shot_fraction=0"], "method.low_shot_fraction"),
    (["method.low_shot_fraction=1.5"], "method.low_shot_fraction"),
    (["method.name=magic"], "method.name: unknown method 'magic'"),
    (["method.name=st_a", "method.teacher_count=1"], "method.teacher_count: method 'st_a' uses no teachers"),
    (["adapter.kind=lora"], "adapter.kind"),
    (["training.epochs=0"], "training.epochs"),
])
def test_cross_field_rules(overrides, needle):
    assert needle in _error(*overrides)


def test_duplicate_task_name():
    with pytest.raises(ConfigError, match="duplicate task name 'a'"):
        load_config(None, ["tasks=[{name: a}, {name: b}, {name: a, family: c}]"])


def test_boundary_values_are_accepted():
    cfg = load_config(None, [TASKS, "method.name=i2i", "method.teacher_count=2", "method.low_shot_fraction=1.0",
                             "stream.ordering=[c, a, b]"])
    assert cfg.method.teacher_count == 2 and cfg.method.low_shot_fraction == 1.0
    assert cfg.stream.ordering == ("c", "a", "b")


def test_saved_config_loads_back_to_the_same_config(tmp_path):
    cfg = load_config(None, [TASKS, "backbone.name=tiny-bert", "method.name=i2i", "method.teacher_count=1",
                             "stream.ordering=[b, a, c]", "training.lr=1e-3", "stream.times=[0, 2.5, 4]",
                             "stream.seconds_per_example={adapter: 0.01}"])
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    again = load_config(path)
    assert isinstance(again, Config)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_no_tasks_means_the_default_stream():
    cfg = load_config(None, [])
    assert [t.family for t in cfg.tasks] == ["a", "b", "c"]

