"""The frozen teacher's outputs cached once per example (issue 12.3): the cache returns what the
teacher computes on each batch, a distill phase trained from it matches one that reruns the
teacher, and a phase past the memory bound recomputes instead."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from cl_sim.config import load_config, ordering
from cl_sim.data.tokenize import iterate
from cl_sim.execution.local import LocalExecutor
from cl_sim.kinds.distill import teacher_outputs
from cl_sim.kinds.fusion import FUSION
from cl_sim.model import Fuse
from cl_sim.phases import Phase, build_model, encoded, train_indices
from cl_sim.simulate import run_stream
from cl_sim.store import Store
from cl_sim.tasks import load_tasks
from cl_sim.teacher_cache import TeacherCache, teacher_cache
from cl_sim.train import run_phase

ROOT = Path(__file__).resolve().parents[1]
TRANSFER = ROOT / "experiments" / "configs" / "transfer_tiny.yaml"


def i2i_run(store_dir, *overrides):
    cfg = load_config(TRANSFER, ["method.name=i2i", *overrides])
    tasks = load_tasks(cfg)
    ex = LocalExecutor(Store(store_dir), tasks, threads=1)
    return run_stream(cfg, tasks, ex, ordering(cfg), log=lambda m: None), ex, tasks


def with_distill(phase: Phase, **changes) -> Phase:
    """`phase` with some of its `method.distill` settings changed."""
    spec = phase.spec
    return dataclasses.replace(phase, spec=dataclasses.replace(spec, distill=dataclasses.replace(spec.distill, **changes)))


def teacher(phase: Phase, store) -> Fuse:
    """The fused teacher a distill phase's model holds: adapters t0, t1, ... under the fusion layer."""
    fused = Phase.from_dict(store.meta(phase.spec.teacher_fusion)["phase"])
    return Fuse(tuple(f"t{i}" for i in range(len(fused.spec.teachers))), FUSION)


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """An i2i stream (cache on, the default): its last distill phase and everything it needs."""
    rec, ex, tasks = i2i_run(tmp_path_factory.mktemp("store"))
    row = [r for r in rec.phases if r["kind"] == "distill"][-1]
    phase = Phase.from_dict(ex.store.meta(row["key"])["phase"])
    return phase, tasks[phase.task], ex.store, rec


@pytest.mark.parametrize("target", ["both", "logits"])
def test_cache_returns_the_teachers_outputs_for_every_shuffled_batch(stream, target):
    phase, task, store, _ = stream
    model, tokenizer, _ = build_model(phase, task, store)
    model.eval()
    data = encoded(task, "train", tokenizer, phase.max_length, train_indices(phase, task))
    want_hidden = target != "logits"
    fused = teacher(phase, store)
    cache = TeacherCache.build(lambda b: teacher_outputs(model, fused, b), data, 5, tokenizer.pad_token_id, "cpu",
                               want_hidden)
    assert cache.logits.shape[0] == len(data)
    for batch in iterate(data, 4, shuffle=True, seed=3, pad_id=tokenizer.pad_token_id):
        logits, hidden = cache(batch)
        ref_logits, ref_hidden = teacher_outputs(model, fused, batch)
        torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-4)
        if not want_hidden:
            assert hidden == []
            continue
        mask = batch["attention_mask"].bool()
        assert len(hidden) == len(ref_hidden) == len(model.slots)
        for h, ref in zip(hidden, ref_hidden):
            assert h.shape == ref.shape
            torch.testing.assert_close(h[mask], ref[mask], atol=1e-5, rtol=1e-4)  # real tokens: equal
            assert (h[~mask] == 0).all()  # padding: zero (masked out of the loss)


def test_cached_distill_phase_matches_recomputing_the_teacher(stream):
    phase, task, store, rec = stream
    cached = run_phase(phase, task, store)
    assert cached.metrics["teacher_cached"] is True
    recomputed_phase = with_distill(phase, cache_teacher=False)
    recomputed = run_phase(recomputed_phase, task, store)
    assert recomputed.metrics["teacher_cached"] is False
    assert cached.metrics["steps"] == recomputed.metrics["steps"] > 0
    for group in ("adapter", "head"):
        for k, v in cached.states[group].items():
            torch.testing.assert_close(v, recomputed.states[group][k], atol=1e-4, rtol=1e-3)
    assert abs(cached.metrics["dev_score"] - recomputed.metrics["dev_score"]) <= 1 / len(task.splits["dev"].labels)
    # the stream's own entry was trained with the cache: the same phase run again is bit-identical
    stored = store.states(phase.key())
    for k, v in cached.states["adapter"].items():
        assert torch.equal(v, stored["adapter"][k])


def test_past_the_memory_bound_the_teacher_is_recomputed(stream, capsys):
    phase, task, store, _ = stream
    model, tokenizer, _ = build_model(phase, task, store)
    data = encoded(task, "train", tokenizer, phase.max_length)
    need = TeacherCache.estimate_mb(data, model.hidden, len(model.slots), True)
    assert need > 0
    tight = dataclasses.replace(phase.spec.distill, cache_max_mb=need / 2)
    fused = teacher(phase, store)
    assert teacher_cache(lambda b: teacher_outputs(model, fused, b), data, tight, model.hidden, len(model.slots), 8,
                         tokenizer.pad_token_id, "cpu") is None
    assert "the teacher runs on every step instead" in capsys.readouterr().err  # a progress line: stderr
    off = dataclasses.replace(phase.spec.distill, cache_teacher=False)
    assert teacher_cache(lambda b: teacher_outputs(model, fused, b), data, off, model.hidden, len(model.slots), 8,
                         tokenizer.pad_token_id, "cpu") is None


def test_cache_setting_is_part_of_the_distill_key(stream):
    phase = stream[0]
    other = with_distill(phase, cache_teacher=False)
    assert Phase.from_dict(other.to_dict()) == other
    assert other.key() != phase.key()


@pytest.mark.parametrize("kind", ["classification", "multiple_choice"])
def test_cache_built_in_length_order_returns_each_rows_outputs(kind):
    """The cache runs its rows in length order and stores them by row: every shuffled batch gets its
    own rows' logits and per-token outputs back (multiple choice: one row per (example, choice))."""
    from cl_sim.data.tokenize import EncodedSplit

    rng = np.random.default_rng(0)
    choices = 3 if kind == "multiple_choice" else 1

    def ids():
        return rng.integers(5, 99, rng.integers(2, 20)).tolist()

    rows = [[ids() for _ in range(choices)] if choices > 1 else ids() for _ in range(23)]
    data = EncodedSplit(kind, rows, None, np.zeros(23, dtype=np.int64))

    def teacher(batch):  # a pure function of each row's tokens
        x = batch["input_ids"].reshape(-1, batch["input_ids"].shape[-1]).float()
        hidden = torch.stack([x, x.cumsum(-1)], -1)  # (R, T, 2)
        logits = x.sum(-1).view(batch["input_ids"].shape[0], -1) if choices > 1 else torch.stack(
            [x.sum(-1), x.max(-1).values], -1)
        return logits, [hidden, 2 * hidden]

    cache = TeacherCache.build(teacher, data, 5, 0, "cpu", want_hidden=True)
    for batch in iterate(data, 4, shuffle=True, seed=1, pad_id=0):
        logits, hidden = cache(batch)
        ref_logits, ref_hidden = teacher(batch)
        torch.testing.assert_close(logits, ref_logits)
        mask = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1]).bool()
        for h, ref in zip(hidden, ref_hidden):
            torch.testing.assert_close(h[mask], ref[mask])
