"""A phase scores a capped, stratified, seeded dev subset at its end (`training.dev_examples`)."""
import dataclasses

import pytest

import numpy as np
import torch

from cl_sim.config import load_config
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.methods.base import Deployed, MethodContext
from cl_sim.phases import dev_indices
from cl_sim.store import Store
from cl_sim.train import evaluate_deployed, run_phase

TASK = dict(n_train=64, n_dev=90, n_test=16, seed=3)


def _phase(*overrides, kind="adapter"):
    cfg = load_config(None, ["backbone.name=tiny-bert", "adapter.kind=pfeiffer", "training.epochs=1",
                             "training.batch_size=16", "backbone.max_length=32", *overrides])
    task = make_synthetic_task("t", "a", **TASK)
    return MethodContext(cfg, task, run=lambda p: p.key()).phase(kind), task


def test_dev_subset_is_stratified_seeded_and_shared_by_a_tasks_phases():
    phase, task = _phase("training.dev_examples=30")
    rows = dev_indices(phase, task)
    labels = task.splits["dev"].labels
    assert len(rows) == 30 and len(set(rows.tolist())) == 30 and np.all(np.diff(rows) > 0)
    share = np.bincount(labels[rows], minlength=labels.max() + 1) / 30
    assert np.abs(share - np.bincount(labels) / len(labels)).max() <= 1 / 30 + 1e-9  # stratified
    fusion, _ = _phase("training.dev_examples=30", kind="fusion")
    assert np.array_equal(dev_indices(fusion, task), rows)  # every phase of (task, seed): the same rows
    other, _ = _phase("training.dev_examples=30", "training.seed=1")
    assert not np.array_equal(dev_indices(other, task), rows)
    assert dev_indices(_phase("training.dev_examples=90")[0], task) is None  # cap >= split: all of it
    assert dev_indices(_phase("training.dev_examples=null")[0], task) is None


def test_the_cap_is_part_of_the_key():
    keys = {_phase(f"training.dev_examples={n}")[0].key() for n in ("null", "0", "30", "31")}
    assert len(keys) == 4


def test_phase_scores_exactly_its_dev_subset_and_trains_the_same(tmp_path):
    capped, task = _phase("training.dev_examples=30")
    whole, _ = _phase("training.dev_examples=null")
    store = Store(tmp_path)
    out = run_phase(capped, task, store)
    full = run_phase(whole, task, store)
    assert out.metrics["dev_examples"] == 30 and full.metrics["dev_examples"] == 90
    for part in out.states:  # the cap changes what is scored, never what is trained
        for name, t in out.states[part].items():
            assert torch.equal(t, full.states[part][name])
    store.put("p", out.states, {"phase": capped.to_dict(), "metrics": out.metrics})
    rows = dev_indices(capped, task)
    only_rows = dataclasses.replace(task, splits={**task.splits, "dev": task.splits["dev"].subset(rows)})
    rescored, _ = evaluate_deployed(Deployed(head="p", adapter="p"), only_rows, store, split="dev")
    assert rescored == out.metrics["dev_score"]


def test_zero_skips_the_dev_pass(tmp_path):
    phase, task = _phase("training.dev_examples=0")
    out = run_phase(phase, task, Store(tmp_path))
    assert out.metrics["dev_score"] is None and out.metrics["dev_examples"] == 0


@pytest.mark.parametrize("method", ["i2i", "adapter_distillation"])
def test_intermediate_phases_skip_their_dev_pass_when_asked(method):
    """`training.dev_intermediate=false`: Improvise/Initialize (I2I) and the fused teacher
    (AdapterDistillation) score no dev rows; the deployed phase still does, and the default
    changes no phase (the same keys)."""
    from cl_sim.simulate import Prior, arrive

    def phases_of(*overrides):
        cfg = load_config(None, ["backbone.name=tiny-bert", f"method.name={method}", *overrides])
        task = make_synthetic_task("t", "a", **TASK)
        seen = []

        class Ex:  # records every phase the method asks for; trains nothing
            def run(self, phase):
                seen.append(phase)
                return phase.key()

        teacher = Prior("u", "adapter-teacher", Deployed(head="adapter-teacher", adapter="adapter-teacher"))
        arrive(cfg, method, task, [teacher], [teacher], Ex())
        return seen

    default, skipped = phases_of(), phases_of("training.dev_intermediate=false")
    assert [p.dev_examples for p in default] == [500] * len(default)
    final = {"i2i": 2, "adapter_distillation": 2}[method]  # the deployed phase is the last one
    assert skipped[final].dev_examples == 500 and skipped[final].kind == default[final].kind
    intermediate = [p for i, p in enumerate(skipped) if i != final and p.kind != "adapter"]
    assert intermediate and all(p.dev_examples == 0 for p in intermediate)
