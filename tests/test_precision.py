"""`training.precision=bf16`: phases train under bf16 autocast, and a deployment is scored in the
precision its head was trained in (its dev pass and its eval-split score)."""
import pytest
import torch

import cl_sim.train as train
from cl_sim.config import load_config
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.methods.base import Deployed, MethodContext
from cl_sim.store import Store


def _phase(precision):
    cfg = load_config(None, ["backbone.name=tiny-bert", "adapter.kind=pfeiffer", "training.epochs=1",
                             "training.batch_size=16", "backbone.max_length=32", f"training.precision={precision}"])
    task = make_synthetic_task("t", "a", n_train=48, n_dev=40, n_test=24, seed=5)
    return MethodContext(cfg, task, run=lambda p: p.key()).phase("adapter"), task


@pytest.fixture
def autocast_seen(monkeypatch):
    """Whether CPU autocast (bf16) was on for each `predict` call."""
    seen = []
    predict = train.predict

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return predict(*args, **kwargs)

    monkeypatch.setattr(train, "predict", spy)
    return seen


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_dev_pass_and_deployed_score_use_the_phases_precision(tmp_path, autocast_seen, precision):
    phase, task = _phase(precision)
    out = train.run_phase(phase, task, Store(tmp_path))
    store = Store(tmp_path)
    store.put("p", out.states, {"phase": phase.to_dict(), "metrics": out.metrics})
    score, _ = train.evaluate_deployed(Deployed(head="p", adapter="p"), task, store)
    assert 0.0 <= score <= 1.0 and out.metrics["dev_score"] is not None
    assert autocast_seen == [precision == "bf16"] * 2  # the dev pass, then the eval split
    assert not torch.is_autocast_enabled("cpu")  # and off again afterwards


def test_precision_is_part_of_the_key_so_scores_never_mix():
    assert _phase("fp32")[0].key() != _phase("bf16")[0].key()


def test_a_store_entry_without_a_recorded_precision_is_scored_in_fp32(tmp_path, autocast_seen):
    phase, task = _phase("fp32")
    out = train.run_phase(phase, task, Store(tmp_path))
    meta = phase.to_dict()
    del meta["precision"]  # written before phases recorded it
    store = Store(tmp_path)
    store.put("old", out.states, {"phase": meta, "metrics": out.metrics})
    train.evaluate_deployed(Deployed(head="old", adapter="old"), task, store)
    assert autocast_seen[-1] is False
