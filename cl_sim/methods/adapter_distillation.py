"""AdapterDistillation (Wang et al. 2023, "AdapterDistillation: Non-Destructive Task Composition
with Knowledge Distillation", arXiv:2312.16261).

Per task k with teachers T (selected earlier AdapterDistillation adapters):
  1. Stage 1: train a student adapter + head on k (the ST-A phase, shared through the store).
  2. Stage 2: train a fusion layer + head over T + [student] (the paper adds the partly trained
     student as the N-th teacher), then distil that fused model back into the student, which
     starts from its stage-1 weights. The fusion layer exists only during training.

Choices the paper leaves open (configurable under `method.distill`): KD on logits and on the
per-position adapter outputs (`target=both`), and the task loss kept in stage 2 with weight 1 so
the student keeps learning its own labels while it absorbs the teachers. With no teachers the
method is ST-A. Inference cost equals ST-A's.
"""
from dataclasses import dataclass

from cl_sim.checks import choice, positive
from cl_sim.methods.spec import Arrival, Claim, Deployed, Method


@dataclass(frozen=True)
class DistillConfig:
    """`method.distill`: knowledge distillation from a fused teacher into one adapter (the distill
    phase of AdapterDistillation and of I2I's Initialize)."""

    target: str = "both"  # logits | hidden | both
    temperature: float = 2.0
    logit_weight: float = 1.0
    hidden_weight: float = 100.0  # measured on MiniLM (docs/methods.md): 1.0 left the MSE term too weak
    task_weight: float = 0.0  # weight of the task loss during distillation (0 = pure KD)
    epochs: int = 0  # 0 = training.epochs
    min_steps: int = 100  # at least this many optimizer steps: regressing a teacher on a small task
    # needs steps, not epochs (MiniLM, 16 examples: 3 steps -> i2i 0.720, 100 -> 0.835; docs/methods.md)
    cache_teacher: bool = True  # the frozen teacher's outputs once per example (cl_sim/teacher_cache.py)
    cache_max_mb: int = 4096  # past this the teacher is recomputed on every step

    def __post_init__(self):
        positive("method.distill.min_steps", self.min_steps, allow_zero=True)
        choice("method.distill.target", self.target, ("logits", "hidden", "both"))
        positive("method.distill.temperature", self.temperature)
        positive("method.distill.epochs", self.epochs, allow_zero=True)
        positive("method.distill.cache_max_mb", self.cache_max_mb, allow_zero=True)
        for key in ("logit_weight", "hidden_weight", "task_weight"):
            positive(f"method.distill.{key}", getattr(self, key), allow_zero=True)


def arrive(ctx, teachers, history) -> Arrival:
    student = ctx.train(ctx.phase("adapter"))
    if not teachers:
        return Arrival({ctx.task.name: Deployed(head=student, adapter=student)}, adapter=student, phases=ctx.phases)
    fused = ctx.train(ctx.fusion_phase(tuple(t.adapter for t in teachers) + (student,), init=student,
                                       **ctx.intermediate()))
    key = ctx.train(ctx.distill_phase(fused, init=student, distill={"task_weight": 1.0}))
    return Arrival({ctx.task.name: Deployed(head=key, adapter=key)}, adapter=key, phases=ctx.phases)


METHOD = Method(arrive, uses_teachers=True, uses_adapters=True, title="AdapterDistillation", claims=(
    Claim("fusion", "Wang et al. 2023 (AdapterDistillation): similar accuracy to Fusion with 1.45% vs 21.36% "
                    "of the backbone's parameters per task; about 20x the tenants in one storage budget"),))
