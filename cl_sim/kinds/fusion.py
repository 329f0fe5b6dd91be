"""fusion: train an AdapterFusion layer + head over frozen teacher adapters (Pfeiffer et al. 2021;
fusion, I2I's Improvise, AdapterDistillation's fused teacher). Also rebuilds a trained fusion model
from the store (`add_fused`: distillation's teacher, deployed fusion tasks)."""
from __future__ import annotations

from dataclasses import dataclass, field

from cl_sim.config import FusionConfig, build as build_data
from cl_sim.kinds.base import Built, Kind, StateSource, head_lr, load_init_head
from cl_sim.losses import task_loss
from cl_sim.model import AdaptedModel, Fuse

FUSION = "fusion"  # the fusion layer's name inside a model
# The timeline's cost model: each fused adapter beyond the first, as a share of a 1-teacher fusion step
# (docs/PERFORMANCE.md, multi-teacher fusion: 0.344 -> 0.608 s/step from 1 to 5 teachers; factorized
# 1.696 -> 2.351 s)
TEACHER_STEP_COST = {"plain": 0.2, "factorized": 0.08}


@dataclass(frozen=True)
class FusionSpec:
    teachers: tuple[str, ...] = ()  # store keys of the adapters to fuse, in fusion order
    fusion: FusionConfig = field(default_factory=FusionConfig)


def add_teachers(model: AdaptedModel, keys, source: StateSource) -> tuple[str, ...]:
    names = tuple(f"t{i}" for i in range(len(keys)))
    for name, key in zip(names, keys):
        model.add_adapter(name)
        model.load_adapter(name, source.states(key)["adapter"])
    return names


def add_fused(model: AdaptedModel, fusion_key: str, source: StateSource, head: str) -> Fuse:
    """Rebuild a trained fusion model (its adapters, fusion layer and head) inside `model`."""
    spec = build_data(FusionSpec, source.meta(fusion_key)["phase"]["spec"])
    names = add_teachers(model, spec.teachers, source)
    states = source.states(fusion_key)
    model.add_fusion(FUSION, placement=spec.fusion.placement, factorized=spec.fusion.factorized)
    model.load_fusion(FUSION, states["fusion"])
    model.load_head(head, states["head"])
    return Fuse(names, FUSION)


def build(phase, task, model, init, source) -> Built:
    load_init_head(model, init)
    f = phase.spec.fusion
    names = add_teachers(model, phase.spec.teachers, source)
    model.add_fusion(FUSION, f.value_init_noise, f.placement, f.factorized)
    model.set_active(Fuse(names, FUSION))
    layers = model.fusion_modules(FUSION)
    train = {model.heads["head"]: head_lr(phase), **{m: phase.lr for m in layers}}

    def loss(train_model, batch):
        out = task_loss(task.kind, train_model(batch, "head"), batch["labels"])
        if f.value_reg > 0:  # V pulled toward identity (the paper's regulariser)
            out = out + f.value_reg * sum(layer.value_reg() for layer in layers)
        return out

    outputs = lambda: {"head": model.head_state("head"), "fusion": model.fusion_state(FUSION)}  # noqa: E731
    return Built(train, outputs, lambda data, tokenizer, dist: (loss, {}),
                 attention=FUSION if f.record_attention else None)


def pass_cost(spec: FusionSpec) -> float:
    """A pass's cost relative to a one-adapter pass: grows with the adapters fused."""
    if len(spec.teachers) <= 1:
        return 1.0
    return 1.0 + TEACHER_STEP_COST["factorized" if spec.fusion.factorized else "plain"] * (len(spec.teachers) - 1)


KIND = Kind("fusion", FusionSpec, build, uses_adapter=True, seconds_per_example=0.15,  # per 1-teacher pass
            pass_cost=pass_cost)
