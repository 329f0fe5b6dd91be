"""The config tree's sections, as frozen dataclasses: each checks its own choices and ranges in
`__post_init__` (one `ConfigError` naming the dotted key); `Config` holds them all. Rules that span
sections are in `cl_sim.config.rules`; loading files and overrides in `cl_sim.config.files`. A
method's own options live with the method (`FusionConfig` in `cl_sim.methods.fusion`,
`DistillConfig` in `cl_sim.methods.adapter_distillation`); `MethodConfig` holds them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from cl_sim.checks import choice, fraction, positive
from cl_sim.errors import ConfigError
from cl_sim.methods.adapter_distillation import DistillConfig
from cl_sim.methods.fusion import FusionConfig


@dataclass(frozen=True)
class BackboneConfig:
    """name: `minilm` (offline default), `tiny-bert`/`tiny-roberta`/`tiny-distilbert`
    (random, built in code), a hub id or a local directory."""

    name: str = "minilm"
    pooling: str = "mean"  # sentence-transformer backbones (MiniLM) were trained with mean pooling
    max_length: int = 64

    def __post_init__(self):
        choice("backbone.pooling", self.pooling, ("cls", "mean"))
        positive("backbone.max_length", self.max_length)


@dataclass(frozen=True)
class AdapterConfig:
    """Bottleneck adapters (`houlsby`, `pfeiffer`) use reduction_factor; `adalink` uses rank."""

    kind: str = "pfeiffer"
    reduction_factor: int = 16
    bottleneck: int = 0  # > 0: bottleneck width, overriding reduction_factor (may exceed hidden)
    rank: int = 8
    non_linearity: str = "relu"

    def __post_init__(self):
        choice("adapter.kind", self.kind, ("houlsby", "pfeiffer", "adalink"))
        choice("adapter.non_linearity", self.non_linearity, ("relu", "gelu", "tanh", "identity"))
        positive("adapter.reduction_factor", self.reduction_factor)
        positive("adapter.rank", self.rank)
        positive("adapter.bottleneck", self.bottleneck, allow_zero=True)


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
        choice("method.teacher_selection", self.teacher_selection, ("recent", "random", "similar"))
        choice("method.i2i_variant", self.i2i_variant, ("FF", "FL", "LL"))
        if self.teacher_count is not None and self.teacher_count < 0:
            raise ConfigError(f"method.teacher_count: must be >= 0 or null, got {self.teacher_count}")
        fraction("method.low_shot_fraction", self.low_shot_fraction)


ROLES = ("both", "teacher", "target", "control")  # `TaskConfig.role`
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
    # never teaches (several targets share one stream without teaching each other); `control`: a
    # target the teachers are not expected to help (a negative control, e.g. an unrelated task):
    # trained as a target, reported on its own and left out of pooled "targets with teachers"
    # comparisons (`report.results_md`); `both`: the usual
    role: str = "both"

    def __post_init__(self):
        key = f"tasks[{self.name}]"
        choice(f"{key}.source", self.source, ("synthetic", "file", "hf", "shared"))
        choice(f"{key}.role", self.role, ROLES)
        if self.source == "shared":
            from cl_sim.data.files import SHARED_TASKS

            choice(f"{key}.dataset", self.dataset or self.name, tuple(SHARED_TASKS))
        choice(f"{key}.label_type", self.label_type, ("classification", "regression", "multiple_choice"))
        choice(f"{key}.metric", self.metric, ("accuracy", "f1", "matthews", "pearson", "spearman"))
        fraction(f"{key}.relatedness", self.relatedness, low_open=False)
        fraction(f"{key}.dev_from_train", self.dev_from_train, low_open=False, high_open=True)
        if self.source == "synthetic":
            for size in ("n_train", "n_dev", "n_signal_words", "n_filler_words"):  # every phase scores dev
                positive(f"{key}.{size}", getattr(self, size))
            positive(f"{key}.n_test", self.n_test, allow_zero=True)
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

    The timeline simulator (`cl_sim.timeline`) also reads the tenants' storage budget and its cost
    model's settings from here: `seconds_per_example[kind]` pins a kind's seconds per example pass
    (kinds missing here are fitted to the store's measured phase times, else a labelled fallback:
    `cl_sim.sim.costs`), and `phase_overhead_s` is added to every phase.
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
        choice("stream.kind", self.kind, ("ordering", "poisson"))
        positive("stream.seed", self.seed, allow_zero=True)
        positive("stream.horizon", self.horizon)
        positive("stream.rate", self.rate)
        choice("stream.pool", self.pool, ("tenant", "shared"))
        if any(t < 0 for t in self.times) or any(b < a for a, b in zip(self.times, self.times[1:])):
            raise ConfigError(f"stream.times: must be >= 0 and non-decreasing, got {list(self.times)}")
        for kind, seconds in self.seconds_per_example.items():
            choice("stream.seconds_per_example", kind, PHASE_KINDS)
            positive(f"stream.seconds_per_example.{kind}", seconds)
        positive("stream.phase_overhead_s", self.phase_overhead_s, allow_zero=True)
        positive("stream.seed", self.seed, allow_zero=True)
        positive("stream.storage_budget_bytes", self.storage_budget_bytes, allow_zero=True)


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
            positive(f"training.{key}", getattr(self, key))
        positive("training.lr", self.lr)
        positive("training.finetune_lr", self.finetune_lr)
        positive("training.weight_decay", self.weight_decay, allow_zero=True)
        positive("training.seed", self.seed, allow_zero=True)  # numpy generators take no negative seeds
        if self.max_train_examples is not None:
            positive("training.max_train_examples", self.max_train_examples)
        if self.dev_examples is not None:
            positive("training.dev_examples", self.dev_examples, allow_zero=True)
        positive("training.threads", self.threads, allow_zero=True)
        choice("training.precision", self.precision, ("fp32", "bf16"))


def default_store_dir() -> str:
    """The phase store when `execution.store_dir` is not set: `$CL_SIM_STORE`, else
    `$XDG_CACHE_HOME/cl_sim/store` (`~/.cache/cl_sim/store`). Outside `runs/` on purpose: deleting
    results must not delete the costly cache of trained phases."""
    import os

    if os.environ.get("CL_SIM_STORE"):
        return os.path.expanduser(os.environ["CL_SIM_STORE"])
    return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cl_sim" / "store")


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
    store_dir: str = field(default_factory=default_store_dir)  # a folder or a URI (s3://...)

    def __post_init__(self):
        if self.store_dir.startswith("~"):  # `execution.store_dir=~/store` from a shell that did not expand it
            import os

            object.__setattr__(self, "store_dir", os.path.expanduser(self.store_dir))
        choice("execution.executor", self.executor, ("auto", "local", "ray"))
        positive("execution.num_workers", self.num_workers)
        positive("execution.slots", self.slots, allow_zero=True)
        positive("execution.cpus_per_worker", self.cpus_per_worker, allow_zero=True)
        positive("execution.max_failures", self.max_failures, allow_zero=True)
        positive("execution.checkpoint_every_s", self.checkpoint_every_s, allow_zero=True)
        positive("execution.scale_timeout_s", self.scale_timeout_s, allow_zero=True)
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
    """The whole tree. `tasks`: the loader gives an absent key the default stream (`default_tasks`);
    an empty list fails `validate`."""

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


def learns_only(role: str) -> bool:
    """Whether a task with `role` learns from teachers but never teaches (`target`, `control`)."""
    return role in ("target", "control")


def task_role(cfg: Config, task: str) -> str:
    """`task`'s role in the stream (`TaskConfig.role`; `both` for a task the config does not list)."""
    return next((c.role for c in cfg.tasks if c.name == task), "both")
