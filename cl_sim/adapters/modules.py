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


def stacked_bottlenecks(adapters: list, x: torch.Tensor) -> torch.Tensor:
    """The outputs of N bottlenecks of one shape on the same input, (N, B, T, H), in two batched
    products instead of 2N small ones: every down-projection as one matmul against the weights
    stacked along the bottleneck axis, then every up-projection as one batched matmul. The same
    maths as `torch.stack([a(x) for a in adapters])` (equal up to float rounding); it matters when
    a fusion over many teachers runs every step (AdapterHub's 5-adapter fusion: 0.28x ST-A speed)."""
    n, r = len(adapters), adapters[0].down.out_features
    down_w = torch.cat([a.down.weight for a in adapters])  # (N*r, H)
    down_b = torch.cat([a.down.bias for a in adapters])
    z = adapters[0].act(nn.functional.linear(x, down_w, down_b))  # (B, T, N*r)
    z = z.reshape(*x.shape[:-1], n, r).movedim(-2, 0)  # (N, B, T, r)
    up_w = torch.stack([a.up.weight for a in adapters])  # (N, H, r)
    up_b = torch.stack([a.up.bias for a in adapters])  # (N, H)
    out = torch.matmul(z.reshape(n, -1, r), up_w.transpose(1, 2)).reshape(n, *x.shape)
    return x.unsqueeze(0) + out + up_b.reshape(n, *([1] * (x.dim() - 1)), -1)


def stackable(adapters: list) -> bool:
    """Bottlenecks of one shape and activation (what `stacked_bottlenecks` can batch)."""
    first = adapters[0]
    return all(isinstance(a, Bottleneck) and a.down.weight.shape == first.down.weight.shape
               and type(a.act) is type(first.act) for a in adapters)


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
