"""I2I: Improvise to Initialize (Srinivasan et al. 2023, "I2I: Initializing Adapters with
Improvised Knowledge", CoLLAs 2023).

Per task k with teachers T (earlier I2I adapters, in arrival order):
  1. Improvise: train a fusion layer + head over T on task k (adapters frozen).
  2. Initialize: distil the improvised model into a fresh adapter + head (its head starts from the
     improvised head); fusion discarded afterwards.
  3. Train: train that adapter + head on task k like ST-A.
Variants (`method.i2i_variant`): FF = full data in Improvise and Initialize, FL = full then
low-shot, LL = low-shot in both; `method.low_shot_fraction` (default 0.05, the paper's 5%).

Choices the paper leaves open, all configurable under `method.distill`: distillation target
`both` (temperature-scaled KL on logits + per-position MSE between the student adapter's outputs
and the fused outputs), pure KD in Initialize (`task_weight=0`). With no teachers
(`teacher_count=0` or the first task) Improvise/Initialize are skipped and I2I *is* ST-A: the same
phase, the same store key. Inference cost equals ST-A's: one adapter + head.
"""
from cl_sim.methods.spec import Arrival, Claim, Deployed, Method


def arrive(ctx, teachers, history) -> Arrival:
    if not teachers:
        key = ctx.train(ctx.phase("adapter"))
        return Arrival({ctx.task.name: Deployed(head=key, adapter=key)}, adapter=key, phases=ctx.phases)
    m = ctx.cfg.method
    improvise_frac = m.low_shot_fraction if m.i2i_variant == "LL" else 1.0
    initialize_frac = m.low_shot_fraction if m.i2i_variant in ("FL", "LL") else 1.0
    improvised = ctx.train(ctx.fusion_phase(tuple(t.adapter for t in teachers), fraction=improvise_frac,
                                            **ctx.intermediate()))
    initialized = ctx.train(ctx.distill_phase(improvised, fraction=initialize_frac, **ctx.intermediate()))
    key = ctx.train(ctx.phase("adapter", init=initialized))
    return Arrival({ctx.task.name: Deployed(head=key, adapter=key)}, adapter=key, phases=ctx.phases)


METHOD = Method(arrive, uses_teachers=True, uses_adapters=True, sweep_axes=("low_shot_fraction", "i2i_variant"),
                title="I2I", claims=(
                    Claim("st_a", "Srinivasan et al. 2023 (I2I): about +4% knowledge transfer over independent adapters",
                          matched=True),))
