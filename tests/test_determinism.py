"""Same config + seed twice -> byte-identical results files (SPEC §7), through the real CLI."""
import json
from pathlib import Path

import pytest
import yaml

from cl_sim.cli import main
from cl_sim.config import load_config

SYN = dict(n_train=48, n_dev=16, n_test=16, n_signal_words=12, n_filler_words=12)
IDENTICAL = ("matrix.parquet", "tasks.parquet", "summary.json")


def _run(tmp_path: Path, config: Path, name: str, overrides: list[str]) -> Path:
    args = [str(config), *overrides, f"output.dir={tmp_path / name / 'out'}",
            f"execution.store_dir={tmp_path / name / 'store'}", "output.name=run"]
    assert main(["run", *args]) == 0
    out = tmp_path / name / "out" / "run"
    # the resolved config beside the results: `auto` ran in-process (no cluster), and it says so
    assert load_config(out / "config.yaml") == load_config(args[0], [*args[1:], "execution.executor=local"])
    return out


# sequential_ft trains the backbone in train mode (dropout) and its KT reference trains st_a adapters
@pytest.mark.parametrize("method", ["sequential_ft"])
def test_same_config_and_seed_give_identical_files(tmp_path, method):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "backbone": {"name": "tiny-bert", "max_length": 32},
        "adapter": {"kind": "houlsby"},
        "tasks": [{"name": "a", "family": "a", **SYN}, {"name": "b", "family": "b", **SYN}],
        "training": {"epochs": 2, "batch_size": 16, "seed": 3, "threads": 1, "lr": 1e-2, "finetune_lr": 1e-3},
    }))
    first = _run(tmp_path, config, "first", [f"method.name={method}"])
    second = _run(tmp_path, config, "second", [f"method.name={method}"])
    for name in IDENTICAL:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    summary = json.loads((first / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["ordering"] == ["a", "b"]
    assert summary["R"][1][0] is not None  # a real 2x2 matrix, not an empty file compared with itself


# ---- one test per method family on a backbone whose batches run in length groups ----
# The tiny test BERT (hidden 32) never splits a batch (`model.group_overhead`: a call's overhead is
# worth thousands of its tokens), so the grouped path would run in no end-to-end test. This backbone
# has MiniLM's width (hidden 384: the calibration point, 32 tokens of overhead), one layer and a
# word-level vocabulary of the synthetic tasks' words (small embeddings: full fine-tuning stays
# cheap): batches of 9-19 tokens split into groups, and the test asserts that they did.
FAMILIES = {"st_a": "adapter", "fusion": "fusion", "i2i": "distillation (I2I)", "finetune": "full fine-tuning"}


@pytest.fixture(scope="module")
def grouped_backbone(tmp_path_factory) -> str:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from cl_sim.data.synthetic import FILLER_WORDS, SIGNAL_WORDS

    path = tmp_path_factory.mktemp("wide_tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(SIGNAL_WORDS + FILLER_WORDS)]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=384, num_hidden_layers=1,
                                     num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                                     initializer_range=0.02))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def _grouped_run(backbone: str, store_dir: Path, method: str):
    from cl_sim.config import ordering
    from cl_sim.execution.local import LocalExecutor
    from cl_sim.simulate import run_stream
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks

    syn = dict(n_train=64, n_dev=16, n_test=32, n_signal_words=6, n_filler_words=12)
    cfg = load_config(None, [f"backbone.name={backbone}", "backbone.max_length=32", f"method.name={method}",
                             "training.epochs=4", "training.batch_size=16", "training.threads=1", "training.seed=5",
                             "training.lr=0.03", "method.distill.min_steps=4",
                             "tasks=[{name: a, family: b, %s}, {name: b, family: a, %s}]"
                             % ((", ".join(f"{k}: {v}" for k, v in syn.items()),) * 2)])
    tasks = load_tasks(cfg)
    ex = LocalExecutor(Store(store_dir), tasks, threads=1)
    return run_stream(cfg, tasks, ex, ordering(cfg), log=lambda m: None), ex.store


@pytest.mark.parametrize("method", list(FAMILIES))
def test_each_method_family_is_deterministic_with_length_groups_on(tmp_path, monkeypatch, grouped_backbone, method):
    import numpy as np
    import pandas as pd
    import torch

    from cl_sim import model as model_mod

    splits = []
    real = model_mod.length_groups

    def spy(lengths, overhead):
        groups = real(lengths, overhead)
        splits.append(len(groups))
        return groups

    monkeypatch.setattr(model_mod, "length_groups", spy)
    first, store1 = _grouped_run(grouped_backbone, tmp_path / "one", method)
    assert max(splits) > 1, "no batch ran in length groups: the grouped path is not under test"
    second, store2 = _grouped_run(grouped_backbone, tmp_path / "two", method)
    assert np.isfinite(first.R[-1]).all()
    np.testing.assert_array_equal(first.R, second.R)  # same seed -> the same scores, bit for bit
    assert first.R[-1, -1] > 0.6  # it learned something: identical constant guesses would show nothing
    pd.testing.assert_frame_equal(pd.DataFrame(first.tasks), pd.DataFrame(second.tasks))  # KT, controls, costs
    keys = store1.keys()
    assert sorted(keys) == sorted(store2.keys()) and {r["key"] for r in first.phases} <= set(keys)
    for key in keys:  # every phase the run trained (references included): identical tensors
        a, b = store1.states(key), store2.states(key)
        assert a.keys() == b.keys()
        for group in a:
            assert a[group].keys() == b[group].keys()
            for name in a[group]:
                assert torch.equal(a[group][name], b[group][name]), (key, group, name)
