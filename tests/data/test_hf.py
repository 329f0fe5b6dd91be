"""Hugging Face datasets, offline: a tiny DatasetDict saved with save_to_disk."""
import numpy as np
import pytest

from cl_sim.data.hf import load_hf_task
from cl_sim.errors import DataError

datasets = pytest.importorskip("datasets")


def _save(tmp_path, splits: dict, features=None) -> str:
    dd = datasets.DatasetDict(
        {name: datasets.Dataset.from_dict(cols, features=features) for name, cols in splits.items()}
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    return str(tmp_path / "ds")


@pytest.fixture
def pair_ds(tmp_path):
    features = datasets.Features({
        "sentence1": datasets.Value("string"),
        "sentence2": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
    })
    return _save(tmp_path, {
        "train": {"sentence1": ["a", "b", "c"], "sentence2": ["x", "y", "z"], "label": [1, 0, 1]},
        "validation": {"sentence1": ["d"], "sentence2": ["w"], "label": [0]},
        "test": {"sentence1": ["e"], "sentence2": ["v"], "label": [-1]},
    }, features)


def test_load_from_disk_with_class_label_names(pair_ds):
    task = load_hf_task("rte", pair_ds, text_columns=["sentence1", "sentence2"], tenant="t1")
    assert task.labels == ("entailment", "not_entailment")  # ClassLabel order, not sorted
    assert task.splits["train"].texts == (("a", "x"), ("b", "y"), ("c", "z"))
    assert task.splits["train"].labels.tolist() == [1, 0, 1]
    assert task.splits["dev"].labels.tolist() == [0]
    assert set(task.splits) == {"train", "dev"} and task.tenant == "t1"


def test_unlabelled_test_split_is_rejected(pair_ds):
    with pytest.raises(DataError, match=r"label '-1' is not a class id"):
        load_hf_task("rte", pair_ds, text_columns=["sentence1", "sentence2"],
                     splits={"train": "train", "dev": "validation", "test": "test"})


def test_plain_labels_regression_and_split_mapping(tmp_path):
    path = _save(tmp_path, {
        "tr": {"text": ["a", "b"], "score": [1.5, 3.0], "y": ["pos", "neg"]},
        "va": {"text": ["c"], "score": [2.0], "y": ["neg"]},
    })
    splits = {"train": "tr", "dev": "va"}
    task = load_hf_task("s", path, text_columns=["text"], label_column="score", splits=splits,
                        label_type="regression", metric="spearman")
    assert task.splits["train"].labels.dtype == np.float32
    task = load_hf_task("s", path, text_columns=["text"], label_column="y", splits=splits)
    assert task.labels == ("neg", "pos") and task.splits["train"].labels.tolist() == [1, 0]


def test_errors(pair_ds, tmp_path):
    with pytest.raises(DataError, match=r"split 'validation_matched' not in dataset.*available"):
        load_hf_task("x", pair_ds, text_columns=["sentence1"],
                     splits={"train": "train", "dev": "validation_matched"})
    with pytest.raises(DataError, match=r"text column 'premise'.*available columns"):
        load_hf_task("x", pair_ds, text_columns=["premise"])
    with pytest.raises(DataError, match="train split is missing"):
        load_hf_task("x", pair_ds, text_columns=["sentence1"], splits={"dev": "validation"})
    with pytest.raises(DataError, match="text_columns is required"):
        load_hf_task("x", pair_ds)
    datasets.Dataset.from_dict({"t": ["a"]}).save_to_disk(str(tmp_path / "single"))
    with pytest.raises(DataError, match="single saved Dataset"):
        load_hf_task("x", str(tmp_path / "single"), text_columns=["t"])


def test_load_dataset_failure_becomes_data_error(monkeypatch):
    def fail(path, name=None):
        raise FileNotFoundError(f"Couldn't find a dataset script at {path}")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(DataError, match=r"task 'x': cannot load dataset 'glue' \(nope\)"):
        load_hf_task("x", "glue", "nope", text_columns=["sentence"])
