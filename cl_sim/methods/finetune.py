"""Direct fine-tuning of a backbone copy per task: CLiMB's upper reference (Srinivasan et al. 2022)."""
from cl_sim.kinds.finetune import FinetuneSpec
from cl_sim.methods.base import Arrival, Deployed


def arrive(ctx, teachers, history) -> Arrival:
    key = ctx.train(ctx.phase("finetune", FinetuneSpec(backbone_lr=ctx.cfg.training.finetune_lr)))
    return Arrival({ctx.task.name: Deployed(head=key, backbone=key)}, adapter=None, phases=ctx.phases)
