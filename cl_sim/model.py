"""A frozen backbone with adapter slots, fusion layers and task heads, assembled per phase.

Only the adapters a phase needs are resident (AdapterHub #546: hundreds of live adapters grind a
model to a halt); all other states stay in the store. Names inside a model are local aliases
("student", "t0", ...), so task names never need to be valid module names.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cl_sim.adapters.inject import Active, AdapterSlot, Fuse, fusion_slots, inject_slots, new_adapter, new_fusion
from cl_sim.adapters.modules import Head
from cl_sim.backbone import hidden_size
from cl_sim.config import AdapterConfig
from cl_sim.errors import StoreError


# A batch's rows go through the backbone in groups of similar length, each group padded only to its
# own longest row. Same maths: attention masks padding, so a row's outputs never depend on it (float
# rounding differs, as with any other batch shape; in train mode dropout draws its masks per group:
# another draw from the same distribution). A group costs a fixed per-call overhead, counted
# in tokens' worth of compute, which `length_groups` weighs against the padding a split saves.
# Calibrated on MiniLM (hidden 384) on CPU: ~19 ms per forward + backward call vs ~0.3 ms per token
# on 2 threads, ~0.6 on 1; 32 was fastest of 0/32/64/128 on five real tasks, 1.29x over one padded
# batch (benchmarks/length_groups.py, docs/PERFORMANCE.md). 0 = one group per batch.
GROUP_OVERHEAD_TOKENS = 32
_CALIBRATION_HIDDEN = 384


def group_overhead(hidden: int, device: torch.device) -> float:
    """`GROUP_OVERHEAD_TOKENS` for a backbone of width `hidden`: a token's compute grows with hidden²
    while a call's overhead (one per op, per layer) does not, so a narrow model splits less (the tiny
    test BERT, hidden 32, practically never). CPU only: on an accelerator the per-call launch cost
    against a token's cost is another trade-off, not measured here, so batches stay whole."""
    if device.type != "cpu":
        return 0.0
    return GROUP_OVERHEAD_TOKENS * (_CALIBRATION_HIDDEN / hidden) ** 2


def length_groups(lengths: torch.Tensor, overhead: float) -> list[torch.Tensor]:
    """Rows split into groups of consecutive rows in length order (shortest first, stable), the
    split minimising sum over groups of (overhead + rows x longest row): exact by dynamic
    programming, O(rows^2) in numpy. Returns row-index tensors; one group of all rows in their own
    order when no split pays, or when overhead is 0 (then without reading `lengths`: no device sync)."""
    n = int(lengths.numel())
    if overhead <= 0 or n < 2 or bool((lengths == lengths.max()).all()):
        return [torch.arange(n, device=lengths.device)]
    order = torch.argsort(lengths.cpu(), stable=True)
    sorted_len = lengths.cpu()[order].numpy().astype(np.float64)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):  # best[j]: cheapest split of the j shortest rows; its last group starts at cut[j]
        starts = np.arange(j)
        costs = best[:j] + overhead + (j - starts) * sorted_len[j - 1]
        cut[j] = int(np.argmin(costs))
        best[j] = costs[cut[j]]
    bounds, j = [], n
    while j > 0:
        bounds.append((int(cut[j]), j))
        j = int(cut[j])
    if len(bounds) == 1:
        return [torch.arange(n, device=lengths.device)]
    order = order.to(lengths.device)
    return [order[i:j] for i, j in reversed(bounds)]


class AdaptedModel(nn.Module):
    def __init__(self, backbone: nn.Module, adapter: Optional[AdapterConfig], pooling: str = "mean"):
        super().__init__()
        self.backbone = backbone
        self.adapter_cfg = adapter
        self.pooling = pooling
        self.hidden = hidden_size(backbone)
        self.slots: dict[str, AdapterSlot] = inject_slots(backbone, adapter.kind) if adapter else {}
        self.heads = nn.ModuleDict()
        # RoBERTa-style encoders have one token type; a BERT tokenizer's pair ids would overflow it
        self.use_token_types = getattr(backbone.config, "type_vocab_size", 0) > 1

    # ------------------------------------------------------------------ composition
    def add_adapter(self, name: str) -> None:
        a = self.adapter_cfg
        for slot in self.slots.values():
            slot.cl_adapters[name] = new_adapter(a.kind, self.hidden, a.reduction_factor, a.rank, a.non_linearity,
                                                  a.bottleneck)

    def add_fusion(self, name: str, value_init_noise: float = 1e-3, placement: str = "ffn",
                   factorized: bool = False) -> None:
        """A fusion layer at the slots of `placement` (`ffn` or `all`, see `fusion_slots`)."""
        for slot in fusion_slots(self.slots, placement).values():
            slot.cl_fusion[name] = new_fusion(self.hidden, value_init_noise, factorized)

    def add_head(self, name: str, kind: str, num_labels: int) -> None:
        self.heads[name] = Head(self.hidden, kind, num_labels)

    def set_active(self, active: Active) -> None:
        for slot in self.slots.values():
            slot.active = active

    def fusion_modules(self, name: str) -> list[nn.Module]:
        return [slot.cl_fusion[name] for slot in self.slots.values() if name in slot.cl_fusion]

    # ------------------------------------------------------------------ forward
    def encode(self, batch: dict) -> torch.Tensor:
        """(B, T) or (B, C, T) token ids -> pooled (B, H) or (B*C, H); rows run in length groups
        (`length_groups`), and what the slots record comes back as one (rows, T, H) tensor per slot
        in row order (padded positions hold no meaning there: the losses mask them out)."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        ids, mask = ids.reshape(-1, ids.shape[-1]), mask.reshape(-1, mask.shape[-1])
        types = batch["token_type_ids"].reshape(ids.shape) if "token_type_ids" in batch and self.use_token_types \
            else None
        lengths = mask.sum(-1)
        groups = length_groups(lengths, group_overhead(self.hidden, ids.device))
        if len(groups) == 1:
            return self._encode(ids, mask, types)
        recording = [s for s in self.slots.values() if s.records is not None]
        kept = {id(s): s.records for s in recording}
        records: dict[int, list] = {id(s): [] for s in recording}
        pooled = []
        for rows in groups:
            width = int(lengths[rows].max())  # right-padded: the first `width` columns hold every real token
            for s in recording:
                s.records = []
            pooled.append(self._encode(ids[rows, :width], mask[rows, :width],
                                       None if types is None else types[rows, :width]))
            for s in recording:
                records[id(s)].append(F.pad(s.records[0], (0, 0, 0, ids.shape[-1] - width)))
        inverse = torch.empty(ids.shape[0], dtype=torch.long, device=ids.device)  # row -> place in the groups' order
        inverse[torch.cat(groups)] = torch.arange(ids.shape[0], device=ids.device)
        for s in recording:
            s.records = kept[id(s)]
            s.records.append(torch.cat(records[id(s)])[inverse])
        return torch.cat(pooled)[inverse]

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor, types: Optional[torch.Tensor]) -> torch.Tensor:
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            kwargs["token_type_ids"] = types
        for slot in self.slots.values():
            slot.mask = mask
        hidden = self.backbone(**kwargs).last_hidden_state  # (B, T, H)
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward(self, batch: dict, head: str) -> torch.Tensor:
        out = self.heads[head](self.encode(batch))
        if batch["input_ids"].dim() == 3:  # multiple choice: one score per choice
            out = out.view(batch["input_ids"].shape[0], -1)
        return out

    # ------------------------------------------------------------------ what the slots saw
    @contextlib.contextmanager
    def recording(self) -> Iterator[list[torch.Tensor]]:
        """Every slot's output during the forward pass run inside the block (hidden-state KD): the
        yielded list holds, after the block, one (rows, T, H) tensor per slot in slot order.

            with model.recording() as hidden:
                out = train_model(batch, "head")   # a DDP wrapper of this model works too
        """
        slots = list(self.slots.values())
        for s in slots:
            s.records = []
        outputs: list[torch.Tensor] = []
        try:
            yield outputs
            outputs.extend(s.records[0] for s in slots)
        finally:
            for s in slots:
                s.records = None

    @contextlib.contextmanager
    def attention_recording(self, fusion: str, on: bool = True) -> Iterator[list[list[float]]]:
        """Fusion layer `fusion`'s attention over the passes run inside the block: the yielded list
        holds, after the block, per slot that has the layer the mean attention per fused adapter over
        real tokens (rows sum to 1); it stays empty when `on` is False."""
        slots = list(self.slots.values())
        for s in slots:
            s.recording_attention = on
            s.attention, s.attention_count = {}, {}
        rows: list[list[float]] = []
        try:
            yield rows
            for s in slots:
                total, count = s.attention.get(fusion), s.attention_count.get(fusion, 0)
                if on and total is not None and count:
                    rows.append((total / count).tolist())
        finally:
            for s in slots:
                s.recording_attention = False

    # ------------------------------------------------------------------ states
    def _holding(self, attr: str, name: str) -> dict[str, AdapterSlot]:
        """The slots that hold module `name` (every slot for adapters; fusion may skip some)."""
        return {n: s for n, s in self.slots.items() if name in getattr(s, attr)}

    def _collect(self, attr: str, name: str) -> dict[str, torch.Tensor]:
        state = {}
        for slot_name, slot in self._holding(attr, name).items():
            for k, v in getattr(slot, attr)[name].state_dict().items():
                state[f"{slot_name}.{k}"] = v.detach().clone()
        return state

    def _load(self, attr: str, name: str, state: dict[str, torch.Tensor]) -> None:
        holding = self._holding(attr, name)
        for slot_name, slot in holding.items():
            module = getattr(slot, attr)[name]
            prefix = f"{slot_name}."
            part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            expected = module.state_dict()
            if set(part) != set(expected):
                raise StoreError(
                    f"{attr[3:]} state does not fit this backbone/adapter: slot '{slot_name}' expects "
                    f"{sorted(expected)}, got {sorted(part) or 'nothing'}")
            for k, v in part.items():
                if v.shape != expected[k].shape:
                    raise StoreError(f"{attr[3:]} state shape {tuple(v.shape)} for '{prefix}{k}' does not match "
                                     f"the backbone's {tuple(expected[k].shape)} (another backbone or adapter size?)")
            module.load_state_dict(part)
        known = {f"{s}." for s in holding}
        stray = [k for k in state if not any(k.startswith(p) for p in known)]
        if stray:
            raise StoreError(f"{attr[3:]} state has keys for slots this model lacks, e.g. '{stray[0]}'")

    def adapter_state(self, name: str) -> dict[str, torch.Tensor]:
        return self._collect("cl_adapters", name)

    def load_adapter(self, name: str, state: dict[str, torch.Tensor]) -> None:
        self._load("cl_adapters", name, state)

    def fusion_state(self, name: str) -> dict[str, torch.Tensor]:
        return self._collect("cl_fusion", name)

    def load_fusion(self, name: str, state: dict[str, torch.Tensor]) -> None:
        self._load("cl_fusion", name, state)

    def head_state(self, name: str) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.heads[name].state_dict().items()}

    def load_head(self, name: str, state: dict[str, torch.Tensor]) -> None:
        head = self.heads[name]
        expected = head.state_dict()
        if any(k not in state or state[k].shape != v.shape for k, v in expected.items()):
            raise StoreError(f"head state does not match the task's head shape {tuple(expected['proj.weight'].shape)}")
        head.load_state_dict(state)

    def backbone_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.backbone.state_dict().items()}


def autocast(precision: str, device: str):
    """The context a phase runs its model in: bf16 autocast, or nothing (fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def count_params(module_or_state) -> int:
    if isinstance(module_or_state, dict):
        return sum(v.numel() for v in module_or_state.values())
    return sum(p.numel() for p in module_or_state.parameters())


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["AdaptedModel", "Fuse", "autocast", "count_params", "trainable_params"]
