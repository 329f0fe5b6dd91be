"""Sequential fine-tuning: one shared backbone keeps training on each new task; earlier tasks
keep their heads but read the drifted backbone, which shows catastrophic forgetting."""
from cl_sim.methods.spec import Arrival, Deployed, Method


def arrive(ctx, teachers, history) -> Arrival:
    previous = history[-1].deployed.backbone if history else None
    key = ctx.train(ctx.finetune_phase(init=previous))
    deployed = {p.task: Deployed(head=p.deployed.head, backbone=key) for p in history}
    deployed[ctx.task.name] = Deployed(head=key, backbone=key)
    return Arrival(deployed, adapter=None, phases=ctx.phases)


METHOD = Method(arrive)
