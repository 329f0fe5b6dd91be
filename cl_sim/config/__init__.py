"""One typed config tree (frozen dataclasses), loaded through one door from YAML plus dotted
`key=value` overrides.

    cfg = load_config("experiments/configs/transfer_tiny.yaml", ["method.name=i2i", "training.epochs=2"])
    cfg, sweep, studies = load("task_order", smoke=True)   # any file shape (cl_sim.config.files)

Every key is checked once: unknown keys and wrong types raise `ConfigError` naming the dotted key
(`tree`); choices and ranges in each section's `__post_init__` (`schema`, `sweep`, and the option
dataclasses that live with their methods); cross-field rules, resources included, in `validate`
(`rules`). Importing this package loads neither torch nor Ray.
"""
from cl_sim.config.files import (CONFIGS, SMOKE, Loaded, Studies, Study, config_from_tree, config_hash, config_path,
                                 derive, load, load_config, read_tree, read_yaml, save_config, shipped_configs,
                                 sweep_from_tree)
from cl_sim.config.rules import check_resources, machine_cpus, validate
from cl_sim.config.schema import (FROM_TRAINING, PHASE_KINDS, AdapterConfig, BackboneConfig, Config, ExecutionConfig,
                                  MethodConfig, OutputConfig, StreamConfig, TaskConfig, TrainingConfig,
                                  default_store_dir, default_tasks, learns_only, ordering, task_budget, task_role)
from cl_sim.config.sweep import SweepConfig
from cl_sim.config.tree import build, merge, parse_overrides, set_dotted
from cl_sim.methods.adapter_distillation import DistillConfig
from cl_sim.methods.fusion import FusionConfig

__all__ = ["CONFIGS", "FROM_TRAINING", "PHASE_KINDS", "SMOKE", "AdapterConfig", "BackboneConfig", "Config",
           "DistillConfig", "ExecutionConfig", "FusionConfig", "Loaded", "MethodConfig", "OutputConfig",
           "StreamConfig", "Studies", "Study", "SweepConfig", "TaskConfig", "TrainingConfig", "build",
           "check_resources", "config_from_tree", "config_hash", "config_path", "default_store_dir", "default_tasks",
           "derive", "learns_only", "load", "load_config", "machine_cpus", "merge", "ordering", "parse_overrides", "read_tree",
           "read_yaml", "save_config", "set_dotted", "shipped_configs", "sweep_from_tree", "task_budget",
           "task_role", "validate"]
