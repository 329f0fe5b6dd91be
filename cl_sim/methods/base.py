"""Plain data shared by the methods: what a finished task leaves behind and how tasks deploy."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from cl_sim.config import Config
from cl_sim.data.task import Task
from cl_sim.kinds import KINDS
from cl_sim.kinds.distill import DistillSpec
from cl_sim.kinds.fusion import FusionSpec
from cl_sim.phases import Phase


@dataclass(frozen=True)
class Deployed:
    """What inference on a task loads: store keys, nothing else."""

    head: str  # entry holding the task head
    adapter: Optional[str] = None  # entry holding the task's single adapter
    fusion: Optional[str] = None  # fusion entry (its teacher adapters are listed in its phase)
    backbone: Optional[str] = None  # entry holding a fine-tuned backbone


@dataclass(frozen=True)
class Prior:
    """A task that finished before the current phase started."""

    task: str
    adapter: Optional[str]  # the adapter later tasks fuse or distil from (None: method has none)
    deployed: Deployed


@dataclass
class Arrival:
    deployed: dict[str, Deployed]  # this task, plus earlier tasks whose deployment changed
    adapter: Optional[str]
    phases: list[str] = field(default_factory=list)  # store keys, in the order they ran


@dataclass
class MethodContext:
    cfg: Config
    task: Task
    run: Callable[[Phase], str]  # runs or reuses a phase; returns its store key
    phases: list[str] = field(default_factory=list)

    def phase(self, kind: str, spec=None, **fields) -> Phase:
        """A phase of `kind` on this task with the config's defaults, overridden by `fields`;
        `spec`: the kind's own fields (None = its defaults)."""
        c, t = self.cfg, self.cfg.training
        adapter = dataclasses.asdict(c.adapter) if KINDS[kind].uses_adapter else None
        base = dict(kind=kind, task=self.task.name, data_hash=self.task.data_hash(), backbone=c.backbone.name,
                    pooling=c.backbone.pooling, max_length=c.backbone.max_length, adapter=adapter, seed=t.seed,
                    epochs=t.epochs, lr=t.lr, batch_size=t.batch_size, grad_accum=t.grad_accum,
                    weight_decay=t.weight_decay, precision=t.precision, max_examples=t.max_train_examples,
                    dev_examples=t.dev_examples)
        return Phase(**{**base, **fields}, spec=spec)

    def fusion_phase(self, teachers: tuple[str, ...], **fields) -> Phase:
        f = self.cfg.method.fusion
        return self.phase("fusion", FusionSpec(tuple(teachers), f), lr=f.lr, head_lr=f.head_lr or self.cfg.training.lr,
                          epochs=f.epochs or self.cfg.training.epochs, grad_accum=f.grad_accum, **fields)

    def distill_phase(self, fusion_key: str, distill: Optional[dict] = None, **fields) -> Phase:
        """`distill`: `method.distill` settings this phase overrides. `distill.min_steps` counts
        full-data steps; a low-shot phase gets the same share of it as of the data (5% of the data:
        5% of the floor), so the floor keeps low-shot cheap."""
        d = dataclasses.replace(self.cfg.method.distill, **(distill or {}))
        floor = math.ceil(d.min_steps * fields.get("fraction", 1.0))
        return self.phase("distill", DistillSpec(fusion_key, d), epochs=d.epochs or self.cfg.training.epochs,
                          min_steps=floor, **fields)

    def intermediate(self) -> dict:
        """Phase fields of a phase whose result is only an input to later phases (I2I's Improvise
        and Initialize, AdapterDistillation's fused teacher): no dev pass unless asked for."""
        return {} if self.cfg.training.dev_intermediate else {"dev_examples": 0}

    def train(self, phase: Phase) -> str:
        key = self.run(phase)
        self.phases.append(key)
        return key
