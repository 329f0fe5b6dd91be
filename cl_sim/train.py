"""The training loop and prediction, shared by every phase kind (a plain function, no hooks)."""
from __future__ import annotations

import math
import time
from typing import Callable, Optional

import numpy as np
import torch

from cl_sim.data.task import Task
from cl_sim.data.tokenize import iterate, length_order
from cl_sim.metrics import score as metric_score
from cl_sim.kinds import KINDS
from cl_sim.kinds.fusion import FUSION, add_fused
from cl_sim.model import AdaptedModel, autocast
from cl_sim.progress import phase_bar
from cl_sim.phases import (Dist, Phase, PhaseOutput, StateSource, shard_batch, batch_to, build_model, dev_indices, encoded,
                           fresh_backbone, phase_seed, to_cpu, train_indices)


def run_phase(phase: Phase, task: Task, source: StateSource, dist: Optional[Dist] = None,
              resume: Optional[dict] = None, checkpoint: Optional[Callable[[dict], None]] = None) -> PhaseOutput:
    """Train one phase and return its states and metrics.

    Args:
        phase: what to train (plain data).
        task: the task's data.
        source: where init and teacher states come from (the store).
        dist: data-parallel rank info and model wrapper (Ray Train); None = one process.
        resume: a checkpoint written by `checkpoint` to continue from (after a lost worker).
        checkpoint: called after every epoch with trainable weights and optimizer state.
    """
    dist = dist or Dist()
    start = time.perf_counter()
    seed = phase_seed(phase)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, tokenizer, built = build_model(phase, task, source)
    model.to(dist.device)
    train_model = dist.wrap(model)
    indices = train_indices(phase, task)
    data = encoded(task, "train", tokenizer, phase.max_length, indices)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(_param_groups(built.train, params), weight_decay=phase.weight_decay)
    n_batches = math.ceil(len(data) / phase.batch_size)
    steps_per_epoch = math.ceil(n_batches / phase.grad_accum)
    epochs = max(phase.epochs, math.ceil(phase.min_steps / steps_per_epoch))  # small tasks: a step floor
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    first_epoch, steps, examples, losses = 0, 0, 0, []
    curve: list[float] = []  # mean loss per optimizer step (this process's steps; a resumed phase: from there)
    if resume is not None:
        first_epoch, steps, examples = resume["epoch"] + 1, resume["steps"], resume["examples"]
        model.load_state_dict(resume["model"], strict=False)
        opt.load_state_dict(resume["optim"])
        sched.load_state_dict(resume["sched"])
    model.train(KINDS[phase.kind].train_mode)  # frozen backbones run without dropout
    loss_fn, loss_metrics = built.loss(data, tokenizer, dist)
    bar = phase_bar(total - steps, f"{phase.kind} {phase.task}", dist.rank)
    for epoch in range(first_epoch, epochs):
        # dropout (finetune phases train in train mode) draws from the global RNG: seed it per epoch
        # so a phase is bit-identical across runs, processes and resumes
        torch.manual_seed(seed + epoch)
        losses = []
        batches = list(iterate(data, phase.batch_size, shuffle=True, seed=seed + epoch, pad_id=tokenizer.pad_token_id))
        for i, batch in enumerate(batches):
            batch = batch_to(shard_batch(batch, dist), dist.device)
            with autocast(phase.precision, dist.device):
                loss = loss_fn(train_model, batch)
            (loss / phase.grad_accum).backward()
            losses.append(float(loss.detach()))
            examples += int(batch["labels"].shape[0]) * dist.world_size
            if (i + 1) % phase.grad_accum == 0 or i + 1 == len(batches):
                micro = (i % phase.grad_accum) + 1  # micro-batches in this step
                curve.append(round(float(np.mean(losses[-micro:])), 5))
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                steps += 1
                bar.update()
        if checkpoint is not None:
            trainable = {k: v.detach().cpu().clone() for k, v in model.named_parameters() if v.requires_grad}
            checkpoint({"epoch": epoch, "steps": steps, "examples": examples, "model": trainable,
                        "optim": opt.state_dict(), "sched": sched.state_dict()})
    bar.close()
    model.eval()
    dev_score, dev_count, attention = None, 0, None
    if phase.dev_examples != 0:
        dev_rows = dev_indices(phase, task)
        dev_count = len(task.splits["dev"].labels) if dev_rows is None else len(dev_rows)
        dev_score, attention = evaluate_model(model, task, "dev", tokenizer, phase.max_length, "head", dist.device,
                                              attention_of=built.attention, batch_size=dist.eval_batch_size,
                                              indices=dev_rows, precision=phase.precision)
    return PhaseOutput(
        states=to_cpu(built.outputs()),
        metrics={"train_loss": float(np.mean(losses)) if losses else None, "dev_score": dev_score,
                 "dev_examples": dev_count,
                 "examples": examples, "steps": steps, "train_examples": len(data),
                 "train_indices": None if indices is None else indices.tolist(),
                 "wall_s": time.perf_counter() - start, "loss_curve": curve,
                 "trainable_params": sum(p.numel() for p in params), **loss_metrics},
        attention=attention,
    )


def _param_groups(train: dict, params: list) -> list[dict]:
    """One AdamW group per learning rate (`train`: module -> rate, as the phase's kind built it),
    groups and their parameters in the model's parameter order."""
    lr = {id(p): rate for module, rate in train.items() for p in module.parameters()}
    groups: dict[float, list] = {}
    for p in params:
        groups.setdefault(lr[id(p)], []).append(p)
    return [{"params": ps, "lr": rate} for rate, ps in groups.items()]


@torch.no_grad()
def predict(model: AdaptedModel, data, kind: str, head: str, pad_id: int, device: str = "cpu",
            batch_size: int = 128) -> np.ndarray:
    """Predictions over an encoded split in its order: class ids, or values for regression.

    Batches go shortest rows first (`length_order`), so a batch pads to about its rows' own length
    instead of its longest row's: padding is masked, so a row's prediction does not depend on it."""
    order = length_order(data)
    outs = []
    for batch in iterate(data, batch_size, shuffle=False, seed=0, pad_id=pad_id, indices=order):
        out = model(batch_to(batch, device), head).float()
        outs.append(out.cpu() if kind == "regression" else out.argmax(-1).cpu())
    pred = torch.cat(outs).numpy()
    restored = np.empty_like(pred)
    restored[order] = pred
    return restored


def evaluate_model(model: AdaptedModel, task: Task, split: str, tokenizer, max_length: int, head: str,
                   device: str = "cpu", attention_of: Optional[str] = None, batch_size: int = 128,
                   indices: Optional[np.ndarray] = None, precision: str = "fp32") -> tuple[float, Optional[list]]:
    """`metric` of `head` on `split` (or the rows `indices` of it), predicting in `precision` (bf16:
    under autocast, as the phase trained; like transformers' Trainer, which evaluates under the
    autocast it trains with), and the mean attention of fusion layer `attention_of` per position
    and fused adapter (rows sum to 1), or None."""
    data = encoded(task, split, tokenizer, max_length, indices)
    with model.attention_recording(attention_of or "", on=attention_of is not None) as attention:
        with autocast(precision, device):
            pred = predict(model, data, task.kind, head, tokenizer.pad_token_id, device, batch_size)
    labels = task.splits[split].labels
    score = float(metric_score(task.metric, labels if indices is None else labels[indices], pred, task.num_labels))
    return score, attention if attention_of is not None else None


def evaluate_deployed(dep, task: Task, source: StateSource, split: Optional[str] = None,
                      device: str = "cpu", batch_size: int = 128) -> tuple[float, Optional[list]]:
    """Score a deployed task (store keys only) on `split` (default: test, else dev), in the
    precision its head was trained in (the precision is part of every phase key, so the score's
    cache key - the deployment's keys - carries it).

    Returns (score, fusion attention per position or None).
    """
    from cl_sim.config import AdapterConfig

    split = split or task.eval_split
    head_phase = source.meta(dep.head)["phase"]
    adapter_phase = source.meta(dep.adapter or dep.fusion)["phase"] if (dep.adapter or dep.fusion) else None
    backbone, tokenizer = fresh_backbone(head_phase["backbone"])
    if dep.backbone:
        backbone.load_state_dict(source.states(dep.backbone)["backbone"])
    adapter = AdapterConfig(**adapter_phase["adapter"]) if adapter_phase else None
    model = AdaptedModel(backbone, adapter, head_phase["pooling"])
    model.add_head("head", task.kind, task.num_labels)
    if dep.fusion:
        model.set_active(add_fused(model, dep.fusion, source, "head"))
    else:
        model.load_head("head", source.states(dep.head)["head"])
    if dep.adapter:
        model.add_adapter("a")
        model.load_adapter("a", source.states(dep.adapter)["adapter"])
        model.set_active("a")
    model.to(device).eval()
    return evaluate_model(model, task, split, tokenizer, head_phase["max_length"], "head", device,
                          attention_of=FUSION if dep.fusion else None, batch_size=batch_size,
                          precision=head_phase.get("precision", "fp32"))
