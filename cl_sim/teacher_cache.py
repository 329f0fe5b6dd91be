"""A frozen teacher's outputs, computed once per training example and reused by every step.

I2I's Initialize and AdapterDistillation's stage 2 distil a *frozen* fused model (teacher adapters
+ fusion layer + head) into a student adapter. Its logits and the per-position hidden states the
hidden-state loss matches depend on the example only, so running it on every step of every epoch
(and of the step floor, which repeats a small low-shot set many times) recomputes the same numbers.
`TeacherCache.build` runs the teacher once over the phase's training rows in length order and a
fixed batch size; the loss then gathers each batch's rows from the cache.

Rows are stored unpadded (one flat (tokens, H) tensor per adapter slot plus offsets), so memory is
`tokens x H x slots x 4 bytes` (MiniLM, pfeiffer, 1,000 examples of ~40 tokens: ~370 MB); past
`method.distill.cache_max_mb` the phase recomputes the teacher on every step instead. The cached
outputs equal the per-step ones up to float rounding (the teacher sees other batch compositions
and paddings), so `method.distill.cache_teacher` is part of a distill phase's store key.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from cl_sim.data.tokenize import EncodedSplit, iterate, length_order
from cl_sim.progress import say

TeacherFn = Callable[[dict], tuple[torch.Tensor, list[torch.Tensor]]]  # batch -> (logits, per-slot (R, T, H))


class TeacherCache:
    """Teacher logits per example and hidden states per row (example, or (example, choice))."""

    def __init__(self, logits: torch.Tensor, hidden: list[torch.Tensor], offsets: torch.Tensor,
                 lengths: torch.Tensor, choices: int):
        self.logits = logits  # (N, n_out)
        self.hidden = hidden  # per slot: (sum of row lengths, H); empty list when not needed
        self.offsets, self.lengths = offsets, lengths  # (R,) start and length of every row
        self.choices = choices  # rows per example (multiple choice: C, else 1)

    @staticmethod
    def estimate_mb(data: EncodedSplit, hidden_size: int, n_slots: int, want_hidden: bool) -> float:
        """Memory the cache would take, in MiB (float32 hidden states dominate)."""
        rows = [r for group in data.input_ids for r in group] if data.kind == "multiple_choice" else data.input_ids
        tokens = sum(len(r) for r in rows)
        return (tokens * hidden_size * n_slots * 4 * want_hidden + len(rows) * 4 * 16) / 2**20  # logits: a few floats per row

    @classmethod
    @torch.no_grad()
    def build(cls, teacher: TeacherFn, data: EncodedSplit, batch_size: int, pad_id: int, device: str,
              want_hidden: bool) -> "TeacherCache":
        """Run `teacher` over every row of `data` once, in batches of `batch_size` taken in length order
        (as `predict` does: each batch pads to about its rows' own length), stored by row."""
        order = length_order(data)
        logits, hidden, lengths = [], [], []
        for batch in iterate(data, batch_size, shuffle=False, seed=0, pad_id=pad_id, indices=order):
            batch = {k: v.to(device) for k, v in batch.items()}
            out, records = teacher(batch)
            mask = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1])
            n = mask.sum(-1)  # (R,) right-padded rows: the first n tokens are real
            logits.append(out.detach())
            lengths.append(n)
            if want_hidden:
                keep = mask.bool()
                hidden.append([r.detach()[keep] for r in records])  # per slot (tokens of the batch, H)
        lengths_t = torch.cat(lengths)  # computed order
        choices = len(lengths_t) // max(1, len(data))
        order_t = torch.as_tensor(order, device=lengths_t.device)
        rows = (order_t[:, None] * choices + torch.arange(choices, device=lengths_t.device)).reshape(-1)
        offsets = torch.cumsum(lengths_t, 0) - lengths_t  # where each computed row starts in the flat store
        flat = [torch.cat(parts) for parts in zip(*hidden)] if want_hidden else []
        return cls(_placed(torch.cat(logits), order_t), flat, _placed(offsets, rows), _placed(lengths_t, rows),
                   choices)

    def __call__(self, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The teacher's (logits, per-slot (R, T, H) hidden states) for `batch` (its `index` rows),
        zero at padded positions (which the losses mask out)."""
        idx = batch["index"].to(self.logits.device)
        logits = self.logits[idx]
        if not self.hidden:
            return logits, []
        width = batch["attention_mask"].shape[-1]
        rows = (idx[:, None] * self.choices + torch.arange(self.choices, device=idx.device)).reshape(-1)
        pos = torch.arange(width, device=idx.device)
        valid = pos[None, :] < self.lengths[rows][:, None]  # (R, T)
        gather = (self.offsets[rows][:, None] + pos[None, :]).clamp(max=self.hidden[0].shape[0] - 1)
        return logits, [h[gather] * valid[..., None].to(h.dtype) for h in self.hidden]


def _placed(values: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """`values` computed in some order, put back by index: out[at[i]] = values[i]."""
    return torch.empty_like(values).index_copy_(0, at, values)


def teacher_cache(teacher: TeacherFn, data: EncodedSplit, distill, hidden_size: int, n_slots: int,
                  batch_size: int, pad_id: int, device: str) -> Optional[TeacherCache]:
    """The cache a distill phase uses, or None (cache off, or over its memory bound: recompute).
    `distill`: the phase's `DistillConfig`."""
    want_hidden = distill.target in ("hidden", "both")
    if not distill.cache_teacher:
        return None
    need = TeacherCache.estimate_mb(data, hidden_size, n_slots, want_hidden)
    if need > distill.cache_max_mb:
        say(f"teacher cache: {need:.0f} MiB needed > method.distill.cache_max_mb={distill.cache_max_mb}: "
            "the teacher runs on every step instead")
        return None
    return TeacherCache.build(teacher, data, batch_size, pad_id, device, want_hidden)
