"""Adapters land exactly where asked in every BERT-like encoder family `transformers` ships (tiny
random models built in code): one slot per position per layer, a working forward pass, and a clear
error instead of fewer adapters when a family's module names match only some positions."""
import pytest
import torch
import transformers
from torch import nn

from cl_sim.adapters import inject
from cl_sim.config import AdapterConfig
from cl_sim.errors import ConfigError, StoreError
from cl_sim.model import AdaptedModel, Fuse

LAYERS, HIDDEN = 2, 32
SIZES = dict(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
             intermediate_size=64, max_position_embeddings=64)
FAMILIES = {  # model_type -> config class (ELECTRA with a smaller embedding size: the projected case)
    "mpnet": ("MPNetConfig", {}),
    "electra": ("ElectraConfig", {"embedding_size": 16}),
    "xlm-roberta": ("XLMRobertaConfig", {}),
    "camembert": ("CamembertConfig", {}),
    "deberta": ("DebertaConfig", {}),
    "deberta-v2": ("DebertaV2Config", {}),
}
KINDS = {"houlsby": ("attn", "ffn"), "pfeiffer": ("ffn",)}
families = pytest.mark.parametrize("family", sorted(FAMILIES))


def _encoder(model_type: str) -> nn.Module:
    name, extra = FAMILIES.get(model_type, ("AlbertConfig", {}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(getattr(transformers, name)(**SIZES, **extra))
    return model.eval()


def _batch() -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (2, 6), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _randomise_up(model: AdaptedModel, name: str) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for slot in model.slots.values():
            up = slot.cl_adapters[name].up
            up.weight.copy_(torch.randn(up.weight.shape, generator=g) * 0.5)
            up.bias.copy_(torch.randn(up.bias.shape, generator=g) * 0.5)


def _layer_of(slot_name: str) -> int:
    return int(slot_name.split(".")[2])  # encoder.layer.<i>....


@families
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_adapter_per_position_per_layer_and_forward_works(family, kind):
    frozen = _encoder(family)
    model = AdaptedModel(_encoder(family), AdapterConfig(kind=kind, reduction_factor=4))
    per_layer = {}
    for name, slot in model.slots.items():
        per_layer.setdefault(_layer_of(name), []).append(slot.position)
    assert per_layer == {i: list(KINDS[kind]) for i in range(LAYERS)}
    model.add_adapter("x")
    model.set_active("x")
    batch = _batch()
    with torch.no_grad():
        want = frozen(**batch).last_hidden_state
        assert torch.equal(model.backbone(**batch).last_hidden_state, want)  # zero up-projection: identity
        _randomise_up(model, "x")
        got = model.backbone(**batch).last_hidden_state
    assert got.shape == (2, 6, HIDDEN) and not torch.allclose(got, want, atol=1e-4)


@families
def test_adalink_sits_where_the_stream_has_the_hidden_size(family):
    model = AdaptedModel(_encoder(family), AdapterConfig(kind="adalink", rank=4))
    assert list(model.slots) == ["embeddings_project" if family == "electra" else "embeddings"]
    model.add_adapter("x")
    model.set_active("x")
    _randomise_up(model, "x")
    with torch.no_grad():
        assert model.backbone(**_batch()).last_hidden_state.shape == (2, 6, HIDDEN)


def test_albert_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="'albert' is not supported: ALBERT shares one layer"):
        AdaptedModel(_encoder("albert"), AdapterConfig(kind="pfeiffer"))


def test_patterns_that_miss_a_position_are_an_error_not_fewer_adapters(monkeypatch):
    # MPNet's attention output is `attention.attn.o`: BERT's patterns find only the FFN position
    monkeypatch.setitem(inject.TARGETS, "mpnet", inject._BERTLIKE)
    with pytest.raises(ConfigError, match=r"houlsby adapter needs a slot after the attention output \('attn'\) "
                                          r"in every layer, but 'mpnet' has 0 such module\(s\) for 2 layer"):
        AdaptedModel(_encoder("mpnet"), AdapterConfig(kind="houlsby"))
    assert len(AdaptedModel(_encoder("mpnet"), AdapterConfig(kind="pfeiffer")).slots) == LAYERS


def test_a_layer_without_the_position_is_an_error():
    encoder = _encoder("xlm-roberta")
    out = encoder.encoder.layer[1].attention.output
    out.proj = out.dense  # renamed in one layer only: the pattern matches layer 0 alone
    del out.dense
    with pytest.raises(ConfigError, match=r"'xlm-roberta' has 1 such module\(s\) for 2 layer"):
        AdaptedModel(encoder, AdapterConfig(kind="houlsby"))


@pytest.mark.parametrize("placement, fused", [("ffn", ("ffn",)), ("all", ("attn", "ffn"))])
def test_fusion_placement_with_houlsby(placement, fused):
    model = AdaptedModel(_encoder("mpnet"), AdapterConfig(kind="houlsby", reduction_factor=4))
    for name in ("a", "b"):
        model.add_adapter(name)
    _randomise_up(model, "a")
    model.add_fusion("f", placement=placement)
    assert sorted({s.position for s in model.slots.values() if "f" in s.cl_fusion}) == list(fused)
    assert len(model.fusion_modules("f")) == LAYERS * len(fused)
    state = model.fusion_state("f")
    positions = {s.position for k in state for n, s in model.slots.items() if k.startswith(n + ".")}
    assert positions == set(fused)
    other = AdaptedModel(_encoder("mpnet"), AdapterConfig(kind="houlsby", reduction_factor=4))
    other.add_fusion("f", placement="all" if placement == "ffn" else "ffn")
    with pytest.raises(StoreError):  # a state stored under another placement does not fit
        other.load_fusion("f", state)
    model.set_active(Fuse(("a", "b"), "f"))
    batch = _batch()
    with torch.no_grad():
        model.backbone(**batch)
        if placement == "ffn":  # the attention slots average the adapters' outputs
            slot = next(s for s in model.slots.values() if s.position == "attn")
            h = slot.base(torch.randn(1, 3, HIDDEN))
            mean = (slot.cl_adapters["a"](h) + slot.cl_adapters["b"](h)) / 2
            assert torch.allclose(slot._fuse(h, Fuse(("a", "b"), "f")), mean)
