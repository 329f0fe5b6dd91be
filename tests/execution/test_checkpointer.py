"""A phase on the pool reports a checkpoint only when `execution.checkpoint_every_s` has passed
(a report costs ~0.2 s: per epoch it cost the README study 17% of its phases' time)."""
import pytest

pytest.importorskip("ray")

from cl_sim.execution import pool_worker  # noqa: E402
from cl_sim.phases import Dist  # noqa: E402


@pytest.mark.parametrize("every_s, reports", [(0.0, 5), (3600.0, 0)])
def test_checkpoints_follow_the_interval(monkeypatch, every_s, reports):
    calls = []
    monkeypatch.setattr(pool_worker, "report_epoch", lambda job, state, rank: calls.append(state["epoch"]))
    ckpt = pool_worker.Checkpointer({"id": 1, "key": "k"}, Dist(), every_s)
    for epoch in range(5):
        ckpt({"epoch": epoch})
    assert len(calls) == reports


def test_the_interval_counts_from_the_last_checkpoint(monkeypatch):
    clock = iter([0.0, 10.0, 31.0, 40.0, 62.0, 63.0])  # start, then one reading per epoch (+ one after a report)
    monkeypatch.setattr(pool_worker.time, "monotonic", lambda: next(clock))
    calls = []
    monkeypatch.setattr(pool_worker, "report_epoch", lambda job, state, rank: calls.append(state["epoch"]))
    ckpt = pool_worker.Checkpointer({"id": 1, "key": "k"}, Dist(), 30.0)
    for epoch in range(3):
        ckpt({"epoch": epoch})
    assert calls == [1]  # 10 s: not yet; 31 s: due (then the clock restarts at 40 s); 62 s: 22 s later, not due


def test_the_interval_reaches_every_rank_of_a_slot(tmp_path):
    from cl_sim.config import load_config
    from cl_sim.execution.phase_pool import loop_config
    from cl_sim.execution.ray_train import pool_spec

    cfg = load_config(None, ["execution.checkpoint_every_s=7.5", "training.eval_batch_size=64"])
    config = loop_config(pool_spec(cfg, tmp_path, "cl_sim_store:x", "01000000"), slot=1, pool="p")
    assert config["checkpoint_every_s"] == 7.5 and config["eval_batch_size"] == 64 and config["slot"] == 1
    assert config["store_actor"] == "cl_sim_store:x"  # workers find the driver's actor by its name
