"""head: a linear probe on the frozen backbone (head_only)."""
from __future__ import annotations

from dataclasses import dataclass

from cl_sim.kinds.base import Built, Kind, head_lr, load_init_head, plain_loss


@dataclass(frozen=True)
class HeadSpec:
    """No fields of its own."""


def build(phase, task, model, init, source) -> Built:
    load_init_head(model, init)
    return Built({model.heads["head"]: head_lr(phase)}, lambda: {"head": model.head_state("head")}, plain_loss(task))


KIND = Kind("head", HeadSpec, build, uses_adapter=False, seconds_per_example=0.03)
