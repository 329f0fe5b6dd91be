"""A toy method, the whole of it in this one file: low-shot ST-A, a fresh adapter + head trained on
`method.low_shot_fraction` of the task's training rows. It declares the sweep axis it reads, so a
sweep varies the fraction for it and drops the axis for methods that ignore it."""
from cl_sim.methods.spec import Arrival, Deployed, Method


def arrive(ctx, teachers, history) -> Arrival:
    key = ctx.train(ctx.phase("adapter", fraction=ctx.cfg.method.low_shot_fraction))
    return Arrival({ctx.task.name: Deployed(head=key, adapter=key)}, adapter=key, phases=ctx.phases)


METHOD = Method(arrive, uses_adapters=True, single_task=True, sweep_axes=("low_shot_fraction",))
