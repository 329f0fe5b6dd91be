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
from cl_sim.methods.spec import Arrival, Claim, Deployed, Method


def arrive(ctx, teachers, history) -> Arrival:
    own = ctx.train(ctx.phase("adapter"))
    if not teachers:  # nothing to fuse: a fusion over the task's own adapter is extra training, not transfer
        return Arrival({ctx.task.name: Deployed(head=own, adapter=own)}, adapter=own, phases=ctx.phases)
    adapters = tuple(sorted({t.adapter for t in teachers} | {own}))
    key = ctx.train(ctx.fusion_phase(adapters, init=own))
    return Arrival({ctx.task.name: Deployed(head=key, fusion=key)}, adapter=own, phases=ctx.phases)


METHOD = Method(arrive, uses_teachers=True, uses_adapters=True, title="Fusion", claims=(
    Claim("st_a", "Pfeiffer et al. 2021 (AdapterFusion): 77.33 vs 76.05 mean; largest gains on small "
                  "targets (RTE +6.5, MRPC +5.6)"),))
