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


class Runs(dict):
    """method -> (record, executor) of the related stream, each run when a test first asks for it
    (a test's time limit then covers its own method's run and matched controls, not all four)."""

    def __init__(self, store):
        super().__init__()
        self.store = store

    def __missing__(self, method):
        self[method] = run(method, self.store)
        return self[method]


@pytest.fixture(scope="module")
def transfer_runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("store"))  # one store: the methods share the ST-A references


# What these can and cannot show. The teacher methods spend more training on `small` than ST-A
# (fusion 40 optimizer steps, I2I and AdapterDistillation 140, against ST-A's 20), so "beats ST-A"
# passes on extra training alone. The control that separates them is the work-matched ST-A
# (`ref_work_score`, `cl_sim.sim.references`: ST-A on the task alone for as many example-passes through
# the backbone as the method's phases made, a fusion pass over k adapters and the distillation
# teacher's forward counted at their cost: 48 epochs for fusion, 145-149 for I2I and AD). Seeds 0-2,
# method - work-matched ST-A in points on `small` (200 test rows: 1 point = 2 rows; mean +- 95% t):
#   related:   fusion +1.5/-0.5/+0.5 (+0.50 +- 2.48), i2i +1.0/-3.5/-0.5 (-1.00 +- 5.69),
#              AD +3.0/+4.5/+1.5 (+3.00 +- 3.73)
#   unrelated: fusion 0.0/+1.5/+2.0 (+1.17 +- 2.59), i2i +4.0/+1.0/-7.0 (-0.67 +- 14.13),
#              AD +4.5/+5.5/+4.0 (+4.67 +- 1.90)
# (step-matched: the same on the related stream but fusion +1.5/+0.5/+1.5; unrelated fusion
# +2.0/+2.0/+4.0, i2i +2.5/+1.5/-7.0, AD +2.5/+6.0/+3.0). No rule-specific transfer is shown: AD's
# one interval above 0 is on the unrelated stream. One seed cannot show transfer, so the tests assert
# what one seed can: each method and its control learn the task (well above chance), the method
# beats plain ST-A on the related stream, and it is within WITHIN of the work-matched control on
# either stream - a bound the seeds above show failing (i2i, unrelated, seed 2: -7.0).
CHANCE_MARGIN = 0.10  # at least 10 points above a 2-class random guesser
WITHIN = 0.03  # at most 3 points below the work-matched control


@pytest.mark.parametrize("method", ["fusion", "i2i", "adapter_distillation"])
def test_transfer_methods_beat_plain_st_a_and_hold_against_work_matched_st_a_on_small_related_task(
        transfer_runs, method):
    rec, _ = transfer_runs[method]
    base, _ = transfer_runs["st_a"]
    last = rec.tasks[-1]
    assert rec.R[-1, -1] > last["random_score"] + CHANCE_MARGIN
    assert last["ref_work_score"] > last["random_score"] + CHANCE_MARGIN  # the control learned the task too
    assert rec.R[-1, -1] > base.R[-1, -1] and last["kt"] > 0  # vs plain ST-A: extra training may explain it
    assert last["train_steps"] > base.tasks[-1]["train_steps"]  # ... which is why the matched controls exist
    assert rec.R[-1, -1] >= last["ref_work_score"] - WITHIN


@pytest.fixture(scope="module")
def unrelated_store(tmp_path_factory):
    return tmp_path_factory.mktemp("unrelated")  # one store: the three methods share the ST-A references


@pytest.mark.parametrize("method", ["fusion", "i2i", "adapter_distillation"])
def test_transfer_methods_lose_at_most_a_few_points_to_work_matched_st_a_on_unrelated_tasks(unrelated_store, method):
    unrelated = ROOT / "experiments" / "configs" / "unrelated_tiny.yaml"
    rec, _ = run(method, unrelated_store, config=unrelated)
    last = rec.tasks[-1]
    assert rec.R[-1, -1] > last["random_score"] + CHANCE_MARGIN
    assert last["ref_work_score"] > last["random_score"] + CHANCE_MARGIN
    # not plain ST-A: it trains a fifth of the work and scores 16-28 points lower, so the bound could never fail
    assert rec.R[-1, -1] >= last["ref_work_score"] - WITHIN


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
