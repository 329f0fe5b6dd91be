"""distill: distil a trained fusion model into one adapter + head (I2I's Initialize,
AdapterDistillation's stage 2). Losses: Hinton et al. 2015 on logits, per-position MSE between the
student adapter's outputs and the fused ones, optionally the task loss (`DistillConfig`)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from cl_sim.config import DistillConfig
from cl_sim.kinds.base import Built, Kind, adapter_modules, head_lr, load_init_head
from cl_sim.kinds.fusion import add_fused
from cl_sim.losses import hidden_kd, logit_kd, task_loss
from cl_sim.model import AdaptedModel, Fuse, autocast
from cl_sim.teacher_cache import teacher_cache


@dataclass(frozen=True)
class DistillSpec:
    teacher_fusion: str = ""  # store key of the fusion phase to distil from
    distill: DistillConfig = field(default_factory=DistillConfig)


def build(phase, task, model, init, source) -> Built:
    load_init_head(model, init)
    d = phase.spec.distill
    model.add_head("teacher", task.kind, task.num_labels)
    teacher = add_fused(model, phase.spec.teacher_fusion, source, "teacher")
    model.add_adapter("student")
    if init:
        model.load_adapter("student", init["adapter"])
    else:  # I2I: the fresh adapter starts with the improvised model's head
        model.load_head("head", model.head_state("teacher"))
    model.set_active("student")
    train = {m: phase.lr for m in adapter_modules(model, "student")}
    if d.target != "hidden" or d.task_weight > 0:  # else no term of the loss reads the head: it stays as initialised
        train = {model.heads["head"]: head_lr(phase), **train}

    def loss(data, tokenizer, dist):
        """The frozen teacher once per example (eval mode, the phase's precision), or on every step."""
        run_teacher = functools.partial(teacher_outputs, model, teacher)
        with autocast(phase.precision, dist.device):
            cache = teacher_cache(run_teacher, data, d, model.hidden, len(model.slots), dist.eval_batch_size,
                                  tokenizer.pad_token_id, dist.device)
        fn = functools.partial(_distill_loss, d, task.kind, model, run_teacher if cache is None else cache)
        return fn, {"teacher_cached": cache is not None}

    outputs = lambda: {"head": model.head_state("head"), "adapter": model.adapter_state("student")}  # noqa: E731
    return Built(train, outputs, loss)


@torch.no_grad()
def teacher_outputs(model: AdaptedModel, teacher: Fuse, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The frozen fused teacher on `batch`: (logits, per-slot outputs (R, T, H)); leaves the
    student active."""
    model.set_active(teacher)
    with model.recording() as hidden:
        out = model(batch, "teacher")
    model.set_active("student")
    return out, hidden


def _distill_loss(d: DistillConfig, kind: str, model: AdaptedModel, teacher, train_model, batch) -> torch.Tensor:
    t_out, t_hidden = teacher(batch)
    with model.recording() as s_hidden:
        s_out = train_model(batch, "head")
    mask = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1])
    loss = s_out.new_zeros(())
    if d.target in ("logits", "both"):
        loss = loss + d.logit_weight * logit_kd(kind, s_out, t_out, d.temperature)
    if d.target in ("hidden", "both"):
        loss = loss + d.hidden_weight * hidden_kd(s_hidden, t_hidden, mask)
    if d.task_weight > 0:
        loss = loss + d.task_weight * task_loss(kind, s_out, batch["labels"])
    return loss


KIND = Kind("distill", DistillSpec, build, uses_adapter=True, seconds_per_example=0.13)
