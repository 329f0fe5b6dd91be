"""finetune: train backbone + head, optionally from an earlier phase's backbone (finetune,
sequential_ft). The head always starts fresh; the backbone trains in train mode (dropout on)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cl_sim.kinds.base import Built, Kind, head_lr, plain_loss


@dataclass(frozen=True)
class FinetuneSpec:
    backbone_lr: Optional[float] = None  # None = Phase.lr


def build(phase, task, model, init, source) -> Built:
    if init:
        model.backbone.load_state_dict(init["backbone"])
    train = {model.heads["head"]: head_lr(phase), model.backbone: phase.spec.backbone_lr or phase.lr}
    outputs = lambda: {"head": model.head_state("head"), "backbone": model.backbone_state()}  # noqa: E731
    return Built(train, outputs, plain_loss(task))


KIND = Kind("finetune", FinetuneSpec, build, uses_adapter=False, train_mode=True, seconds_per_example=0.24)
