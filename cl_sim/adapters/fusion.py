"""AdapterFusion (Pfeiffer et al. 2021, "AdapterFusion: Non-Destructive Task Composition for
Transfer Learning", arXiv:2005.00247).

Per adapted position: query = the sublayer output before any adapter, keys and values = each
adapter's output; softmax over adapters per token. V starts at identity plus small noise and an
optional L2 term pulls it back toward identity (the paper's regulariser). With V = I and equal
attention the output is exactly the mean of the adapter outputs.

`factorized=True` computes the same function with 3 instead of 2N+1 hidden x hidden products per
token, by linearity: q·(K o_n + b) = (q K)·o_n + q·b (one key product for all N adapters), and
Σ_n a_n V o_n = V (Σ_n a_n o_n) (V has no bias). Equal up to float summation order, so it is part
of the store key (`method.fusion.factorized`).
"""
from __future__ import annotations

import torch
from torch import nn


class Fusion(nn.Module):
    def __init__(self, hidden: int, value_init_noise: float = 1e-3, factorized: bool = False):
        super().__init__()
        self.factorized = factorized
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden, bias=False)
        for lin in (self.query, self.key):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        with torch.no_grad():
            self.value.weight.copy_(torch.eye(hidden) + value_init_noise * torch.randn(hidden, hidden))

    def forward(self, query: torch.Tensor, outputs: torch.Tensor):
        """query (B, T, H); outputs (N, B, T, H) -> fused (B, T, H), attention (B, T, N)."""
        q = self.query(query)  # (B, T, H)
        if self.factorized:
            scores = torch.einsum("bth,nbth->btn", q @ self.key.weight, outputs) + (q @ self.key.bias).unsqueeze(-1)
            att = scores.softmax(dim=-1)
            return self.value(torch.einsum("btn,nbth->bth", att, outputs)), att
        k = self.key(outputs)  # (N, B, T, H)
        scores = torch.einsum("bth,nbth->btn", q, k)
        att = scores.softmax(dim=-1)  # (B, T, N)
        v = self.value(outputs)  # (N, B, T, H)
        return torch.einsum("btn,nbth->bth", att, v), att

    def value_reg(self) -> torch.Tensor:
        """||V - I||² (Pfeiffer et al. 2021, §3.2)."""
        eye = torch.eye(self.value.weight.shape[0], device=self.value.weight.device)
        return (self.value.weight - eye).pow(2).sum()


def fusion_params(hidden: int) -> int:
    return 3 * hidden * hidden + 2 * hidden
