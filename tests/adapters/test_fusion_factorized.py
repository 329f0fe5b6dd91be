"""`method.fusion.factorized`: the same AdapterFusion function with one key and one value product
per token instead of N each (linearity of K and V)."""
import copy

import pytest
import torch

from cl_sim.adapters.fusion import Fusion
from cl_sim.config import load_config
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.methods.base import Deployed, MethodContext
from cl_sim.store import Store
from cl_sim.train import evaluate_deployed, run_phase


@pytest.mark.parametrize("n", [1, 2, 5])
def test_factorized_fusion_is_the_same_function_and_gradient(n):
    torch.manual_seed(0)
    plain = Fusion(16, value_init_noise=0.1)
    with torch.no_grad():
        plain.key.bias.normal_()  # a non-zero key bias: the q·b term must be kept
    fact = copy.deepcopy(plain)
    fact.factorized = True
    query = torch.randn(3, 7, 16, requires_grad=True)
    outputs = torch.randn(n, 3, 7, 16, requires_grad=True)
    want, want_att = plain(query, outputs)
    got, got_att = fact(query, outputs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_att, want_att, rtol=1e-5, atol=1e-6)
    weights = torch.randn_like(want)
    g_want = torch.autograd.grad((want * weights).sum(), [query, outputs, *plain.parameters()])
    g_got = torch.autograd.grad((got * weights).sum(), [query, outputs, *fact.parameters()])
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_factorized_fusion_phase_is_its_own_key_and_reloads_to_its_dev_score(tmp_path):
    cfg = load_config(None, ["backbone.name=tiny-bert", "adapter.kind=pfeiffer", "training.epochs=1",
                             "training.batch_size=16", "backbone.max_length=24", "method.fusion.factorized=true"])
    task = make_synthetic_task("t", "a", n_train=48, n_dev=24, n_test=8)
    store = Store(tmp_path)
    ctx = MethodContext(cfg, task, run=lambda p: p.key())
    teachers = []
    for seed in (1, 2):
        phase = MethodContext(cfg.replace(training=dataclasses_replace(cfg.training, seed=seed)), task,
                              run=lambda p: p.key()).phase("adapter")
        out = run_phase(phase, task, store)
        store.put(phase.key(), out.states, {"phase": phase.to_dict(), "metrics": out.metrics})
        teachers.append(phase.key())
    phase = ctx.fusion_phase(tuple(teachers))
    plain = MethodContext(load_config(None, ["backbone.name=tiny-bert", "adapter.kind=pfeiffer",
                                             "training.epochs=1", "training.batch_size=16",
                                             "backbone.max_length=24"]), task, run=lambda p: p.key())
    assert phase.key() != plain.fusion_phase(tuple(teachers)).key()
    out = run_phase(phase, task, store)
    store.put(phase.key(), out.states, {"phase": phase.to_dict(), "metrics": out.metrics})
    score, attention = evaluate_deployed(Deployed(head=phase.key(), fusion=phase.key()), task, store, split="dev")
    assert score == out.metrics["dev_score"] and attention


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)
