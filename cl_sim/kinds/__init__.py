"""Phase kinds: one module each, registered once here.

    kind = KINDS[phase.kind]
    built = kind.build(phase, task, model, init, source)   # trainable modules, loss, outputs

    adapter   a (fresh or initialised) adapter + head on the task           (st_a, I2I's Train)
    head      linear probe on the frozen backbone                           (head_only)
    finetune  backbone + head, optionally from an earlier backbone          (finetune, sequential_ft)
    fusion    an AdapterFusion layer + head over frozen teacher adapters    (fusion, I2I's Improvise)
    distill   a trained fusion model distilled into one adapter + head      (I2I's Initialize, AdapterDistillation)

A new kind is one module with a spec dataclass, a `build` and a `KIND = Kind(...)`, plus its line here.
"""
from cl_sim.kinds import adapter, distill, finetune, fusion, head
from cl_sim.kinds.base import Built, Kind, StateSource

KINDS: dict[str, Kind] = {k.name: k for k in (adapter.KIND, head.KIND, finetune.KIND, fusion.KIND, distill.KIND)}

__all__ = ["KINDS", "Built", "Kind", "StateSource"]
