"""Adapter modules: bottleneck (Houlsby et al. 2019; Pfeiffer et al. 2021) and AdaLink
(Wang et al. 2023, arXiv:2310.12100), plus task heads.

Every adapter is residual with its up-projection initialised to exactly zero, so a freshly
injected adapter leaves the frozen backbone's outputs unchanged (near-identity init).
"""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "identity": nn.Identity}


class Bottleneck(nn.Module):
    """x + up(act(down(x))): hidden -> bottleneck -> hidden. AdaLink uses it with a linear
    (identity) activation and a low rank, between the embeddings and the first block."""

    def __init__(self, hidden: int, bottleneck: int, non_linearity: str = "relu"):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(bottleneck, hidden)
        # down keeps nn.Linear's Kaiming init (as LoRA's A): with up = 0 the gradient reaching up is
        # act(down(x)), which must not be tiny or the adapter barely moves on small budgets.
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        return x + self.up(self.act(self.down(x)))


def bottleneck_params(hidden: int, bottleneck: int) -> int:
    """Parameters of one Bottleneck: two weight matrices and two biases."""
    return 2 * hidden * bottleneck + bottleneck + hidden


class Head(nn.Module):
    """Task head on the pooled representation.

    classification: logits (B, n); regression: (B,); multiple_choice: one score per
    (context, choice) pair, reshaped to (B, C) by the model.
    """

    def __init__(self, hidden: int, kind: str, num_labels: int):
        super().__init__()
        self.kind = kind
        out = num_labels if kind == "classification" else 1
        self.proj = nn.Linear(hidden, out)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        out = self.proj(pooled)
        return out if self.kind == "classification" else out.squeeze(-1)
