"""Methods on the tiny model: transfer direction, reductions, costs, fusion maths, reload."""
from pathlib import Path

import numpy as np
import pytest
import torch

import cl_sim.train as train_module
from cl_sim.adapters.fusion import Fusion
from cl_sim.config import AdapterConfig, load_config, ordering
from cl_sim.data.tokenize import iterate
from cl_sim.execution.local import LocalExecutor
from cl_sim.methods import Deployed
from cl_sim.model import AdaptedModel
from cl_sim.kinds.fusion import add_fused
from cl_sim.phases import Phase, encoded, fresh_backbone
from cl_sim.simulate import run_stream
from cl_sim.store import Store
from cl_sim.tasks import load_tasks
from cl_sim.train import evaluate_deployed

ROOT = Path(__file__).resolve().parents[2]
TRANSFER = ROOT / "experiments" / "configs" / "transfer_tiny.yaml"


def run(method, store_dir, *overrides, config=TRANSFER):
    cfg = load_config(config, [f"method.name={method}", *overrides])
    tasks = load_tasks(cfg)
    ex = LocalExecutor(Store(store_dir), tasks)
    return run_stream(cfg, tasks, ex, ordering(cfg), log=lambda m: None), ex


@pytest.fixture(scope="module")
def transfer_runs(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    return {m: run(m, store) for m in ("st_a", "fusion", "i2i", "adapter_distillation")}


# What these can and cannot show. The teacher methods spend more optimizer steps on `small` than ST-A
# (I2I and AdapterDistillation 140 against 20 here), so "beats ST-A" passes on extra steps alone. The
# control that separates them is the step-matched ST-A (`ref_matched_score`: ST-A on the task alone for
# at least as many optimizer steps; it matches steps, not work: a fusion or distillation step costs
# more). On this tiny stream it closes most of the gap: seeds 0-2, method - step-matched ST-A in points
# on `small`: related fusion +1.5/+0.5/+1.5, i2i +1.0/-3.5/-0.5, AD +3.0/+4.5/+1.5; unrelated fusion
# +2.0/+2.0/+4.0, i2i +2.5/+1.5/-7.0, AD +2.5/+6.0/+3.0 (200 test rows: 1 point = 2 rows). One seed
# cannot show transfer beyond extra steps, so the tests assert what one seed can: each method learns
# the task (well above chance), beats plain ST-A on the related stream, and stays within 3 points of
# the step-matched control on either stream (a bound that fails, e.g. i2i on unrelated seed 2).
CHANCE_MARGIN = 0.10  # at least 10 points above a 2-class random guesser


@pytest.mark.parametrize("method", ["fusion", "i2i", "adapter_distillation"])
def test_transfer_methods_beat_plain_st_a_and_hold_against_step_matched_st_a_on_small_related_task(
        transfer_runs, method):
    rec, _ = transfer_runs[method]
    base, _ = transfer_runs["st_a"]
    last = rec.tasks[-1]
    assert rec.R[-1, -1] > last["random_score"] + CHANCE_MARGIN
    assert rec.R[-1, -1] > base.R[-1, -1] and last["kt"] > 0  # vs plain ST-A: extra steps may explain it
    assert last["train_steps"] > base.tasks[-1]["train_steps"]  # ... which is why the matched control exists
    assert rec.R[-1, -1] >= last["ref_matched_score"] - 0.03


@pytest.fixture(scope="module")
def unrelated_store(tmp_path_factory):
    return tmp_path_factory.mktemp("unrelated")  # one store: the three methods share the ST-A references


@pytest.mark.parametrize("method", ["fusion", "i2i", "adapter_distillation"])
def test_transfer_methods_lose_at_most_a_few_points_to_step_matched_st_a_on_unrelated_tasks(unrelated_store, method):
    unrelated = ROOT / "experiments" / "configs" / "unrelated_tiny.yaml"
    rec, _ = run(method, unrelated_store, config=unrelated)
    last = rec.tasks[-1]
    assert rec.R[-1, -1] > last["random_score"] + CHANCE_MARGIN
    assert rec.R[-1, -1] >= last["ref_matched_score"] - 0.03  # not plain ST-A: 120 fewer steps, 16-28 points lower


def test_inference_params_equal_st_a_for_distilled_methods_and_grow_for_fusion(transfer_runs):
    st_a = [r["inference_params"] for r in transfer_runs["st_a"][0].tasks]
    for m in ("i2i", "adapter_distillation"):
        assert [r["inference_params"] for r in transfer_runs[m][0].tasks] == st_a
    fusion = [r["inference_params"] for r in transfer_runs["fusion"][0].tasks]
    assert fusion[0] == st_a[0] < fusion[1] < fusion[2]  # the first task has no teachers: it is ST-A


def test_fusion_attention_is_recorded_and_sums_to_one(transfer_runs):
    rows = transfer_runs["fusion"][0].attention
    last = [r for r in rows if r["task"] == "small"]
    assert {r["teacher"] for r in last} == {"rel_a", "rel_b", "small"}
    for layer in {r["layer"] for r in last}:
        assert sum(r["weight"] for r in last if r["layer"] == layer) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("adapter,method", [("houlsby", "fusion"), ("houlsby", "i2i"),
                                            ("houlsby", "adapter_distillation"), ("adalink", "fusion")])
def test_teacher_methods_run_with_other_adapter_kinds(tmp_path, adapter, method):
    quick = ("training.epochs=2", "method.distill.min_steps=4", f"adapter.kind={adapter}")
    rec, ex = run(method, tmp_path, *quick)
    base, _ = run("st_a", tmp_path, *quick)
    assert np.isfinite(np.diag(rec.R)).all() and (np.diag(rec.R) > 0.3).all()
    assert rec.tasks[-1]["teachers"] == "rel_a,rel_b"
    kinds = {ex.store.meta(k)["phase"]["kind"] for k in rec.tasks[-1]["phase_keys"].split(",")}
    assert kinds == ({"adapter", "fusion"} if method == "fusion" else {"adapter", "fusion", "distill"})
    grows = rec.tasks[-1]["inference_params"] > base.tasks[-1]["inference_params"]
    assert grows == (method == "fusion")


@pytest.mark.parametrize("method", ["i2i", "adapter_distillation"])
def test_teacher_count_zero_reduces_to_st_a(tmp_path, method):
    base, _ = run("st_a", tmp_path / "a", "training.epochs=2")
    rec, ex = run(method, tmp_path / "b", "training.epochs=2", "method.teacher_count=0")
    np.testing.assert_array_equal(rec.R, base.R)
    assert [r["phase_keys"] for r in rec.tasks] == [r["phase_keys"] for r in base.tasks]
    assert all(r["teachers"] == "" for r in rec.tasks)


def test_fusion_with_identity_values_and_equal_attention_is_the_mean():
    f = Fusion(8, value_init_noise=0.0)
    torch.nn.init.zeros_(f.query.weight)  # zero query -> equal scores -> uniform attention
    outputs = torch.randn(3, 2, 5, 8)  # (N, B, T, H)
    fused, att = f(torch.randn(2, 5, 8), outputs)
    torch.testing.assert_close(fused, outputs.mean(0))
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 5))
    assert f.value_reg().item() == 0.0


@pytest.mark.parametrize("adapter", ["pfeiffer", "houlsby"])  # houlsby: fusion after the FFN only, by default
def test_reloaded_fusion_predicts_exactly_as_the_trained_model(tmp_path, monkeypatch, adapter):
    rec, ex = run("fusion", tmp_path, "training.epochs=2", f"adapter.kind={adapter}")
    key = rec.tasks[-1]["phase_keys"].split(",")[-1]
    phase, task = Phase.from_dict(ex.store.meta(key)["phase"]), ex.tasks["small"]
    trained = {}  # the model as training left it, before anything went through the store
    keep = train_module.build_model
    monkeypatch.setattr(train_module, "build_model", lambda *a: (built := keep(*a), trained.setdefault("model", built[0]))[0])
    out = train_module.run_phase(phase, task, ex.store)  # the same phase again: same seed, same weights

    fresh = Store(ex.store.root)  # no in-memory cache: states come back from the safetensors files
    stored = fresh.states(key)
    for group in ("fusion", "head"):
        assert stored[group].keys() == out.states[group].keys()
        assert all(torch.equal(stored[group][k], out.states[group][k]) for k in stored[group])
    reloaded = AdaptedModel(fresh_backbone(phase.backbone)[0], AdapterConfig(**phase.adapter), phase.pooling)
    reloaded.add_head("head", task.kind, task.num_labels)
    reloaded.set_active(add_fused(reloaded, key, fresh, "head"))
    tokenizer = fresh_backbone(phase.backbone)[1]
    data = encoded(task, "test", tokenizer, phase.max_length)
    batch = next(iter(iterate(data, len(data), shuffle=False, seed=0, pad_id=tokenizer.pad_token_id)))
    with torch.no_grad():
        want, got = trained["model"].eval()(batch, "head"), reloaded.eval()(batch, "head")
    assert torch.equal(got, want)
    assert evaluate_deployed(Deployed(head=key, fusion=key), task, fresh)[0] == rec.R[-1, -1]


def test_eval_batch_size_is_what_prediction_uses(tmp_path, monkeypatch):
    import cl_sim.train as train

    sizes = set()
    real = train.predict
    monkeypatch.setattr(train, "predict", lambda *a, **kw: sizes.add(a[6] if len(a) > 6 else kw.get("batch_size"))
                        or real(*a, **kw))
    cfg = load_config(TRANSFER, ["method.name=st_a", "training.epochs=1", "training.eval_batch_size=7"])
    tasks = load_tasks(cfg)
    ex = LocalExecutor(Store(tmp_path), tasks, eval_batch_size=cfg.training.eval_batch_size)
    run_stream(cfg, tasks, ex, ordering(cfg)[:1], log=lambda m: None)
    assert sizes == {7}
