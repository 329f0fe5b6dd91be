"""A toy phase kind, the whole of it in this one file: LayerNorm tuning (the backbone's LayerNorm
weights and biases plus a head train; everything else stays frozen), with its own rate."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cl_sim.kinds.base import Built, Kind, head_lr, load_init_head, plain_loss


@dataclass(frozen=True)
class NormSpec:
    norm_lr: float = 1e-3  # the LayerNorms' rate


def build(phase, task, model, init, source) -> Built:
    load_init_head(model, init)
    norms = {n: m for n, m in model.backbone.named_modules() if isinstance(m, nn.LayerNorm)}
    train = {model.heads["head"]: head_lr(phase), **{m: phase.spec.norm_lr for m in norms.values()}}

    def outputs():
        return {"head": model.head_state("head"),
                "norms": {f"{n}.{k}": v.detach().clone() for n, m in norms.items() for k, v in m.state_dict().items()}}

    return Built(train, outputs, plain_loss(task))


KIND = Kind("norm", NormSpec, build, uses_adapter=False)
