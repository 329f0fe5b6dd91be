"""The method names and what each method needs, without the methods themselves.

A leaf module (imports only `cl_sim.errors`): `cl_sim.config` validates method names here and
`cl_sim.sweep` builds grids from it without importing torch, the model or the phases. Every name
here has a recipe in `cl_sim.methods.METHODS` (checked when that module imports).
"""
from __future__ import annotations

from cl_sim.errors import ConfigError

METHOD_NAMES = ("st_a", "head_only", "finetune", "sequential_ft", "fusion", "i2i", "adapter_distillation")
USES_TEACHERS = frozenset({"fusion", "i2i", "adapter_distillation"})
USES_ADAPTERS = frozenset({"st_a", "fusion", "i2i", "adapter_distillation"})
# KT's S_ref is one task trained alone (CLiMB); sequential_ft depends on the order, so it is none
KT_REFERENCES = ("st_a", "head_only", "finetune")


def check_supported(cfg) -> None:
    """Reject unknown methods and combinations a method cannot run, naming the key."""
    name = cfg.method.name
    if name not in METHOD_NAMES:
        raise ConfigError(f"method.name: unknown method '{name}' (known: {', '.join(METHOD_NAMES)})")
    if cfg.method.teacher_count is not None and name not in USES_TEACHERS:
        raise ConfigError(f"method.teacher_count: method '{name}' uses no teachers "
                          f"(only {', '.join(sorted(USES_TEACHERS))})")
    if cfg.method.kt_reference not in KT_REFERENCES:
        raise ConfigError(f"method.kt_reference: '{cfg.method.kt_reference}' is not a single-task reference; "
                          f"KT needs one of {', '.join(KT_REFERENCES)} (trained on each task alone)")
