"""Distillation losses and teacher selection: small pure functions, hand-checked."""
import math

import numpy as np
import pytest
import torch

from cl_sim.losses import hidden_kd, logit_kd, task_loss
from cl_sim.methods.base import Deployed, Prior
from cl_sim.teachers import select_teachers


def test_logit_kd_is_zero_for_identical_logits_and_scales_with_t_squared():
    z = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    assert logit_kd("classification", z, z, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])  # teacher p = (3/4, 1/4)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert logit_kd("classification", s, t, 1.0).item() == pytest.approx(kl, rel=1e-5)
    assert logit_kd("regression", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]), 3.0).item() == pytest.approx(2.0)


def test_hidden_kd_ignores_padding():
    s = [torch.zeros(1, 3, 2)]
    t = [torch.tensor([[[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]]])]
    mask = torch.tensor([[1, 1, 0]])
    assert hidden_kd(s, t, mask).item() == pytest.approx(1.0)
    assert hidden_kd(s, t).item() == pytest.approx((1 + 1 + 81) / 3)
    with pytest.raises(ValueError):
        hidden_kd(s, [])


def test_task_loss_kinds():
    logits = torch.tensor([[10.0, -10.0]])
    assert task_loss("classification", logits, torch.tensor([0])).item() < 1e-6
    assert task_loss("regression", torch.tensor([2.0]), torch.tensor([0.0])).item() == pytest.approx(4.0)


def _priors(names):
    return [Prior(n, f"key-{n}", Deployed(head=f"key-{n}")) for n in names]


def test_teacher_selection_rules():
    pool = _priors(["a", "b", "c", "d"])
    assert [p.task for p in select_teachers(pool, None, "recent", "e", 0)] == ["a", "b", "c", "d"]
    assert select_teachers(pool, 0, "recent", "e", 0) == []
    assert [p.task for p in select_teachers(pool, 2, "recent", "e", 0)] == ["c", "d"]
    r1 = select_teachers(pool, 2, "random", "e", 0)
    assert r1 == select_teachers(pool, 2, "random", "e", 0) and len(r1) == 2
    assert any(select_teachers(pool, 2, "random", "e", s) != r1 for s in range(1, 10))
    emb = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([0.7, 0.7]),
           "d": np.array([-1.0, 0.0]), "e": np.array([1.0, 0.1])}
    chosen = select_teachers(pool, 2, "similar", "e", 0, embed=lambda n: emb[n] / np.linalg.norm(emb[n]))
    assert [p.task for p in chosen] == ["a", "c"]  # arrival order kept
