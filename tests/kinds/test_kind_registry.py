"""A phase kind is one file plus one registry line: the toy kind (tests/kinds/toy_kind.py),
registered here with one line, runs through `run_phase` and the store like a built-in kind; and
nothing in cl_sim branches on a phase kind's name (the registry decides)."""
import ast
import math
from pathlib import Path

import pytest
import torch

import toy_kind  # tests/kinds/ is on sys.path (pytest puts a test file's folder there)
from cl_sim.config import load_config
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.execution.local import LocalExecutor
from cl_sim.kinds import KINDS
from cl_sim.methods.base import MethodContext
from cl_sim.phases import Phase
from cl_sim.store import Store

PACKAGE = Path(__file__).resolve().parents[2] / "cl_sim"


@pytest.fixture
def norm_kind(monkeypatch):
    monkeypatch.setitem(KINDS, "norm", toy_kind.KIND)  # the one registry line


def test_a_kind_in_one_file_plus_one_registry_line_trains_and_is_stored(norm_kind, tmp_path):
    cfg = load_config(None, ["backbone.name=tiny-bert", "backbone.max_length=24", "training.epochs=2",
                             "training.batch_size=16"])
    task = make_synthetic_task("t", "a", n_train=48, n_dev=16, n_test=16, n_signal_words=12, n_filler_words=12)
    ctx = MethodContext(cfg, task, run=lambda p: p.key())
    phase = ctx.phase("norm", toy_kind.NormSpec(norm_lr=3e-3))
    assert phase.adapter is None and Phase.from_dict(phase.to_dict()) == phase  # crosses processes as a dict
    assert ctx.phase("norm").key() != phase.key()  # its spec is part of the key
    ex = LocalExecutor(Store(tmp_path / "store"), {"t": task}, threads=1)
    key = ex.run(phase)
    meta = ex.store.meta(key)
    assert ex.run(phase) == key and ex.trained == 1  # identical work: reused
    norms = ex.store.states(key)["norms"]
    assert norms and all("LayerNorm" in k for k in norms)
    hidden = 32  # tiny-bert: every LayerNorm has a weight and a bias of the hidden size
    assert meta["metrics"]["trainable_params"] == len(norms) * hidden + sum(
        v.numel() for v in ex.store.states(key)["head"].values())
    curve = meta["metrics"]["loss_curve"]
    assert len(curve) == 6 and all(math.isfinite(x) for x in curve)
    assert not torch.equal(norms["embeddings.LayerNorm.weight"], torch.ones(hidden))  # it trained


def _kind_branches(tree: ast.AST) -> list[int]:
    """Lines comparing something named `kind` with a phase-kind name (==, !=, in, not in)."""
    names = set(KINDS)
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        about_kind = any((isinstance(s, ast.Name) and s.id == "kind") or (isinstance(s, ast.Attribute) and s.attr == "kind")
                         or (isinstance(s, ast.Subscript) and isinstance(s.slice, ast.Constant) and s.slice.value == "kind")
                         for s in sides)
        consts = {c.value for s in sides for c in ast.walk(s) if isinstance(c, ast.Constant)}
        if about_kind and consts & names:
            lines.append(node.lineno)
    return lines


def test_nothing_in_cl_sim_branches_on_a_phase_kind_name():
    found = {f"{p.relative_to(PACKAGE)}:{line}" for p in PACKAGE.rglob("*.py")
             for line in _kind_branches(ast.parse(p.read_text()))}
    assert not found, f"ask cl_sim.kinds.KINDS instead of branching on the kind's name: {sorted(found)}"


def test_the_branch_finder_finds_branches():
    code = 'if phase.kind == "fusion": pass\nx = meta["kind"] in ("adapter", "head")\nif kind == "regression": pass'
    assert _kind_branches(ast.parse(code)) == [1, 2]
