"""Evaluation batches rows shortest first (`length_order`) and restores the split's order: every
row's prediction equals the one a data-order pass gives, whatever the other rows' lengths."""
import numpy as np
import pytest
import torch

from cl_sim.config import AdapterConfig
from cl_sim.data.tokenize import EncodedSplit, iterate, length_order
from cl_sim.model import AdaptedModel
from cl_sim.phases import fresh_backbone
from cl_sim.train import predict


def _split(kind: str, n: int = 37, seed: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)

    def row():
        return [101] + rng.integers(1000, 2000, rng.integers(1, 30)).tolist() + [102]

    ids = [[row() for _ in range(3)] if kind == "multiple_choice" else row() for _ in range(n)]
    labels = rng.normal(size=n).astype(np.float32) if kind == "regression" else rng.integers(0, 3, n)
    return EncodedSplit(kind, ids, None, labels)


def _model(kind: str) -> AdaptedModel:
    backbone, _ = fresh_backbone("tiny-bert")
    model = AdaptedModel(backbone, AdapterConfig(kind="houlsby"), "mean")
    model.add_head("head", kind, 1 if kind == "regression" else 3)
    model.add_adapter("a")
    model.set_active("a")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


@torch.no_grad()
def _data_order_outputs(model, data, batch_size):
    return torch.cat([model(b, "head").float() for b in iterate(data, batch_size, pad_id=0)])


def test_length_order_sorts_by_tokens_stably():
    data = EncodedSplit("classification", [[1, 2, 3], [1], [1, 2], [4], [1, 2, 3]], None, np.zeros(5))
    assert length_order(data).tolist() == [1, 3, 2, 0, 4]
    multi = EncodedSplit("multiple_choice", [[[1, 2, 3], [1]], [[1], [1, 2]]], None, np.zeros(2))
    assert length_order(multi).tolist() == [1, 0]  # a row counts its longest pair


@pytest.mark.parametrize("kind", ["classification", "regression", "multiple_choice"])
def test_predictions_do_not_depend_on_batch_order(kind):
    data, model = _split(kind), _model(kind)
    reference = _data_order_outputs(model, data, batch_size=8)
    pred = predict(model, data, kind, "head", pad_id=0, batch_size=8)
    assert pred.shape[0] == len(data)
    if kind == "regression":
        np.testing.assert_allclose(pred.reshape(-1), reference.reshape(-1).numpy(), atol=1e-5)
    else:
        top2 = reference.topk(2, dim=-1).values
        clear = (top2[:, 0] - top2[:, 1]) > 1e-4  # rows whose argmax float noise cannot flip
        assert clear.sum() > len(data) // 2
        np.testing.assert_array_equal(pred[clear.numpy()], reference.argmax(-1)[clear].numpy())
