"""Methods (SPEC §3): one file each, an `arrive(ctx, teachers, history)` function, registered here.

A method turns one arriving task into phases (run through `ctx.run`, which reuses the store)
and says how every task it touches is now deployed.
"""
from __future__ import annotations

from cl_sim.method_names import USES_ADAPTERS, USES_TEACHERS, check_supported
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
# the names (and which use teachers / adapters) live in cl_sim.method_names, a leaf module that
# config and sweep import without the methods; tests/test_import_graph.py keeps the two in step

__all__ = ["METHODS", "USES_ADAPTERS", "USES_TEACHERS", "Arrival", "Deployed", "MethodContext", "Prior",
           "check_supported"]
