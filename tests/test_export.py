"""`cl-sim export`: a trained adapter and head leave the store as safetensors (read back: same
tensors, same score) or in AdapterHub's layout (loaded with `adapters` where it is installed)."""
from pathlib import Path

import pytest
import torch
import yaml

from cl_sim.cli import main

SYN = dict(n_train=32, n_dev=16, n_test=16, n_signal_words=12, n_filler_words=12)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny ST-A run on two tasks (first-token pooling, so the head also fits AdapterHub's)."""
    tmp = tmp_path_factory.mktemp("export")
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump({
        "backbone": {"name": "tiny-bert", "max_length": 32, "pooling": "cls"},
        "tasks": [{"name": "a", "family": "a", **SYN}, {"name": "b", "family": "b", **SYN}],
        "training": {"epochs": 2, "batch_size": 16, "threads": 1, "lr": 0.01},
        "output": {"dir": str(tmp / "out")}, "execution": {"store_dir": str(tmp / "store"), "executor": "local"}}))
    assert main(["--quiet", "run", str(config), "output.name=r"]) == 0
    return tmp, config


def _score(tmp: Path, config: Path, key: str):
    from cl_sim.config import load_config
    from cl_sim.methods import Deployed
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks
    from cl_sim.train import evaluate_deployed

    task = load_tasks(load_config(config))["a"]
    return task, evaluate_deployed(Deployed(head=key, adapter=key), task, Store(tmp / "store"))[0]


def test_safetensors_round_trip_same_tensors_same_score(trained, capsys):
    from safetensors import safe_open

    from cl_sim.export import load_safetensors
    from cl_sim.store import Store
    from cl_sim.train import evaluate_model

    tmp, config = trained
    out = tmp / "st"
    capsys.readouterr()
    assert main(["export", "a", "--format", "safetensors", str(out), str(config)]) == 0  # TASK -> its adapter
    printed = capsys.readouterr().out
    store = Store(tmp / "store")
    [key] = [k for k in store.keys() if store.meta(k)["phase"]["task"] == "a" and k.startswith("adapter-")]
    assert key in printed
    states = store.states(key)
    with safe_open(str(out / "adapter.safetensors"), "pt") as f:
        meta = f.metadata()
        for group in ("adapter", "head"):
            for name, tensor in states[group].items():
                assert torch.equal(f.get_tensor(f"{group}/{name}"), tensor)
    assert meta["task"] == "a" and meta["backbone"] == "tiny-bert" and meta["adapter_kind"] == "pfeiffer"
    assert meta["reduction_factor"] == "16" and meta["bottleneck"] == "2" and meta["store_key"] == key
    assert yaml.safe_load(meta["labels"]) == ["0", "1"] or len(yaml.safe_load(meta["labels"])) == 2
    model, tokenizer, side = load_safetensors(out)
    assert side["task_kind"] == "classification" and side["pooling"] == "cls"
    task, expected = _score(tmp, config, key)
    got, _ = evaluate_model(model, task, task.eval_split, tokenizer, side["max_length"], "head")
    assert got == expected


def test_export_names_the_candidates_when_the_name_is_unknown(trained, capsys):
    tmp, _ = trained
    assert main(["export", "c", "--format", "safetensors", str(tmp / "x"), "--store", str(tmp / "store")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tasks with adapters: a, b" in err[0]
    assert main(["export", "a", "--format", "onnx", str(tmp / "x"), "--store", str(tmp / "store")]) == 2
    assert "not one of safetensors, adapterhub" in capsys.readouterr().err
    assert not (tmp / "x").exists()


def test_adapterhub_layout_names(trained):
    """Without `adapters` installed: the files and parameter names AdapterHub's loader reads."""
    from safetensors.torch import load_file

    tmp, config = trained
    out = tmp / "ah"
    assert main(["export", "b", "--format", "adapterhub", str(out), str(config)]) == 0
    cfg = yaml.safe_load((out / "adapter_config.json").read_text())
    assert cfg["name"] == "b" and cfg["model_type"] == "bert"
    assert "architecture" in cfg["config"] and cfg["config"]["architecture"] is None  # None: a bottleneck (BnConfig)
    assert cfg["config"]["output_adapter"] and not cfg["config"]["mh_adapter"]  # pfeiffer: after the FFN only
    weights = load_file(out / "adapter.safetensors")
    assert "encoder.layer.1.output.adapters.b.adapter_down.0.weight" in weights
    assert set(torch.load(out / "pytorch_adapter.bin")) == set(weights)
    head = yaml.safe_load((out / "head_config.json").read_text())
    assert head["config"]["layers"] == 1 and head["model_class"] == "BertAdapterModel"
    assert set(load_file(out / "model_head.safetensors")) == {"heads.b.1.weight", "heads.b.1.bias"}


def test_adapterhub_export_loads_in_adapters_and_computes_the_same(trained):
    import importlib.metadata

    try:  # the distribution, not tests/adapters/ (a namespace package by that name on the test path)
        importlib.metadata.version("adapters")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("AdapterHub's `adapters` is not installed")
    adapters = pytest.importorskip("adapters")
    from cl_sim.backbone import cached_backbone
    from cl_sim.export import load_safetensors

    tmp, config = trained
    out, ours = tmp / "ah2", tmp / "st2"
    assert main(["export", "a", "--format", "adapterhub", str(out), str(config)]) == 0
    assert main(["export", "a", "--format", "safetensors", str(ours), str(config)]) == 0
    backbone, _ = cached_backbone("tiny-bert")
    model = adapters.BertAdapterModel(backbone.config)
    model.bert.load_state_dict(backbone.state_dict(), strict=False)
    name = model.load_adapter(str(out))
    model.set_active_adapters(name)
    model.active_head = name
    model.eval()
    mine, tokenizer, _ = load_safetensors(ours)
    batch = tokenizer(["red apple pie", "an old stone wall"], padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = model(**batch).logits
        expected = mine({k: v for k, v in batch.items()}, "head")
    torch.testing.assert_close(theirs, expected, rtol=1e-4, atol=1e-5)


def test_a_task_resolves_to_its_newest_deployed_adapter_and_ambiguity_lists_the_keys(tmp_path):
    import os

    from cl_sim.errors import ConfigError
    from cl_sim.export import resolve_entry
    from cl_sim.store import Store

    store = Store(tmp_path / "s")
    states = {"adapter": {"x.down.weight": torch.zeros(2, 4)}, "head": {"proj.weight": torch.zeros(2, 4)}}

    def put(key, when, **phase):
        p = {"kind": "adapter", "task": "a", "backbone": "tiny-bert", "data_hash": "d", "seed": 0, "lr": 0.01,
             "adapter": {"kind": "pfeiffer", "reduction_factor": 16}, "fraction": 1.0, "init": None, **phase}
        store.put(key, states, {"phase": p})
        os.utime(tmp_path / "s" / "manifest" / f"{key}.json", (when, when))

    put("adapter-old", 100)
    put("adapter-new", 200)
    put("distill-low", 300, kind="distill", fraction=0.1)  # a low-shot step, not deployed
    put("distill-init", 400, kind="distill")  # I2I's Initialize: the final adapter starts from it
    put("adapter-final", 150, init="distill-init")
    assert resolve_entry(store, "adapter-old")[0] == "adapter-old"  # a key is taken as given
    assert resolve_entry(store, "a")[0] == "adapter-new"
    put("adapter-other", 500, backbone="tiny-roberta")
    with pytest.raises(ConfigError, match="trained on 2 backbones or datasets") as err:
        resolve_entry(store, "a")
    assert "adapter-other" in str(err.value) and "adapter-new" in str(err.value) and "\n" not in str(err.value)
