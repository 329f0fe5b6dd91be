"""Adapters exactly where asked (issue 9): every BERT-like encoder family `transformers` ships gets
both Houlsby positions in every layer; a model that lacks one is refused by name, not half-adapted."""
import pytest
import torch
from transformers import (AlbertConfig, AutoModel, BertConfig, DebertaV2Config, ElectraConfig, MPNetConfig,
                          XLMRobertaConfig)

from cl_sim.adapters import inject
from cl_sim.config import AdapterConfig
from cl_sim.errors import ConfigError
from cl_sim.model import AdaptedModel

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100)
FAMILIES = {"mpnet": MPNetConfig, "electra": ElectraConfig, "xlm-roberta": XLMRobertaConfig,
            "deberta-v2": DebertaV2Config}


def _encoder(config_cls, **kw):
    extra = {"embedding_size": 32} if config_cls in (ElectraConfig, AlbertConfig) else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AutoModel.from_config(config_cls(**SMALL, **extra, **kw)).eval()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("kind,per_layer", [("houlsby", 2), ("pfeiffer", 1)])
def test_every_layer_gets_every_position(family, kind, per_layer):
    model = AdaptedModel(_encoder(FAMILIES[family]), AdapterConfig(kind=kind))
    assert model.backbone.config.model_type == family
    assert len(model.slots) == per_layer * SMALL["num_hidden_layers"]
    if family == "mpnet" and kind == "houlsby":
        assert any(name.endswith("attention.attn.o") for name in model.slots)
    model.add_adapter("x")
    model.add_head("h", "classification", 3)
    model.set_active("x")
    batch = {"input_ids": torch.randint(5, 100, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long)}
    assert model(batch, "h").shape == (2, 3)


def test_a_missing_position_is_refused_by_model_type_and_position(monkeypatch):
    # a BERT whose attention output was renamed: the FFN half alone would be a different method
    monkeypatch.setitem(inject.TARGETS, "bert", {**inject.TARGETS["bert"], "attn": r"encoder\.layer\.\d+\.nope"})
    with pytest.raises(ConfigError, match=r"houlsby needs its 'attn' position in every layer.*'bert' has 0"):
        AdaptedModel(_encoder(BertConfig), AdapterConfig(kind="houlsby"))
    AdaptedModel(_encoder(BertConfig), AdapterConfig(kind="pfeiffer"))  # pfeiffer only needs the FFN


def test_albert_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="'albert' is not supported: ALBERT shares one layer"):
        AdaptedModel(_encoder(AlbertConfig), AdapterConfig(kind="houlsby"))
