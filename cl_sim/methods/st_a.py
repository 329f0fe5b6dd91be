"""ST-A: a fresh adapter + head per task, independent of order (Houlsby et al. 2019,
"Parameter-Efficient Transfer Learning for NLP"; Pfeiffer et al. 2021 single-task adapters)."""
from cl_sim.methods.spec import Arrival, Claim, Deployed, Method


def arrive(ctx, teachers, history) -> Arrival:
    key = ctx.train(ctx.phase("adapter"))
    return Arrival({ctx.task.name: Deployed(head=key, adapter=key)}, adapter=key, phases=ctx.phases)


METHOD = Method(arrive, uses_adapters=True, single_task=True, title="ST-A", claims=(
    Claim("finetune", "Houlsby et al. 2019: adapters within 0.4 points of full fine-tuning on GLUE (80.0 vs 80.4)",
          per_task=True),))
