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
from cl_sim.adapters.modules import Bottleneck
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
_MPNET = {**_BERTLIKE, "attn": r"encoder\.layer\.\d+\.attention\.attn\.o"}  # MPNet's attention output is `o`
_LAYERED = ("bert", "roberta", "xlm-roberta", "electra", "camembert", "deberta", "deberta-v2", "mpnet")
TARGETS = {t: _BERTLIKE for t in _LAYERED} | {"mpnet": _MPNET, "distilbert": _DISTILBERT}
POSITIONS = {"houlsby": ("attn", "ffn"), "pfeiffer": ("ffn",), "adalink": ("emb",)}
UNSUPPORTED = {
    "albert": "ALBERT shares one layer's weights across all its layers, so a per-layer adapter would be "
              "one adapter applied 12 times; use a model with separate layers",
}


@dataclass(frozen=True)
class Fuse:
    """Serialisable composition: fusion layer `fusion` over adapters `names` (in this order)."""

    names: tuple[str, ...]
    fusion: str


Active = Union[None, str, Fuse]


class AdapterSlot(nn.Module):
    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
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
        outputs = torch.stack([self.cl_adapters[n](h) for n in comp.names])  # (N, B, T, H)
        fused, att = self.cl_fusion[comp.fusion](h, outputs)
        if self.recording_attention:
            with torch.no_grad():
                m = self.mask.to(att.dtype).unsqueeze(-1) if self.mask is not None else torch.ones_like(att[..., :1])
                total = (att * m).sum(dim=(0, 1)).float()  # (N,)
                self.attention[comp.fusion] = self.attention.get(comp.fusion, 0) + total.cpu()
                self.attention_count[comp.fusion] = self.attention_count.get(comp.fusion, 0) + float(m.sum())
        return fused


def check_model_type(model_type: str) -> None:
    """Refuse encoder types adapters cannot be placed in, naming the reason."""
    if model_type in UNSUPPORTED:
        raise ConfigError(f"adapter: encoder type '{model_type}' is not supported: {UNSUPPORTED[model_type]}")
    if model_type not in TARGETS:
        raise ConfigError(
            f"adapter: encoder type '{model_type}' is not supported (supported: {', '.join(sorted(TARGETS))})")


def _named_targets(model: nn.Module, kind: str) -> list[str]:
    """Module names for every position of `kind`; every position must be found, in every layer
    (a Houlsby adapter with only its FFN half would silently be a different method)."""
    model_type = getattr(model.config, "model_type", "")
    check_model_type(model_type)
    modules = [n for n, _ in model.named_modules()]
    found = {p: [n for n in modules if re.fullmatch(TARGETS[model_type][p], n)] for p in POSITIONS[kind]}
    layers = max(len(v) for v in found.values())
    for position, names in found.items():
        if len(names) < layers or not names:
            raise ConfigError(f"adapter: {kind} needs its '{position}' position in every layer, but encoder type "
                              f"'{model_type}' has {len(names)} module(s) matching {TARGETS[model_type][position]!r} "
                              f"for {layers} layer(s)")
    return [n for n in modules if any(n in v for v in found.values())]


def inject_slots(model: nn.Module, kind: str) -> dict[str, AdapterSlot]:
    """Wrap every target module of `kind` in an AdapterSlot, in place; returns name -> slot."""
    slots = {}
    for name in _named_targets(model, kind):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        slot = AdapterSlot(getattr(parent, child))
        setattr(parent, child, slot)
        slots[name] = slot
    return slots


def new_adapter(kind: str, hidden: int, reduction_factor: int, rank: int, non_linearity: str,
                bottleneck: int = 0) -> nn.Module:
    if kind == "adalink":
        return Bottleneck(hidden, rank, "identity")
    return Bottleneck(hidden, bottleneck or max(1, hidden // reduction_factor), non_linearity)


def new_fusion(hidden: int, value_init_noise: float) -> nn.Module:
    return Fusion(hidden, value_init_noise)
