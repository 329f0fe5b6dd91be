"""Adapter injection into BERT-, RoBERTa- and DistilBERT-style encoders: slots found by module
name, exact near-identity at init, parameter counts by formula, one parameter prefix."""
import pytest
import torch

from cl_sim.config import AdapterConfig
from cl_sim.model import AdaptedModel, count_params
from cl_sim.phases import fresh_backbone

BACKBONES = ("tiny-bert", "tiny-roberta", "tiny-distilbert")
KINDS = ("houlsby", "pfeiffer", "adalink")
HIDDEN, LAYERS = 32, 2  # the tiny backbones
SLOTS = {"houlsby": 2 * LAYERS, "pfeiffer": LAYERS, "adalink": 1}
both = pytest.mark.parametrize("backbone", BACKBONES)
kinds = pytest.mark.parametrize("kind", KINDS)


def _batch(seed: int = 0, B: int = 3, T: int = 7) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, -2:] = 0  # one padded row
    return {"input_ids": ids, "attention_mask": mask}


def _adapted(backbone: str, kind: str, **adapter) -> AdaptedModel:
    model = AdaptedModel(fresh_backbone(backbone)[0], AdapterConfig(kind=kind, **adapter))
    with torch.random.fork_rng(devices=[]):  # the down-projection's random init: same in any test order
        torch.manual_seed(0)
        model.add_adapter("x")
    model.set_active("x")
    return model.eval()


@both
@kinds
def test_injection_finds_the_slots(backbone, kind):
    model = _adapted(backbone, kind)
    assert len(model.slots) == SLOTS[kind]
    names = list(model.slots)
    if kind == "adalink":
        assert names == ["embeddings"]
    else:
        layer = "transformer.layer" if backbone == "tiny-distilbert" else "encoder.layer"
        assert all(n.startswith(layer) for n in names)
        assert len({n.split(".")[2] for n in names}) == LAYERS  # every layer is adapted


@both
@kinds
def test_zero_up_projection_leaves_the_backbone_exactly_unchanged(backbone, kind):
    frozen = fresh_backbone(backbone)[0].eval()
    model = _adapted(backbone, kind)
    batch = _batch()
    with torch.no_grad():
        want = frozen(**batch).last_hidden_state
        got = model.backbone(**batch).last_hidden_state  # (B, T, H)
        assert torch.equal(got, want)
        # the same adapter with a non-zero up-projection must change the output (the bias too: with a
        # bottleneck of 2 both ReLU units can be off for every token, and then the weight alone does nothing)
        g = torch.Generator().manual_seed(1)
        for slot in model.slots.values():
            up = slot.cl_adapters["x"].up
            up.weight.copy_(torch.randn(up.weight.shape, generator=g) * 0.5)
            up.bias.copy_(torch.randn(up.bias.shape, generator=g) * 0.5)
        changed = model.backbone(**batch).last_hidden_state
    assert changed.shape == want.shape
    assert not torch.allclose(changed, want, atol=1e-4)


@both
@pytest.mark.parametrize("kind, adapter, per_slot", [
    # bottleneck b = hidden // reduction_factor: 2*h*b + b + h per slot
    ("houlsby", {"reduction_factor": 16}, 2 * HIDDEN * 2 + 2 + HIDDEN),
    ("pfeiffer", {"reduction_factor": 4}, 2 * HIDDEN * 8 + 8 + HIDDEN),
    ("pfeiffer", {"bottleneck": 48}, 2 * HIDDEN * 48 + 48 + HIDDEN),  # explicit width may exceed hidden
    # adalink rank r: 2*h*r + r + h
    ("adalink", {"rank": 4}, 2 * HIDDEN * 4 + 4 + HIDDEN),
])
def test_parameter_counts_match_the_formula(backbone, kind, adapter, per_slot):
    model = _adapted(backbone, kind, **adapter)
    for slot in model.slots.values():
        assert count_params(slot.cl_adapters["x"]) == per_slot
    assert count_params(model.adapter_state("x")) == SLOTS[kind] * per_slot


@both
@kinds
def test_every_adapter_parameter_carries_the_prefix(backbone, kind):
    plain = {n for n, _ in fresh_backbone(backbone)[0].named_parameters()}
    model = _adapted(backbone, kind)
    adapter_ids = {id(p) for s in model.slots.values() for p in s.cl_adapters["x"].parameters()}
    names = dict(model.backbone.named_parameters())
    added = [n for n, p in names.items() if id(p) in adapter_ids]
    assert len(added) == 4 * SLOTS[kind]  # down/up weight and bias per slot
    assert all("cl_adapters" in n for n in added)
    assert not [n for n, p in names.items() if "cl_adapters" in n and id(p) not in adapter_ids]
    # the backbone's own parameters are all still there, only renamed under the slot's `base`
    base = {n.replace(".base.", ".").replace("embeddings.base", "embeddings")
            for n in names if "cl_adapters" not in n}
    assert base == plain


def test_unsupported_encoder_is_a_clear_error():
    from transformers import GPT2Config, GPT2Model

    from cl_sim.errors import ConfigError

    gpt = GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100))
    with pytest.raises(ConfigError, match="'gpt2' is not supported"):
        AdaptedModel(gpt, AdapterConfig(kind="pfeiffer"))


@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("act", ["relu", "gelu", "identity"])
def test_batched_teachers_equal_the_per_adapter_loop(n, act):
    from cl_sim.adapters.modules import Bottleneck, stacked_bottlenecks

    torch.manual_seed(0)
    adapters = [Bottleneck(32, 8, act) for _ in range(n)]
    for a in adapters:  # trained-looking adapters (a fresh one has up = 0)
        torch.nn.init.normal_(a.up.weight, std=0.1)
        torch.nn.init.normal_(a.up.bias, std=0.1)
    x = torch.randn(3, 7, 32)
    loop = torch.stack([a(x) for a in adapters])
    batched = stacked_bottlenecks(adapters, x)
    assert batched.shape == (n, 3, 7, 32)
    torch.testing.assert_close(batched, loop, atol=1e-6, rtol=1e-5)
    batched.sum().backward()  # gradients reach every adapter (AdapterDistillation's student is one)
    assert all(a.down.weight.grad is not None for a in adapters)
