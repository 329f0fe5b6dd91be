"""AdapterFusion (Pfeiffer et al. 2021, "AdapterFusion: Non-Destructive Task Composition for
Transfer Learning", arXiv:2005.00247).

Per task k: (1) train ST-A for k (the same phase as `st_a`, so the store shares it); (2) train a
fusion layer + head over the ST-A adapters of the teachers and of k, all adapters frozen.

Choices the paper leaves open here: the fusion head starts from k's ST-A head (faster on CPU
budgets); the adapters are fused in a canonical (sorted-key) order, which makes the fusion phase
invariant to the order of its teachers, so its store key depends on the *set* of teachers and an
all-orderings sweep of n tasks trains at most n·2^(n-1) fusion layers. Inference needs every fused
adapter plus the fusion layer, so its parameter count grows with the number of adapters. With no
teachers (the first task, or `teacher_count=0`) the method is ST-A, as I2I and AdapterDistillation
are: a fusion layer over the task's own single adapter would add training, not transfer.
"""
from dataclasses import dataclass
from typing import Optional

from cl_sim.checks import choice, positive
from cl_sim.methods.spec import Arrival, Claim, Deployed, Method


@dataclass(frozen=True)
class FusionConfig:
    """`method.fusion`: the fusion phase's options (fusion, I2I's Improvise, AdapterDistillation's
    fused teacher). Papers' values: `method.fusion.lr=5e-5 training.lr=1e-4` (too slow for CPU-sized
    budgets). Our default 3e-4 was measured on MiniLM (docs/methods.md): 5e-3 collapsed the related
    tasks to chance, 1e-3 and 3e-4 learned."""

    lr: float = 3e-4  # fusion weights (query, key, value)
    head_lr: Optional[float] = None  # the task head trained with the fusion; None = training.lr
    epochs: int = 0  # 0 = training.epochs
    value_init_noise: float = 1e-3
    value_reg: float = 1e-2  # L2 pull of V toward identity (kept on by default, SPEC §8)
    grad_accum: int = 1
    record_attention: bool = True
    placement: str = "ffn"  # fusion after the FFN adapters (the paper's place) or at `all` adapter slots
    # the same fusion with one key and one value product per token instead of N each (cl_sim/adapters/
    # fusion.py); equal up to float rounding. Off by default: docs/RESULTS.md was measured without it
    factorized: bool = False

    def __post_init__(self):
        choice("method.fusion.placement", self.placement, ("ffn", "all"))
        positive("method.fusion.lr", self.lr)
        positive("method.fusion.value_init_noise", self.value_init_noise, allow_zero=True)
        if self.head_lr is not None:
            positive("method.fusion.head_lr", self.head_lr)
        positive("method.fusion.epochs", self.epochs, allow_zero=True)
        positive("method.fusion.value_reg", self.value_reg, allow_zero=True)
        positive("method.fusion.grad_accum", self.grad_accum)


def arrive(ctx, teachers, history) -> Arrival:
    own = ctx.train(ctx.phase("adapter"))
    if not teachers:  # nothing to fuse: a fusion over the task's own adapter is extra training, not transfer
        return Arrival({ctx.task.name: Deployed(head=own, adapter=own)}, adapter=own, phases=ctx.phases)
    adapters = tuple(sorted({t.adapter for t in teachers} | {own}))
    key = ctx.train(ctx.fusion_phase(adapters, init=own))
    return Arrival({ctx.task.name: Deployed(head=key, fusion=key)}, adapter=own, phases=ctx.phases)


METHOD = Method(arrive, uses_teachers=True, uses_adapters=True, title="Fusion", claims=(
    Claim("st_a", "Pfeiffer et al. 2021 (AdapterFusion): 77.33 vs 76.05 mean; largest gains on small "
                  "targets (RTE +6.5, MRPC +5.6)", matched=True),))
