"""Small pure loss functions: task losses and knowledge distillation (I2I, AdapterDistillation)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def task_loss(kind: str, out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classification and multiple choice, MSE for regression."""
    if kind == "regression":
        return F.mse_loss(out.float(), labels.float())
    return F.cross_entropy(out.float(), labels)


def logit_kd(kind: str, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015: T² · KL(softmax(teacher/T) ‖ softmax(student/T)); MSE for regression.

    The T² factor keeps gradient magnitudes comparable across temperatures.
    """
    if kind == "regression":
        return F.mse_loss(student.float(), teacher.float())
    t = temperature
    log_p_s = F.log_softmax(student.float() / t, dim=-1)
    p_t = F.softmax(teacher.float() / t, dim=-1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * t * t


def hidden_kd(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
              mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean over adapted positions of the token-level MSE between student and teacher outputs.

    student/teacher: one (B, T, H) tensor per adapter slot; mask (B, T) excludes padding.
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(f"hidden_kd needs one teacher output per student output ({len(student)} vs {len(teacher)})")
    losses = []
    for s, t in zip(student, teacher):
        err = (s.float() - t.float()).pow(2).mean(-1)  # (B, T)
        if mask is not None:
            m = mask.to(err.dtype)
            losses.append((err * m).sum() / m.sum().clamp(min=1.0))
        else:
            losses.append(err.mean())
    return torch.stack(losses).mean()
