"""AdaptedModel: what trains in an adapter phase, heads' output shapes, and adapter/head states
that round-trip through the safetensors store and predict exactly as before (AdapterHub #477)."""
import pytest
import torch
from transformers import BertConfig, BertModel

from cl_sim.config import AdapterConfig, load_config
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.errors import StoreError
from cl_sim.methods.base import Deployed, MethodContext
from cl_sim.model import AdaptedModel
from cl_sim.phases import build_model, fresh_backbone
from cl_sim.store import Store
from cl_sim.train import evaluate_deployed, run_phase

TINY_TASK = dict(n_train=32, n_dev=16, n_test=16, n_signal_words=12, n_filler_words=12)


def _batch(B: int = 4, T: int = 9, C: int = 0, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    shape = (B, C, T) if C else (B, T)
    return {"input_ids": torch.randint(5, 1000, shape, generator=g),
            "attention_mask": torch.ones(shape, dtype=torch.long)}


def _phase(kind: str, backbone: str = "tiny-bert", adapter: str = "houlsby", **overrides):
    cfg = load_config(None, [f"backbone.name={backbone}", f"adapter.kind={adapter}", "training.epochs=1",
                             "training.batch_size=16", "backbone.max_length=32"])
    task = make_synthetic_task("t", "a", **TINY_TASK)
    return MethodContext(cfg, task, run=lambda p: p.key()).phase(kind, **overrides), task


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("backbone", ["tiny-bert", "tiny-roberta", "tiny-distilbert"])
@pytest.mark.parametrize("adapter", ["houlsby", "pfeiffer", "adalink"])
def test_adapter_phase_trains_only_adapter_and_head(backbone, adapter):
    phase, task = _phase("adapter", backbone, adapter)
    model, _, built = build_model(phase, task, source=None)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and all("cl_adapters.student" in n or n.startswith("heads.head.") for n in trainable)
    assert {n for n in trainable if n.startswith("heads.")} == {"heads.head.proj.weight", "heads.head.proj.bias"}
    assert not any("cl_adapters" in n for n in frozen)
    assert sum(p.numel() for n, p in model.named_parameters() if n in trainable) == \
        sum(p.numel() for m in built.train for p in m.parameters())


def test_head_phase_trains_only_the_head():
    phase, task = _phase("head")
    model, _, _ = build_model(phase, task, source=None)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"heads.head.proj.weight",
                                                                           "heads.head.proj.bias"}


@pytest.mark.parametrize("kind, n, shape", [
    ("classification", 3, (4, 3)),
    ("regression", 1, (4,)),
])
def test_head_shapes(kind, n, shape):
    model = AdaptedModel(fresh_backbone("tiny-bert")[0], AdapterConfig(kind="pfeiffer"))
    model.add_head("h", kind, n)
    assert model(_batch(), "h").shape == shape


@pytest.mark.parametrize("backbone", ["tiny-bert", "tiny-distilbert"])
def test_multiple_choice_head_scores_each_choice(backbone):
    model = AdaptedModel(fresh_backbone(backbone)[0], AdapterConfig(kind="houlsby")).eval()
    model.add_head("h", "multiple_choice", 2)
    batch = _batch(B=3, C=2)  # (B, C, T)
    scores = model(batch, "h")
    assert scores.shape == (3, 2)
    # the score of choice c is the score of that (context, choice) row scored alone
    alone = model({k: v[:, 1] for k, v in batch.items()}, "h")  # (B, T) -> (B,)
    assert torch.allclose(scores[:, 1], alone, atol=1e-6)


@pytest.mark.parametrize("adapter", ["houlsby", "pfeiffer", "adalink"])
def test_states_round_trip_through_the_store(tmp_path, adapter):
    model = AdaptedModel(fresh_backbone("tiny-roberta")[0], AdapterConfig(kind=adapter)).eval()
    model.add_adapter("x")
    model.add_head("h", "classification", 3)
    for slot in model.slots.values():
        _randomise(slot.cl_adapters["x"], seed=1)
    _randomise(model.heads["h"], seed=2)
    model.set_active("x")
    batch = _batch(seed=3)
    with torch.no_grad():
        want = model(batch, "h")
    Store(tmp_path).put("k", {"adapter": model.adapter_state("x"), "head": model.head_state("h")}, meta={})

    states = Store(tmp_path).states("k")  # a fresh Store: read from the safetensors file, not a cache
    again = AdaptedModel(fresh_backbone("tiny-roberta")[0], AdapterConfig(kind=adapter)).eval()
    again.add_adapter("y")  # names inside a model are local aliases
    again.add_head("g", "classification", 3)
    again.load_adapter("y", states["adapter"])
    again.load_head("g", states["head"])
    again.set_active("y")
    with torch.no_grad():
        got = again(batch, "g")
    assert torch.equal(got, want)
    assert not torch.allclose(want, want.mean(), atol=1e-3)  # the states really mattered


def test_trained_phase_reloads_to_its_own_dev_score(tmp_path):
    phase, task = _phase("adapter", adapter="pfeiffer")
    store = Store(tmp_path)
    out = run_phase(phase, task, store)
    store.put("p", out.states, {"phase": phase.to_dict(), "metrics": out.metrics})
    dep = Deployed(head="p", adapter="p")
    score, _ = evaluate_deployed(dep, task, Store(tmp_path), split="dev")
    assert score == out.metrics["dev_score"]


def test_adapter_from_another_backbone_size_is_rejected(tmp_path):
    small = AdaptedModel(fresh_backbone("tiny-bert")[0], AdapterConfig(kind="pfeiffer", bottleneck=4))
    small.add_adapter("x")
    Store(tmp_path).put("k", {"adapter": small.adapter_state("x")}, meta={})
    wide = BertModel(BertConfig(vocab_size=200, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64))
    big = AdaptedModel(wide, AdapterConfig(kind="pfeiffer", bottleneck=4))
    big.add_adapter("x")
    with pytest.raises(StoreError, match=r"shape \(4, 32\).*\(4, 48\)"):
        big.load_adapter("x", Store(tmp_path).states("k")["adapter"])


def test_adapter_of_another_kind_is_rejected():
    houlsby = AdaptedModel(fresh_backbone("tiny-bert")[0], AdapterConfig(kind="houlsby"))
    houlsby.add_adapter("x")
    pfeiffer = AdaptedModel(fresh_backbone("tiny-bert")[0], AdapterConfig(kind="pfeiffer"))
    pfeiffer.add_adapter("x")
    with pytest.raises(StoreError, match="slots this model lacks"):
        pfeiffer.load_adapter("x", houlsby.adapter_state("x"))


def test_head_of_another_size_is_rejected():
    model = AdaptedModel(fresh_backbone("tiny-bert")[0], AdapterConfig(kind="pfeiffer"))
    model.add_head("two", "classification", 2)
    model.add_head("three", "classification", 3)
    with pytest.raises(StoreError, match="head"):
        model.load_head("two", model.head_state("three"))


def test_states_cross_the_store_boundary_as_cpu_tensors(tmp_path):
    from cl_sim.phases import to_cpu

    phase, task = _phase("adapter")
    _, _, built = build_model(phase, task, source=None)
    assert {v.device.type for part in to_cpu(built.outputs()).values() for v in part.values()} == {"cpu"}
    on_meta = {"adapter": {"w": torch.empty(2, 2, device="meta")}}  # a model on a non-CPU device
    with pytest.raises(StoreError, match="tensors on meta.*CPU tensors"):
        Store(tmp_path).put("adapter-x", on_meta, {})
    assert not Store(tmp_path).has("adapter-x")
    with pytest.raises(NotImplementedError):  # to_cpu really copies off the device (meta has no data)
        to_cpu(on_meta)


@pytest.mark.parametrize("n, world", [(3, 4), (5, 4), (1, 2), (8, 3)])
def test_no_rank_gets_an_empty_shard(n, world):
    from cl_sim.phases import Dist, shard_batch

    batch = {"labels": torch.arange(n), "input_ids": torch.arange(n).unsqueeze(1)}
    shards = [shard_batch(batch, Dist(rank=r, world_size=world))["labels"].tolist() for r in range(world)]
    assert all(len(s) >= 1 for s in shards)
    assert sorted({x for s in shards for x in s}) == list(range(n))  # every example is trained on
    if n >= world:
        assert sum(map(len, shards)) == n and max(map(len, shards)) - min(map(len, shards)) <= 1
