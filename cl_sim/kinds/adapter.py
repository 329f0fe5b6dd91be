"""adapter: train a fresh (or initialised) adapter + head on the task (ST-A; I2I's Train)."""
from __future__ import annotations

from dataclasses import dataclass

from cl_sim.kinds.base import Built, Kind, adapter_modules, head_lr, load_init_head, plain_loss


@dataclass(frozen=True)
class AdapterSpec:
    """No fields of its own: the adapter's shape is `Phase.adapter`, its start `Phase.init`."""


def build(phase, task, model, init, source) -> Built:
    load_init_head(model, init)
    model.add_adapter("student")
    if init:
        model.load_adapter("student", init["adapter"])
    model.set_active("student")
    train = {model.heads["head"]: head_lr(phase), **{m: phase.lr for m in adapter_modules(model, "student")}}
    outputs = lambda: {"head": model.head_state("head"), "adapter": model.adapter_state("student")}  # noqa: E731
    return Built(train, outputs, plain_loss(task))


KIND = Kind("adapter", AdapterSpec, build, uses_adapter=True, seconds_per_example=0.08)
