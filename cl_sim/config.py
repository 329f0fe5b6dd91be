"""One typed config tree (frozen dataclasses), loaded from YAML plus dotted `key=value` overrides.

    cfg = load_config("experiments/configs/quickstart.yaml", ["method.name=i2i", "training.epochs=2"])

Every key is checked once here: unknown keys and wrong types raise `ConfigError` naming the
dotted key; choices and ranges are checked in `__post_init__`; cross-field rules (ordering names,
teacher_count range, unsupported method/adapter combinations) in `validate`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from cl_sim.errors import ConfigError


def _choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):  # YAML reads .nan and .inf
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _fraction(key: str, value: float, low_open: bool = True, high_open: bool = False) -> None:
    """value in (0, 1] by default; the flags open or close either end."""
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (low_ok and high_ok):  # NaN fails both
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ConfigError(f"{key}: must be in {interval}, got {value!r}")


@dataclass(frozen=True)
class BackboneConfig:
    """name: `minilm` (offline default), `tiny-bert`/`tiny-roberta`/`tiny-distilbert`
    (random, built in code), a hub id or a local directory."""

    name: str = "minilm"
    pooling: str = "mean"  # sentence-transformer backbones (MiniLM) were trained with mean pooling
    max_length: int = 64

    def __post_init__(self):
        _choice("backbone.pooling", self.pooling, ("cls", "mean"))
        _positive("backbone.max_length", self.max_length)


@dataclass(frozen=True)
class AdapterConfig:
    """Bottleneck adapters (`houlsby`, `pfeiffer`) use reduction_factor; `adalink` uses rank."""

    kind: str = "pfeiffer"
    reduction_factor: int = 16
    bottleneck: int = 0  # > 0: bottleneck width, overriding reduction_factor (may exceed hidden)
    rank: int = 8
    non_linearity: str = "relu"

    def __post_init__(self):
        _choice("adapter.kind", self.kind, ("houlsby", "pfeiffer", "adalink"))
        _choice("adapter.non_linearity", self.non_linearity, ("relu", "gelu", "tanh", "identity"))
        _positive("adapter.reduction_factor", self.reduction_factor)
        _positive("adapter.rank", self.rank)
        _positive("adapter.bottleneck", self.bottleneck, allow_zero=True)


@dataclass(frozen=True)
class FusionConfig:
    """AdapterFusion (Pfeiffer et al. 2021). Papers' values: `method.fusion.lr=5e-5
    training.lr=1e-4` (too slow for CPU-sized budgets). Our default 3e-4 was measured on
    MiniLM (docs/methods.md): 5e-3 collapsed the related tasks to chance, 1e-3 and 3e-4 learned."""

    lr: float = 3e-4  # fusion weights (query, key, value)
    head_lr: Optional[float] = None  # the task head trained with the fusion; None = training.lr
    epochs: int = 0  # 0 = training.epochs
    value_init_noise: float = 1e-3
    value_reg: float = 1e-2  # L2 pull of V toward identity (kept on by default, SPEC §8)
    grad_accum: int = 1
    record_attention: bool = True
    placement: str = "ffn"  # fusion after the FFN adapters (the paper's place) or at `all` adapter slots
    # the same fusion with one key and one value product per token instead of N each (cl_sim/adapters/
    # fusion.py); equal up to float rounding. Off by default: docs/RESULTS.md was measured without it
    factorized: bool = False

    def __post_init__(self):
        _choice("method.fusion.placement", self.placement, ("ffn", "all"))
        _positive("method.fusion.lr", self.lr)
        _positive("method.fusion.value_init_noise", self.value_init_noise, allow_zero=True)
        if self.head_lr is not None:
            _positive("method.fusion.head_lr", self.head_lr)
        _positive("method.fusion.epochs", self.epochs, allow_zero=True)
        _positive("method.fusion.value_reg", self.value_reg, allow_zero=True)
        _positive("method.fusion.grad_accum", self.grad_accum)


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from a fused teacher into one adapter (I2I, AdapterDistillation)."""

    target: str = "both"  # logits | hidden | both
    temperature: float = 2.0
    logit_weight: float = 1.0
    hidden_weight: float = 100.0  # measured on MiniLM (docs/methods.md): 1.0 left the MSE term too weak
    task_weight: float = 0.0  # weight of the task loss during distillation (0 = pure KD)
    epochs: int = 0  # 0 = training.epochs
    min_steps: int = 100  # at least this many optimizer steps: regressing a teacher on a small task
    # needs steps, not epochs (MiniLM, 16 examples: 3 steps -> i2i 0.720, 100 -> 0.835; docs/methods.md)
    cache_teacher: bool = True  # the frozen teacher's outputs once per example (cl_sim/teacher_cache.py)
    cache_max_mb: int = 4096  # past this the teacher is recomputed on every step

    def __post_init__(self):
        _positive("method.distill.min_steps", self.min_steps, allow_zero=True)
        _choice("method.distill.target", self.target, ("logits", "hidden", "both"))
        _positive("method.distill.temperature", self.temperature)
        _positive("method.distill.epochs", self.epochs, allow_zero=True)
        _positive("method.distill.cache_max_mb", self.cache_max_mb, allow_zero=True)
        for key in ("logit_weight", "hidden_weight", "task_weight"):
            _positive(f"method.distill.{key}", getattr(self, key), allow_zero=True)


@dataclass(frozen=True)
class MethodConfig:
    """Which recipe runs per arriving task (SPEC §3) and its knobs.

    teacher_count: None = every previous task, 0 = none, k = at most k.
    i2i_variant: data used by Improvise/Initialize: F(ull) or L(ow-shot) each, e.g. "FL".
    """

    name: str = "st_a"
    teacher_count: Optional[int] = None
    teacher_selection: str = "recent"
    i2i_variant: str = "FF"
    low_shot_fraction: float = 0.05
    kt_reference: str = "st_a"  # KT compares every task with this method's score (CLiMB)
    # also KT against ST-A trained for as many steps as the method spent (teacher methods only)
    kt_matched: bool = True
    fusion: FusionConfig = field(default_factory=FusionConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self):
        _choice("method.teacher_selection", self.teacher_selection, ("recent", "random", "similar"))
        _choice("method.i2i_variant", self.i2i_variant, ("FF", "FL", "LL"))
        if self.teacher_count is not None and self.teacher_count < 0:
            raise ConfigError(f"method.teacher_count: must be >= 0 or null, got {self.teacher_count}")
        _fraction("method.low_shot_fraction", self.low_shot_fraction)


FROM_TRAINING = "training"  # a task's budget key left to the `training` section


@dataclass(frozen=True)
class TaskConfig:
    """One task. source `synthetic` (built-in family), `file` (csv/tsv/jsonl/parquet), `hf`, or
    `shared`: one of the benchmark tasks beside the repo (`../shared/data`, read in place through
    `data_root` / `$CL_SIM_DATA`) by its folder name, e.g. `{name: sst2, source: shared}`."""

    name: str
    source: str = "synthetic"
    dataset: str = ""  # shared: the shared task's folder name (default: name)
    tenant: str = "default"
    # synthetic
    family: str = "a"
    relatedness: float = 1.0
    n_train: int = 400
    n_dev: int = 200
    n_test: int = 200
    n_classes: int = 2
    n_signal_words: int = 60  # fewer signal / filler words make a task easier (tiny test models)
    n_filler_words: int = 228
    # file / hf
    paths: dict[str, str] = field(default_factory=dict)
    format: Optional[str] = None
    header: bool = True
    text_columns: tuple[str, ...] = ()
    label_column: str = "label"
    label_type: str = "classification"
    metric: str = "accuracy"
    dev_from_train: float = 0.0  # carve a dev split out of train when the source has none
    drop_empty_text: bool = False  # rows with an empty text segment: an error, or (true) dropped and counted
    hf_path: str = ""
    hf_config: Optional[str] = None
    hf_splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "dev": "validation"})
    # this task's training budget (strong teachers on all their rows, small targets on a few):
    # overrides training.max_train_examples / training.epochs for its phases only (`task_budget`);
    # `training` = the stream's default, null = every row. Checked in `validate`, keyed tasks.<i>.
    max_train_examples: Union[int, str, None] = FROM_TRAINING
    epochs: Optional[int] = None  # null = training.epochs
    # `teacher`: learns alone (no teachers), teaches later tasks; `target`: learns from the teachers,
    # never teaches (several targets share one stream without teaching each other); `both`: the usual
    role: str = "both"

    def __post_init__(self):
        key = f"tasks[{self.name}]"
        _choice(f"{key}.source", self.source, ("synthetic", "file", "hf", "shared"))
        _choice(f"{key}.role", self.role, ("both", "teacher", "target"))
        if self.source == "shared":
            from cl_sim.data.files import SHARED_TASKS

            _choice(f"{key}.dataset", self.dataset or self.name, tuple(SHARED_TASKS))
        _choice(f"{key}.label_type", self.label_type, ("classification", "regression", "multiple_choice"))
        _choice(f"{key}.metric", self.metric, ("accuracy", "f1", "matthews", "pearson", "spearman"))
        _fraction(f"{key}.relatedness", self.relatedness, low_open=False)
        _fraction(f"{key}.dev_from_train", self.dev_from_train, low_open=False, high_open=True)
        if self.source == "synthetic":
            for size in ("n_train", "n_dev", "n_signal_words", "n_filler_words"):  # every phase scores dev
                _positive(f"{key}.{size}", getattr(self, size))
            _positive(f"{key}.n_test", self.n_test, allow_zero=True)
            if self.n_classes < 2:
                raise ConfigError(f"{key}.n_classes: a classification task needs at least 2, got {self.n_classes}")
        if self.source in ("file", "hf") and not self.label_column:
            raise ConfigError(f"{key}.label_column: must name a column")
        if self.source == "file" and "train" not in self.paths:
            raise ConfigError(f"{key}.paths: a file task needs at least a 'train' path")
        if self.source in ("file", "hf") and not self.text_columns:
            raise ConfigError(f"{key}.text_columns: must name at least one column")


# = cl_sim.kinds.KINDS, which imports torch (tests/test_import_graph.py keeps the two in step)
PHASE_KINDS = ("adapter", "head", "finetune", "fusion", "distill")


@dataclass(frozen=True)
class StreamConfig:
    """The arrival timeline: an explicit ordering, or seeded Poisson arrivals per tenant.

    The timeline simulator (`cl_sim.timeline`) also reads its cost model and the tenants'
    storage budget from here: simulated phase seconds = phase_overhead_s + examples x epochs x
    seconds_per_example[kind] (kinds missing here use `cl_sim.timeline.SECONDS_PER_EXAMPLE`).
    """

    kind: str = "ordering"
    ordering: tuple[str, ...] = ()  # empty = tasks in the order listed
    horizon: float = 600.0  # Poisson: simulated seconds
    rate: float = 0.01  # Poisson: arrivals per tenant per simulated second
    seed: int = 0
    times: tuple[float, ...] = ()  # ordering: arrival times in simulated s (empty = 0, 1, 2, ...)
    pool: str = "tenant"  # Poisson: each tenant draws its own tasks (`tenant`), or all draw from one `shared` pool
    tenants: tuple[str, ...] = ()  # shared pool: the tenants that draw from it (empty = tenants named by the tasks)
    seconds_per_example: dict[str, float] = field(default_factory=dict)  # cost model, per phase kind
    phase_overhead_s: float = 0.0  # cost model: fixed simulated seconds per phase (start-up)
    storage_budget_bytes: int = 10_000_000  # storage the tenants share: how many of them fit

    def __post_init__(self):
        _choice("stream.kind", self.kind, ("ordering", "poisson"))
        _positive("stream.seed", self.seed, allow_zero=True)
        _positive("stream.horizon", self.horizon)
        _positive("stream.rate", self.rate)
        _choice("stream.pool", self.pool, ("tenant", "shared"))
        if any(t < 0 for t in self.times) or any(b < a for a, b in zip(self.times, self.times[1:])):
            raise ConfigError(f"stream.times: must be >= 0 and non-decreasing, got {list(self.times)}")
        for kind, seconds in self.seconds_per_example.items():
            _choice("stream.seconds_per_example", kind, PHASE_KINDS)
            _positive(f"stream.seconds_per_example.{kind}", seconds)
        _positive("stream.phase_overhead_s", self.phase_overhead_s, allow_zero=True)
        _positive("stream.seed", self.seed, allow_zero=True)
        _positive("stream.storage_budget_bytes", self.storage_budget_bytes, allow_zero=True)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3  # adapters and heads
    finetune_lr: float = 5e-5  # finetune / sequential_ft backbone
    weight_decay: float = 0.0
    grad_accum: int = 1
    max_train_examples: Optional[int] = None
    # dev examples a phase scores at its end (its `dev_score`, a progress figure: arrivals are scored
    # on the task's eval split separately): a seeded stratified subset; null = the whole dev split,
    # 0 = no dev pass. Whole dev splits (~2,000 rows) dominated the low-shot phases' wall time.
    dev_examples: Optional[int] = 500
    # false: no dev pass at the end of intermediate phases (I2I's Improvise and Initialize,
    # AdapterDistillation's fused teacher), whose dev scores no figure reads (large low-shot sweeps)
    dev_intermediate: bool = True
    eval_batch_size: int = 128
    seed: int = 0
    threads: int = 0  # torch intra-op threads per worker; 0 = every core given to the worker
    precision: str = "fp32"  # fp32 | bf16 (autocast)

    def __post_init__(self):
        for key in ("epochs", "batch_size", "grad_accum", "eval_batch_size"):
            _positive(f"training.{key}", getattr(self, key))
        _positive("training.lr", self.lr)
        _positive("training.finetune_lr", self.finetune_lr)
        _positive("training.weight_decay", self.weight_decay, allow_zero=True)
        _positive("training.seed", self.seed, allow_zero=True)  # numpy generators take no negative seeds
        if self.max_train_examples is not None:
            _positive("training.max_train_examples", self.max_train_examples)
        if self.dev_examples is not None:
            _positive("training.dev_examples", self.dev_examples, allow_zero=True)
        _positive("training.threads", self.threads, allow_zero=True)
        _choice("training.precision", self.precision, ("fp32", "bf16"))


@dataclass(frozen=True)
class ExecutionConfig:
    # auto: the Ray Train phase pool for experiments and against a cluster (address / $RAY_ADDRESS),
    # else in-process (cl_sim.execution.resolve); results record what ran (local or ray)
    executor: str = "auto"  # auto | local | ray
    num_workers: int = 1  # Ray Train workers per phase (DDP)
    use_gpu: bool = False
    cpus_per_worker: float = 0.0  # 0 = the cluster's CPUs shared out among slots x num_workers
    slots: int = 0  # phases that may run at the same time; 0 = sized from the cluster and the work (>= 1)
    address: Optional[str] = None  # existing Ray cluster; None = start a local one
    max_failures: int = 2
    # a phase on the pool checkpoints (ray.train.report) after an epoch only when this many seconds have
    # passed since its start or last checkpoint: a report costs ~0.2 s, and a lost worker redoes less
    # than this much work; 0 = after every epoch
    checkpoint_every_s: float = 30.0
    # on a cluster that autoscales, how long the pool waits for the GPUs (CPUs) its workers need before
    # it gives up with an error (it asks the autoscaler for them and prints progress while it waits)
    scale_timeout_s: float = 900.0
    store_dir: str = "runs/store"

    def __post_init__(self):
        _choice("execution.executor", self.executor, ("auto", "local", "ray"))
        _positive("execution.num_workers", self.num_workers)
        _positive("execution.slots", self.slots, allow_zero=True)
        _positive("execution.cpus_per_worker", self.cpus_per_worker, allow_zero=True)
        _positive("execution.max_failures", self.max_failures, allow_zero=True)
        _positive("execution.checkpoint_every_s", self.checkpoint_every_s, allow_zero=True)
        _positive("execution.scale_timeout_s", self.scale_timeout_s, allow_zero=True)
        if not self.store_dir:
            raise ConfigError("execution.store_dir: must name a folder")


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "runs"
    name: str = ""  # empty = derived from the config hash

    def __post_init__(self):
        if not self.dir:
            raise ConfigError("output.dir: must name a folder")
        if self.name in (".", "..") or any(c in self.name for c in "/\\"):
            raise ConfigError(f"output.name: must be one folder name (no path), got {self.name!r}")


@dataclass(frozen=True)
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    tasks: tuple[TaskConfig, ...] = ()
    data_root: Optional[str] = None  # relative task paths resolve here, then $CL_SIM_DATA
    stream: StreamConfig = field(default_factory=StreamConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections) -> "Config":
        return dataclasses.replace(self, **sections)


# ---------------------------------------------------------------- building from plain data


def _type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # "int, str or null"
        names = ["null" if a is type(None) else _type_name(a) for a in typing.get_args(tp)]
        return ", ".join(names[:-1]) + " or " + names[-1]
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp, value, key: str):
    """Check `value` against annotation `tp`, converting lists to tuples and dicts to dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                if len(args) == 2:
                    raise
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (arg, *_rest) = typing.get_args(tp)
        return tuple(_coerce(arg, v, f"{key}.{i}") for i, v in enumerate(value))  # the form overrides take
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        k_tp, v_tp = typing.get_args(tp)
        return {_coerce(k_tp, k, key): _coerce(v_tp, v, f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def build(cls, data: Any, key: str = ""):
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if isinstance(data, cls):
        return data
    where = key or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        import difflib

        prefix = f"{key}." if key else ""
        close = difflib.get_close_matches(str(unknown[0]), sorted(names), n=1, cutoff=0.6)
        hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'{hint} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{key}.{name}" if key else name)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = tree
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override '{dotted}': no item {part} in {'.'.join(parts[:i])}")
            node = node[int(part)]
            continue
        node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override '{dotted}': '{'.'.join(parts[: i + 1])}' is not a section")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"override '{dotted}': no item {last}")
        node[int(last)] = value
    else:
        node[last] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """`key=value` strings -> (key, YAML-parsed value) pairs."""
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((key.strip(), value))
    return pairs


def read_yaml(path: Path) -> dict:
    """A YAML file's top-level mapping ({} for an empty file); one ConfigError for anything else."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return tree


def load_config(path: Optional[str | Path] = None, overrides: list[str] = ()) -> Config:
    """Load a YAML config file (or the defaults) and apply dotted overrides, then validate."""
    tree: dict = {} if path is None else read_yaml(Path(path))
    pairs = parse_overrides(list(overrides))
    if "tasks" not in tree and any(k.startswith("tasks.") for k, _ in pairs):
        tree["tasks"] = [dataclasses.asdict(t) for t in default_tasks()]  # edit the default stream
    for key, value in pairs:
        _set_dotted(tree, key, value)
    cfg = build(Config, tree)
    if not cfg.tasks:
        cfg = cfg.replace(tasks=default_tasks())
    validate(cfg)
    return cfg


def default_tasks() -> tuple[TaskConfig, ...]:
    """Three unrelated synthetic tasks: the offline quickstart stream."""
    return tuple(TaskConfig(name=f"syn_{f}", family=f) for f in ("a", "b", "c"))


def ordering(cfg: Config) -> tuple[str, ...]:
    return cfg.stream.ordering or tuple(t.name for t in cfg.tasks)


def task_budget(cfg: Config, task: str) -> tuple[Optional[int], int]:
    """(max_examples, epochs) of `task`'s phases: the task's own budget where it sets one, else the
    `training` section's (None = every row). The one place a phase's training size is decided."""
    t = cfg.training
    tc = next((c for c in cfg.tasks if c.name == task), None)
    if tc is None:
        return t.max_train_examples, t.epochs
    rows = t.max_train_examples if tc.max_train_examples == FROM_TRAINING else tc.max_train_examples
    return rows, tc.epochs if tc.epochs is not None else t.epochs


def task_role(cfg: Config, task: str) -> str:
    """`task`'s role in the stream (`TaskConfig.role`; `both` for a task the config does not list)."""
    return next((c.role for c in cfg.tasks if c.name == task), "both")


def _check_budgets(tasks: tuple[TaskConfig, ...]) -> None:
    """Per-task budgets, keyed as overrides spell them (`tasks.1.max_train_examples`)."""
    for i, t in enumerate(tasks):
        rows, key = t.max_train_examples, f"tasks.{i}.max_train_examples"
        if isinstance(rows, str) and rows != FROM_TRAINING:
            raise ConfigError(f"{key}: expected an int > 0, null (every row) or '{FROM_TRAINING}' "
                              f"(training.max_train_examples), got {rows!r}")
        if isinstance(rows, int) and rows <= 0:
            raise ConfigError(f"{key}: must be > 0 (null = every row), got {rows!r}")
        if t.epochs is not None and t.epochs <= 0:
            raise ConfigError(f"tasks.{i}.epochs: must be > 0 (null = training.epochs), got {t.epochs!r}")


def validate(cfg: Config) -> None:
    """Cross-field checks that single sections cannot make."""
    _check_budgets(cfg.tasks)
    name = cfg.backbone.name
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        raise ConfigError(f"backbone.name: no model folder at {name}")
    names = [t.name for t in cfg.tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"tasks: duplicate task name '{dupes[0]}'")
    order = cfg.stream.ordering
    unknown = [n for n in order if n not in names]
    if unknown:
        raise ConfigError(f"stream.ordering: unknown task '{unknown[0]}' (tasks: {', '.join(names)})")
    repeated = sorted({n for n in order if order.count(n) > 1})
    if repeated:
        raise ConfigError(f"stream.ordering: task '{repeated[0]}' appears more than once")
    tc = cfg.method.teacher_count
    if tc is not None and tc > max(len(names) - 1, 0):
        raise ConfigError(
            f"method.teacher_count: {tc} is more than the {len(names) - 1} earlier tasks a stream of {len(names)} can have")
    from cl_sim.methods import check_supported  # the registry (no torch); methods import no config

    check_supported(cfg)


def config_hash(cfg: Config) -> str:
    import hashlib

    blob = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def save_config(cfg: Config, path: Path) -> None:
    from cl_sim.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(json.loads(json.dumps(cfg.to_dict())), sort_keys=False))
