"""Inject adapters into any supported encoder by module name.

An `AdapterSlot` replaces a module whose output is a (B, T, H) tensor (an output projection,
or the embeddings for AdaLink) and adds the active composition to that output:

    active = "rte"                          # one adapter
    active = Fuse(("rte", "mrpc"), "f")     # AdapterFusion over adapters with fusion layer "f"

Adapters live in `cl_adapters` ModuleDicts keyed by name and fusion layers in `cl_fusion`, so
every adapter parameter name carries the prefix `cl_` and freezing, saving and counting are
plain name filters (the peft way).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import nn

from cl_sim.adapters.fusion import Fusion
from cl_sim.adapters.modules import Bottleneck, stackable, stacked_bottlenecks
from cl_sim.errors import ConfigError

_BERTLIKE = {
    "attn": r"encoder\.layer\.\d+\.attention\.output\.dense",
    "ffn": r"encoder\.layer\.\d+\.output\.dense",
    "emb": r"embeddings",
}
_DISTILBERT = {
    "attn": r"transformer\.layer\.\d+\.attention\.out_lin",
    "ffn": r"transformer\.layer\.\d+\.ffn\.lin2",
    "emb": r"embeddings",
}
_MPNET = {**_BERTLIKE, "attn": r"encoder\.layer\.\d+\.attention\.attn\.o"}
# ELECTRA projects embeddings of `embedding_size` up to the hidden size when the two differ:
# AdaLink sits after that projection, where the stream has the hidden size its adapters expect.
_ELECTRA = {**_BERTLIKE, "emb": (r"embeddings_project", r"embeddings")}  # alternatives: first that matches
TARGETS = {t: _BERTLIKE for t in ("bert", "roberta", "xlm-roberta", "camembert", "deberta", "deberta-v2")}
TARGETS.update({"distilbert": _DISTILBERT, "mpnet": _MPNET, "electra": _ELECTRA})
UNSUPPORTED = {  # encoder types refused with a reason rather than adapted wrongly
    "albert": "ALBERT shares one layer's weights across all its layers, so adapters injected by module "
              "name would be shared by every layer instead of one per layer",
}
POSITIONS = {"houlsby": ("attn", "ffn"), "pfeiffer": ("ffn",), "adalink": ("emb",)}
POSITION_NAMES = {"attn": "after the attention output", "ffn": "after the feed-forward output",
                  "emb": "after the embeddings"}
FUSION_PLACEMENTS = ("ffn", "all")


# N teachers' adapters in one batched pass (modules.stacked_bottlenecks); False = the per-adapter
# loop (benchmarks/multi_teacher.py compares the two)
BATCHED_TEACHERS = True


@dataclass(frozen=True)
class Fuse:
    """Serialisable composition: fusion layer `fusion` over adapters `names` (in this order)."""

    names: tuple[str, ...]
    fusion: str


Active = Union[None, str, Fuse]


class AdapterSlot(nn.Module):
    def __init__(self, base: nn.Module, position: str = "ffn"):
        super().__init__()
        self.base = base
        self.position = position  # "attn", "ffn" or "emb" (POSITIONS)
        self.cl_adapters = nn.ModuleDict()
        self.cl_fusion = nn.ModuleDict()
        self.active: Active = None
        self.mask: Optional[torch.Tensor] = None  # (B, T) set by the model for attention records
        self.records: Optional[list] = None  # when a list: outputs appended (for hidden-state KD)
        self.attention: dict[str, torch.Tensor] = {}  # fusion name -> summed (N,) attention
        self.attention_count: dict[str, float] = {}
        self.recording_attention = False

    def forward(self, *args, **kwargs):
        h = self.base(*args, **kwargs)
        if isinstance(self.active, str):
            h = self.cl_adapters[self.active](h)
        elif isinstance(self.active, Fuse):
            h = self._fuse(h, self.active)
        if self.records is not None:
            self.records.append(h)
        return h

    def _fuse(self, h: torch.Tensor, comp: Fuse) -> torch.Tensor:
        adapters = [self.cl_adapters[n] for n in comp.names]
        if BATCHED_TEACHERS and len(adapters) > 1 and stackable(adapters):
            outputs = stacked_bottlenecks(adapters, h)  # (N, B, T, H), two batched products
        else:
            outputs = torch.stack([a(h) for a in adapters])
        if comp.fusion not in self.cl_fusion:  # a Houlsby attention slot with fusion after the FFN only:
            return outputs.mean(0)  # the teachers' adapters averaged (one teacher: exactly that adapter)
        fused, att = self.cl_fusion[comp.fusion](h, outputs)
        if self.recording_attention:
            with torch.no_grad():
                m = self.mask.to(att.dtype).unsqueeze(-1) if self.mask is not None else torch.ones_like(att[..., :1])
                total = (att * m).sum(dim=(0, 1)).float()  # (N,)
                self.attention[comp.fusion] = self.attention.get(comp.fusion, 0) + total.cpu()
                self.attention_count[comp.fusion] = self.attention_count.get(comp.fusion, 0) + float(m.sum())
        return fused


def _position_targets(model: nn.Module, model_type: str, position: str) -> list[str]:
    """Module names of one position; a tuple of patterns means alternatives, first match wins."""
    patterns = TARGETS[model_type][position]
    names = [n for n, _ in model.named_modules()]
    for pattern in (patterns,) if isinstance(patterns, str) else patterns:
        found = [n for n in names if re.fullmatch(pattern, n)]
        if found:
            return found
    return []


def _named_targets(model: nn.Module, kind: str) -> dict[str, str]:
    """Module name -> position for every slot of `kind`: each position once per layer, or an error."""
    model_type = getattr(model.config, "model_type", "")
    if model_type in UNSUPPORTED:
        raise ConfigError(f"adapter: encoder type '{model_type}' is not supported: {UNSUPPORTED[model_type]}")
    if model_type not in TARGETS:
        raise ConfigError(
            f"adapter: encoder type '{model_type}' is not supported (supported: {', '.join(sorted(TARGETS))})")
    layers = getattr(model.config, "num_hidden_layers", None)
    targets = {}
    for position in POSITIONS[kind]:
        found = _position_targets(model, model_type, position)
        want = 1 if position == "emb" else layers
        if not found or (want is not None and len(found) != want):
            raise ConfigError(
                f"adapter: a {kind} adapter needs a slot {POSITION_NAMES[position]} ('{position}') in every "
                f"layer, but '{model_type}' has {len(found)} such module(s) for {want} layer(s)")
        targets.update({name: position for name in found})
    order = [n for n, _ in model.named_modules()]
    return {n: targets[n] for n in sorted(targets, key=order.index)}  # model order: layer by layer


def inject_slots(model: nn.Module, kind: str) -> dict[str, AdapterSlot]:
    """Wrap every target module of `kind` in an AdapterSlot, in place; returns name -> slot."""
    slots = {}
    for name, position in _named_targets(model, kind).items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        slot = AdapterSlot(getattr(parent, child), position)
        setattr(parent, child, slot)
        slots[name] = slot
    return slots


def new_adapter(kind: str, hidden: int, reduction_factor: int, rank: int, non_linearity: str,
                bottleneck: int = 0) -> nn.Module:
    if kind == "adalink":
        return Bottleneck(hidden, rank, "identity")
    return Bottleneck(hidden, bottleneck or max(1, hidden // reduction_factor), non_linearity)


def fusion_slots(slots: dict[str, AdapterSlot], placement: str) -> dict[str, AdapterSlot]:
    """The slots that get a fusion layer: `all`, or `ffn` = after the FFN adapters (AdapterFusion's
    place; a kind without an FFN position, AdaLink, keeps its single slot)."""
    if placement == "all" or not any(s.position == "ffn" for s in slots.values()):
        return dict(slots)
    return {n: s for n, s in slots.items() if s.position == "ffn"}


def new_fusion(hidden: int, value_init_noise: float, factorized: bool = False) -> nn.Module:
    return Fusion(hidden, value_init_noise, factorized)
