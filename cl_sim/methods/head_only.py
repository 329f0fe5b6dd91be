"""Linear probe on the frozen backbone: the cheapest reference (no adapter)."""
from cl_sim.methods.spec import Arrival, Deployed, Method


def arrive(ctx, teachers, history) -> Arrival:
    key = ctx.train(ctx.phase("head"))
    return Arrival({ctx.task.name: Deployed(head=key)}, adapter=None, phases=ctx.phases)


METHOD = Method(arrive, single_task=True)
