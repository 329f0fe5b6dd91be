"""Direct fine-tuning of a backbone copy per task: CLiMB's upper reference (Srinivasan et al. 2022)."""
from cl_sim.methods.spec import Arrival, Deployed, Method


def arrive(ctx, teachers, history) -> Arrival:
    key = ctx.train(ctx.finetune_phase())
    return Arrival({ctx.task.name: Deployed(head=key, backbone=key)}, adapter=None, phases=ctx.phases)


METHOD = Method(arrive, single_task=True, title="full FT")
