"""The context a method's recipe builds and runs phases with (`MethodContext`); the plain data it
returns is in `cl_sim.methods.spec` (re-exported here)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from cl_sim.config import Config, task_budget
from cl_sim.data.task import Task
from cl_sim.kinds import KINDS
from cl_sim.kinds.distill import DistillSpec
from cl_sim.kinds.finetune import FinetuneSpec
from cl_sim.kinds.fusion import FusionSpec
from cl_sim.methods.spec import Arrival, Deployed, Method, Prior
from cl_sim.phases import Phase

__all__ = ["Arrival", "Deployed", "Method", "MethodContext", "Prior"]


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
        max_examples, epochs = task_budget(c, self.task.name)
        adapter = dataclasses.asdict(c.adapter) if KINDS[kind].uses_adapter else None
        base = dict(kind=kind, task=self.task.name, data_hash=self.task.data_hash(), backbone=c.backbone.name,
                    pooling=c.backbone.pooling, max_length=c.backbone.max_length, adapter=adapter, seed=t.seed,
                    epochs=epochs, lr=t.lr, batch_size=t.batch_size, grad_accum=t.grad_accum,
                    weight_decay=t.weight_decay, precision=t.precision, max_examples=max_examples,
                    dev_examples=t.dev_examples)
        return Phase(**{**base, **fields}, spec=spec)

    def epochs(self) -> int:
        """This task's epochs (its own budget, else training.epochs): what `method.fusion.epochs` and
        `method.distill.epochs` fall back to."""
        return task_budget(self.cfg, self.task.name)[1]

    def finetune_phase(self, **fields) -> Phase:
        """Backbone + head at `training.finetune_lr` for the backbone."""
        return self.phase("finetune", FinetuneSpec(backbone_lr=self.cfg.training.finetune_lr), **fields)

    def fusion_phase(self, teachers: tuple[str, ...], **fields) -> Phase:
        f = self.cfg.method.fusion
        return self.phase("fusion", FusionSpec(tuple(teachers), f), lr=f.lr, head_lr=f.head_lr or self.cfg.training.lr,
                          epochs=f.epochs or self.epochs(), grad_accum=f.grad_accum, **fields)

    def distill_phase(self, fusion_key: str, distill: Optional[dict] = None, **fields) -> Phase:
        """`distill`: `method.distill` settings this phase overrides. `distill.min_steps` counts
        full-data steps; a low-shot phase gets the same share of it as of the data (5% of the data:
        5% of the floor), so the floor keeps low-shot cheap."""
        d = dataclasses.replace(self.cfg.method.distill, **(distill or {}))
        floor = math.ceil(d.min_steps * fields.get("fraction", 1.0))
        return self.phase("distill", DistillSpec(fusion_key, d), epochs=d.epochs or self.epochs(),
                          min_steps=floor, **fields)

    def intermediate(self) -> dict:
        """Phase fields of a phase whose result is only an input to later phases (I2I's Improvise
        and Initialize, AdapterDistillation's fused teacher): no dev pass unless asked for."""
        return {} if self.cfg.training.dev_intermediate else {"dev_examples": 0}

    def train(self, phase: Phase) -> str:
        key = self.run(phase)
        self.phases.append(key)
        return key
