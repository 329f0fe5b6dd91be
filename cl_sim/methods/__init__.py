"""Methods (SPEC §3): one file each, an `arrive(ctx, teachers, history)` function, registered here.

A method turns one arriving task into phases (run through `ctx.run`, which reuses the store)
and says how every task it touches is now deployed.
"""
from __future__ import annotations

from cl_sim.config import TEACHER_METHODS
from cl_sim.methods import adapter_distillation, finetune, fusion, head_only, i2i, sequential_ft, st_a
from cl_sim.methods.base import Arrival, Deployed, MethodContext, Prior

METHODS = {
    "st_a": st_a.arrive,
    "head_only": head_only.arrive,
    "finetune": finetune.arrive,
    "sequential_ft": sequential_ft.arrive,
    "fusion": fusion.arrive,
    "i2i": i2i.arrive,
    "adapter_distillation": adapter_distillation.arrive,
}
USES_TEACHERS = set(TEACHER_METHODS)
USES_ADAPTERS = {"st_a", "fusion", "i2i", "adapter_distillation"}


__all__ = ["METHODS", "Arrival", "Deployed", "MethodContext", "Prior"]
