"""Methods (SPEC §3): one file each, holding its recipe `arrive(ctx, teachers, history)` and its
registry entry `METHOD = Method(...)` (uses teachers? adapters? single-task reference? sweep axes?),
registered once here. Everything else asks `METHODS`; nothing branches on a method's name.

A method turns one arriving task into phases (run through `ctx.run`, which reuses the store)
and says how every task it touches is now deployed. This package imports no torch (config
validation and sweeps read the registry); `MethodContext` is in `cl_sim.methods.base`.
"""
from __future__ import annotations

from cl_sim.errors import ConfigError
from cl_sim.methods import adapter_distillation, finetune, fusion, head_only, i2i, sequential_ft, st_a
from cl_sim.methods.spec import Arrival, Claim, Deployed, Method, Prior

METHODS: dict[str, Method] = {
    "st_a": st_a.METHOD,
    "head_only": head_only.METHOD,
    "finetune": finetune.METHOD,
    "sequential_ft": sequential_ft.METHOD,
    "fusion": fusion.METHOD,
    "i2i": i2i.METHOD,
    "adapter_distillation": adapter_distillation.METHOD,
}


def uses_teachers(name: str) -> bool:
    """Whether method `name` (or a sweep's variant label of it, `i2i-FF`) selects teachers; False
    for a name the registry does not hold."""
    method = METHODS.get(str(name)) or METHODS.get(str(name).split("-")[0])
    return bool(method and method.uses_teachers)


def check_supported(cfg) -> None:
    """Reject unknown methods and combinations a method cannot run, naming the key."""
    name = cfg.method.name
    if name not in METHODS:
        raise ConfigError(f"method.name: unknown method '{name}' (known: {', '.join(METHODS)})")
    if cfg.method.teacher_count is not None and not METHODS[name].uses_teachers:
        raise ConfigError(f"method.teacher_count: method '{name}' uses no teachers "
                          f"(only {', '.join(sorted(n for n, m in METHODS.items() if m.uses_teachers))})")
    ref, references = cfg.method.kt_reference, [n for n, m in METHODS.items() if m.single_task]
    if ref in METHODS and ref not in references:
        raise ConfigError(f"method.kt_reference: '{ref}' is order-dependent and gives no single-task reference "
                          f"score, so every KT would be undefined; use one of {', '.join(references)}")
    if ref not in references:
        raise ConfigError(f"method.kt_reference: '{ref}' is not a single-task reference; "
                          f"KT needs one of {', '.join(references)} (trained on each task alone)")


__all__ = ["METHODS", "Arrival", "Claim", "Deployed", "Method", "Prior", "check_supported", "uses_teachers"]
