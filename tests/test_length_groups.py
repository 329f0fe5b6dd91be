"""A batch's rows run through the backbone in length groups (cl_sim.model.length_groups): the split
is the cheapest one under its cost model, and the grouped forward is the padded batch's function:
same outputs, slot records, fusion attention and gradients, up to float rounding."""
import itertools

import pytest
import torch

from cl_sim import model as model_mod
from cl_sim.backbone import build_tiny
from cl_sim.config import AdapterConfig
from cl_sim.model import AdaptedModel, Fuse, length_groups


def split_cost(lengths, groups, overhead):
    return sum(overhead + len(g) * max(lengths[i] for i in g) for g in groups)


def brute_force(lengths, overhead):
    """Cheapest split of the length order into consecutive groups, by trying every cut set."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = None
    for k in range(len(order)):
        for cuts in itertools.combinations(range(1, len(order)), k):
            bounds = [0, *cuts, len(order)]
            groups = [order[a:b] for a, b in zip(bounds, bounds[1:])]
            cost = split_cost(lengths, groups, overhead)
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("overhead", [1, 8, 40])
def test_the_split_is_the_cheapest_and_covers_every_row_once(seed, overhead):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 60, (7,), generator=g)
    groups = length_groups(lengths, overhead)
    rows = torch.cat(groups).tolist()
    assert sorted(rows) == list(range(7))
    ls = lengths.tolist()
    assert split_cost(ls, [g.tolist() for g in groups], overhead) == brute_force(ls, overhead)
    for a, b in zip(groups, groups[1:]):  # groups follow the length order
        assert lengths[a].max() <= lengths[b].min()


def test_one_group_in_row_order_when_no_split_pays():
    assert [g.tolist() for g in length_groups(torch.tensor([9, 9, 9]), 1)] == [[0, 1, 2]]
    assert [g.tolist() for g in length_groups(torch.tensor([5, 30, 6]), 0)] == [[0, 1, 2]]  # off
    assert [g.tolist() for g in length_groups(torch.tensor([20, 21, 19]), 64)] == [[0, 1, 2]]
    assert [g.tolist() for g in length_groups(torch.tensor([4]), 1)] == [[0]]
    assert len(length_groups(torch.tensor([3, 3, 3, 60, 60, 60]), 16)) == 2


def test_the_overhead_scales_with_width_and_stays_off_the_accelerators(monkeypatch):
    monkeypatch.setattr(model_mod, "GROUP_OVERHEAD_TOKENS", 32)
    cpu = torch.device("cpu")
    assert model_mod.group_overhead(384, cpu) == 32  # the calibration point (MiniLM)
    assert model_mod.group_overhead(768, cpu) == 8  # a wider model: a token costs 4x, a call the same
    assert model_mod.group_overhead(32, cpu) > 4000  # the tiny test BERT: whole batches
    assert model_mod.group_overhead(384, torch.device("cuda")) == 0
    assert model_mod.group_overhead(384, torch.device("meta")) == 0
    monkeypatch.setattr(model_mod, "GROUP_OVERHEAD_TOKENS", 0)
    assert model_mod.group_overhead(384, cpu) == 0


def test_a_meta_device_batch_runs_whole(monkeypatch):
    """Off the CPU the model never splits, nor reads the lengths (a device sync: on `meta` it raises)."""
    m = model_with("pfeiffer").to("meta")
    batch = {k: v.to("meta") for k, v in batch_of([3, 30, 4, 29]).items()}
    calls = []
    monkeypatch.setattr(m, "_encode", lambda ids, mask, types: calls.append(ids.shape) or torch.zeros(
        ids.shape[0], m.hidden, device=ids.device))
    out = m(batch, "head")
    assert out.shape == (4, 3) and out.device.type == "meta" and calls == [(4, 30)]


def batch_of(lengths, choices=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, 900, (n,), generator=g)
        mask[i, :n] = 1
    types = (torch.arange(width) >= width // 2).long().expand_as(ids) * mask
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if choices:
        batch = {k: v.view(-1, choices, width) for k, v in batch.items()}
    return batch


def model_with(kind, head_kind="classification", labels=3, fused=False):
    m = AdaptedModel(build_tiny("bert", vocab_size=1000), AdapterConfig(kind=kind, reduction_factor=4), "mean")
    for name in ("a", "b"):
        m.add_adapter(name)
    m.add_fusion("f")
    m.add_head("head", head_kind, labels)
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))  # adapters start near identity: make them matter
    for n, p in m.named_parameters():
        p.requires_grad = "cl_" in n or n.startswith("heads")
    m.set_active(Fuse(("a", "b"), "f") if fused else "a")
    return m.eval()


def run(m, batch, overhead, monkeypatch):
    """Outputs, per-slot records, fusion attention totals and gradients with `overhead`."""
    monkeypatch.setattr(model_mod, "group_overhead", lambda hidden, device: overhead)
    m.zero_grad()
    for s in m.slots.values():
        s.records, s.attention, s.attention_count, s.recording_attention = [], {}, {}, True
    out = m(batch, "head")
    records = [s.records[0] for s in m.slots.values()]
    mask = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1])
    loss = out.pow(2).sum() + sum(((r * r).sum(-1) * mask).sum() for r in records)  # real tokens, like the losses
    loss.backward()
    attention = [(s.attention.get("f"), s.attention_count.get("f")) for s in m.slots.values()]
    for s in m.slots.values():
        s.records, s.recording_attention = None, False
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    return out.detach(), [r.detach() for r in records], attention, grads


@pytest.mark.parametrize("kind,fused,choices", [("pfeiffer", False, None), ("houlsby", False, None),
                                                ("pfeiffer", True, None), ("adalink", False, None),
                                                ("pfeiffer", False, 2)])
def test_a_grouped_forward_is_the_padded_batchs_function(kind, fused, choices, monkeypatch):
    lengths = [3, 17, 4, 16, 30, 5, 29, 3]
    m = model_with(kind, labels=1 if choices else 3, head_kind="multiple_choice" if choices else "classification",
                   fused=fused)
    batch = batch_of(lengths, choices)
    assert len(length_groups(batch["attention_mask"].reshape(-1, 30).sum(-1), 2)) > 1  # the case splits
    out0, rec0, att0, grad0 = run(m, batch, 0, monkeypatch)
    out1, rec1, att1, grad1 = run(m, batch, 2, monkeypatch)
    torch.testing.assert_close(out1, out0, atol=1e-5, rtol=1e-4)
    mask = batch["attention_mask"].reshape(len(lengths), -1).bool()
    for a, b in zip(rec1, rec0):
        assert a.shape == b.shape == (len(lengths), 30, m.hidden)
        torch.testing.assert_close(a[mask], b[mask], atol=1e-5, rtol=1e-4)  # real tokens (the losses mask the rest)
    for (t1, c1), (t0, c0) in zip(att1, att0):
        assert c1 == c0
        if t0 is not None:
            torch.testing.assert_close(t1, t0, atol=1e-4, rtol=1e-4)
    assert grad1.keys() == grad0.keys() and grad0
    for n in grad0:
        torch.testing.assert_close(grad1[n], grad0[n], atol=1e-4, rtol=1e-3)
