"""What a phase kind provides (`Kind`, one registry entry) and what its `build` hands back (`Built`).

A kind module holds its typed spec (its own phase fields: plain data, part of the store key) and a
`build` that adds the kind's modules to a freshly assembled model (`phases.build_model`: backbone,
adapter slots and a task head "head", init states loaded by the kind) and returns the trainable
modules, the loss, and the states the phase leaves in the store. `train.run_phase` asks only these.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from torch import nn

from cl_sim.losses import task_loss

LossFn = Callable[[nn.Module, dict], Any]  # (train_model, batch) -> scalar loss
# (encoded training data, tokenizer, dist) -> (loss, metrics the phase records); runs once the
# model sits on its device, in its training mode
LossFactory = Callable[[Any, Any, Any], tuple[LossFn, dict]]


class StateSource(Protocol):
    """Where init and teacher states come from (the store)."""

    def states(self, key: str) -> dict: ...

    def meta(self, key: str) -> dict: ...


@dataclass(frozen=True)
class Kind:
    name: str
    spec: type  # frozen dataclass of the kind's own phase fields (`Phase.spec`), defaults for every field
    build: Callable[..., "Built"]  # (phase, task, model, init states or None, source) -> Built
    uses_adapter: bool  # its phases carry the adapter shape and store adapter-side states (the task's own)
    train_mode: bool = False  # the model trains in train mode (dropout on): only an unfrozen backbone does
    # FALLBACK wall seconds per example pass for the simulator's clock (model assembly, forward +
    # backward, dev evaluation included), used only where neither `stream.seconds_per_example` nor the
    # store's measured phases give one (`cl_sim.sim.costs`, which labels it): MiniLM-L6, max_length 64,
    # batch 32, 2 CPU threads, 256 synthetic examples x 1 epoch, 1-3 fused adapters (+-40% run to run)
    seconds_per_example: float = 0.1
    pass_cost: Callable[[Any], float] = lambda spec: 1.0  # cost of a pass relative to a one-adapter pass


@dataclass
class Built:
    train: dict[nn.Module, float]  # trainable modules -> learning rate (one AdamW group per rate)
    outputs: Callable[[], dict]  # group -> state, read when training is over
    loss: LossFactory
    attention: Optional[str] = None  # fusion layer whose attention the dev pass records


def head_lr(phase) -> float:
    return phase.head_lr or phase.lr


def load_init_head(model, init: Optional[dict]) -> None:
    """A phase that starts from an earlier one starts from its head too (fine-tuning excepted)."""
    if init and "head" in init:
        model.load_head("head", init["head"])


def plain_loss(task) -> LossFactory:
    """The task's own loss on the head "head", nothing else."""
    def fn(train_model, batch):
        return task_loss(task.kind, train_model(batch, "head"), batch["labels"])

    return lambda data, tokenizer, dist: (fn, {})


def adapter_modules(model, name: str) -> list[nn.Module]:
    return [s.cl_adapters[name] for s in model.slots.values()]
