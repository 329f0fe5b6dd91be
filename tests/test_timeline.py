"""cl_sim.timeline and the simulator loop on several slots: seeded streams, the FIFO schedule on
hand-made durations, who may teach whom, dependency order under concurrency, the cost model (step
floor, teacher count, a fit to measured phases), and a tiny tenants run on tiny-bert."""
import dataclasses
import threading
import time

import numpy as np
import pandas as pd
import pytest

from cl_sim.report import run as report
from cl_sim.config import StreamConfig, load_config
from cl_sim.errors import ConfigError
from cl_sim.execution.local import LocalExecutor
from cl_sim.kinds import KINDS
from cl_sim.sim.costs import Sample, cost_model, fallback_model, fit_kind, fit_kinds
from cl_sim.sim.loop import simulate
from cl_sim.store import Store
from cl_sim.tasks import load_tasks
from cl_sim.timeline import (ArrivalEvent, Schedule, TimelineRow, ordering_events, phase_passes, poisson_events,
                             run_timeline, stream_events, summarize)
from cl_sim.simulate import TaskRow

POOLS = {"acme": ["a1", "a2", "a3", "a4"], "bolt": ["b1", "b2", "b3"], "core": ["c1", "c2"]}


def _tasks_override(n_tenants: int, per_tenant: int, n_train: int = 24) -> str:
    items = [f"{{name: t{t}{i}, tenant: ten{t}, family: f{(t + i) % 2}, n_train: {n_train}, n_dev: 16, n_test: 16}}"
             for t in range(n_tenants) for i in range(per_tenant)]
    return "tasks=[" + ",".join(items) + "]"


# ---------------------------------------------------------------- streams


def test_poisson_stream_is_seeded():
    a = poisson_events(POOLS, horizon=100.0, rate=0.05, seed=3)
    assert a == poisson_events(POOLS, horizon=100.0, rate=0.05, seed=3)
    assert a != poisson_events(POOLS, horizon=100.0, rate=0.05, seed=4)
    assert all(isinstance(e, ArrivalEvent) for e in a) and a
    assert [e.time for e in a] == sorted(e.time for e in a)
    assert all(0 < e.time <= 100.0 and e.task in POOLS[e.tenant] for e in a)
    assert len({e.task for e in a}) == len(a)  # drawn without replacement


def test_poisson_stream_caps_at_pool_and_shares_a_pool():
    many = poisson_events(POOLS, horizon=1000.0, rate=1.0, seed=0)
    assert sorted(e.task for e in many) == sorted(t for p in POOLS.values() for t in p)
    shared = poisson_events({"x": (), "y": ()}, horizon=1000.0, rate=1.0, seed=0, shared=["s1", "s2", "s3"])
    assert sorted(e.task for e in shared) == ["s1", "s2", "s3"] and {e.tenant for e in shared} <= {"x", "y"}


def test_stream_from_config_ordering_times_and_errors():
    cfg = load_config(None, [_tasks_override(2, 2), "stream.times=[0, 0, 2.5, 7]"])
    tasks = load_tasks(cfg)
    events = stream_events(cfg, tasks)
    assert [(e.time, e.tenant, e.task) for e in events] == [
        (0.0, "ten0", "t00"), (0.0, "ten0", "t01"), (2.5, "ten1", "t10"), (7.0, "ten1", "t11")]
    with pytest.raises(ConfigError, match="stream.times"):
        ordering_events(["a", "b"], {"a": "x", "b": "x"}, [0.0])
    with pytest.raises(ConfigError, match="stream.times"):
        StreamConfig(times=(2.0, 1.0))
    with pytest.raises(ConfigError, match="stream.pool"):
        StreamConfig(pool="global")
    with pytest.raises(ConfigError, match="stream.seconds_per_example"):
        StreamConfig(seconds_per_example={"warmup": 1.0})
    poisson = cfg.replace(stream=StreamConfig(kind="poisson", horizon=1.0, rate=1e-6))
    with pytest.raises(ConfigError, match="stream.horizon"):
        stream_events(poisson, tasks)


# ---------------------------------------------------------------- cost model


class _Recorder:
    """Thread-safe fake executor: records each phase and returns its key (nothing trains)."""

    thread_safe = True
    store = None

    def __init__(self):
        self.phases, self.lock = {}, threading.Lock()

    def run(self, phase):
        with self.lock:
            self.phases.setdefault(phase.task, []).append(phase)
        return phase.key()


def _plan(cfg, tasks, executor=None, costs=None, events=None):
    """The loop's steps for the config's stream, planned (no training, no evaluation)."""
    executor = executor or _Recorder()
    schedule = Schedule(tuple(events or stream_events(cfg, tasks)), cfg.execution.slots or 1)
    return simulate(cfg, tasks, executor, schedule, costs or fallback_model(cfg), log=lambda m: None,
                    evaluate=False), executor


def _phases(method, n_train=24, *overrides):
    """The phases the last of three arrivals runs (two ready teachers), planned without training."""
    cfg = load_config(None, [_tasks_override(1, 3, n_train), f"method.name={method}", "training.epochs=2",
                             "training.batch_size=16", *overrides])
    tasks = load_tasks(cfg)
    trace, recorder = _plan(cfg, tasks)
    return cfg, tasks, recorder.phases[trace.steps[-1].event.task]


def test_fusion_costs_grow_with_the_number_of_teachers():
    cfg, tasks, phases = _phases("fusion")
    fusion = next(p for p in phases if p.kind == "fusion")
    one, five = (dataclasses.replace(fusion, spec=dataclasses.replace(fusion.spec, teachers=tuple(f"k{i}" for i in range(n))))
                 for n in (1, 5))
    model, task = fallback_model(cfg), tasks[fusion.task]
    s1, s5 = model.phase_seconds(one, task), model.phase_seconds(five, task)
    assert s5 == pytest.approx(1.8 * s1)  # docs/PERFORMANCE.md: a 5-teacher fusion step ~1.8x a 1-teacher one
    spec = five.spec
    factorized = dataclasses.replace(five, spec=dataclasses.replace(spec, fusion=dataclasses.replace(spec.fusion,
                                                                                                     factorized=True)))
    assert s1 < model.phase_seconds(factorized, task) < s5
    assert "fallback" in model.kinds["fusion"].source


def test_distillation_step_floor_dominates_small_tasks():
    cfg, tasks, phases = _phases("adapter_distillation", 24)
    distill = next(p for p in phases if p.kind == "distill")
    assert distill.min_steps == 100  # method.distill.min_steps
    task = tasks[distill.task]
    # 24 examples, batch 16: 2 steps per epoch, so 100 steps need 50 epochs, not the configured 2
    assert phase_passes(distill, task) == 24 * 50
    no_floor = dataclasses.replace(distill, min_steps=0)
    assert phase_passes(no_floor, task) == 24 * 2
    model = fallback_model(cfg)
    seconds = model.phase_seconds(distill, task)
    assert seconds == pytest.approx(24 * 50 * KINDS["distill"].seconds_per_example)
    assert seconds == pytest.approx(25 * model.phase_seconds(no_floor, task))
    # on a large task the floor no longer binds: 1600 examples, batch 16 = 100 steps per epoch
    _, big_tasks, big = _phases("adapter_distillation", 1600)
    big_distill = next(p for p in big if p.kind == "distill")
    assert phase_passes(big_distill, big_tasks[big_distill.task]) == 1600 * 2  # 100 steps per epoch


def test_cost_fit_recovers_a_known_model_and_says_what_it_could_not_fit():
    truth = lambda p, t, d: 2.0 + 0.01 * p * (1 + 0.25 * (t - 1)) + 0.001 * d  # noqa: E731
    samples = [Sample(p, t, d, truth(p, t, d)) for p, t, d in
               [(100, 1, 16), (400, 2, 16), (800, 5, 64), (1600, 3, 32), (200, 4, 80)]]
    fit = fit_kind(samples, "fusion")
    assert (fit.a, fit.b, fit.c, fit.d) == pytest.approx((2.0, 0.01, 0.25, 0.001), rel=1e-6)
    assert fit.source == "measured (5 phases of 5 in the fit; teacher term fitted)"
    one_teacher = fit_kind([Sample(p, 1, 16, 1.0 + 0.02 * p) for p in (100, 300, 900)], "fusion")
    assert one_teacher.c is None and one_teacher.a == pytest.approx(1.0) and one_teacher.b == pytest.approx(0.02)
    assert "TEACHER_STEP_COST" in one_teacher.source
    only_one = fit_kind([Sample(500, 1, 16, 5.0)], "adapter")  # one phase: seconds per pass only
    assert (only_one.a, only_one.b) == (0.0, pytest.approx(0.01))
    assert fit_kind([], "adapter") is None and fit_kind([Sample(100, 1, 0, 0.0)], "adapter") is None
    # several kinds in one fit: a per-pass cost each, the start-up shared
    both = fit_kinds({"adapter": [Sample(p, 1, 16, 2.0 + 0.01 * p) for p in (100, 400)],
                      "distill": [Sample(p, 1, 16, 2.0 + 0.03 * p) for p in (200, 600)]})
    assert (both["adapter"].b, both["distill"].b) == (pytest.approx(0.01), pytest.approx(0.03))
    assert both["adapter"].a == both["distill"].a == pytest.approx(2.0)


class _FakeStore:
    def __init__(self, metas):
        self.metas = metas

    def keys(self):
        return list(self.metas)

    def meta(self, key):
        return self.metas[key]


def test_cost_model_is_configured_then_measured_then_fallback():
    cfg, tasks, phases = _phases("adapter_distillation", 24, "stream.seconds_per_example={head: 0.5}")
    adapter = next(p for p in phases if p.kind == "adapter")
    metas = {f"k{i}": {"phase": dataclasses.replace(adapter, epochs=e).to_dict(), "execution": {"device_name": "cpu"},
                       "metrics": {"wall_s": 1.0 + 0.002 * 24 * e, "examples": 24 * e, "dev_examples": 16}}
             for i, e in enumerate((1, 3, 9))}
    metas["other"] = {"phase": {**adapter.to_dict(), "backbone": "tiny-bert"},  # another backbone: not used
                      "execution": {"device_name": "cpu"}, "metrics": {"wall_s": 99.0, "examples": 24}}
    model = cost_model(cfg, _FakeStore(metas))
    assert model.kinds["adapter"].source == "measured (3 phases of 3 in the fit)"
    assert model.phase_seconds(adapter, tasks[adapter.task]) == pytest.approx(1.0 + 0.002 * 24 * 2)
    assert model.kinds["head"].source.startswith("configured") and model.kinds["head"].b == 0.5
    assert model.kinds["distill"].source.startswith("fallback")
    assert set(model.describe()) == set(KINDS)


# ---------------------------------------------------------------- schedule


class _Durations:
    """Hand-made simulated seconds per task (a stand-in cost model)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def arrival(self, phases, tasks):
        return self.seconds[phases[0].task], 1


def _schedule(slots, times, seconds):
    cfg = load_config(None, [_tasks_override(1, len(times)), "method.name=fusion", f"execution.slots={slots}",
                             f"stream.times={list(times)}"])
    tasks = load_tasks(cfg)
    trace, _ = _plan(cfg, tasks, costs=_Durations(dict(zip(tasks, seconds))))
    return {s.event.task: s for s in trace.steps}, list(tasks)


def test_schedule_two_slots_queue_and_ready_teachers():
    s, (A, B, C, D) = _schedule(2, [0, 0, 0, 5], [10.0, 4.0, 3.0, 1.0])
    assert [(s[n].slot, s[n].start, s[n].ready) for n in (A, B, C, D)] == [(0, 0, 10), (1, 0, 4), (1, 4, 7), (1, 7, 8)]
    assert s[C].start - s[C].event.time == 4.0  # queue wait: both slots busy
    assert s[D].start - s[D].event.time == 2.0
    # A and B start together: neither can teach the other; A is still training when D starts
    assert s[A].available == () and s[B].available == ()
    assert s[C].available == (B,) and s[D].available == (B, C)
    assert [t.task for t in s[D].teachers] == [B, C]


def test_schedule_one_slot_is_sequential_whatever_the_costs():
    s, (A, B, C) = _schedule(1, [0, 0, 1], [2.0, 2.0, 2.0])
    assert [(s[n].start, s[n].ready, s[n].available) for n in (A, B, C)] == [(0, 2, ()), (2, 4, (A,)), (4, 6, (A, B))]
    s, _ = _schedule(1, [0, 0, 1], [0.1, 50.0, 3.0])  # the ordering stream: every earlier task teaches
    assert [x.available for x in s.values()] == [(), (A,), (A, B)]


class _OrderCheckingExecutor(_Recorder):
    """Thread-safe fake: fails if a phase runs before the phases it reads from."""

    def __init__(self):
        super().__init__()
        self.done = set()

    def run(self, phase):
        spec = phase.spec  # fusion: its teachers' keys; distill: its fusion's key
        needs = set(getattr(spec, "teachers", ())) | {k for k in (phase.init, getattr(spec, "teacher_fusion", None)) if k}
        with self.lock:
            missing = needs - self.done
            assert not missing, f"{phase.task} ran before {missing}"
        time.sleep(0.005)  # let the other slot's thread interleave
        with self.lock:
            self.done.add(phase.key())
        return phase.key()


@pytest.mark.parametrize("method", ["fusion", "i2i", "adapter_distillation"])
def test_plan_teachers_are_ready_adapters_and_concurrent_execution_respects_them(method):
    cfg = load_config(None, [_tasks_override(2, 3), f"method.name={method}", "execution.slots=2",
                             "stream.times=[0, 0, 1, 1, 2, 9]"])
    tasks = load_tasks(cfg)
    trace, executor = _plan(cfg, tasks, _OrderCheckingExecutor())
    ready = {s.event.task: s.ready for s in trace.steps}
    for s in trace.steps:
        assert all(ready[t.task] <= s.start for t in s.teachers)
        assert [t.task for t in s.teachers] == list(s.available)  # teacher_count=None: all ready
    assert trace.steps[0].teachers == () and trace.steps[1].teachers == ()  # arrived together
    assert set(trace.walls) == set(tasks)


# ---------------------------------------------------------------- end to end


def test_tenants_run_tiny_bert(tmp_path):
    overrides = [_tasks_override(2, 2), "backbone.name=tiny-bert", "training.epochs=1", "training.threads=1",
                 "execution.slots=2", f"execution.store_dir={tmp_path / 'store'}", "stream.kind=poisson",
                 "stream.horizon=40", "stream.rate=0.2", "stream.storage_budget_bytes=20000"]
    rows = []
    for method in ("fusion", "adapter_distillation"):
        cfg = load_config(None, overrides + [f"method.name={method}"])
        tasks = load_tasks(cfg)
        executor = LocalExecutor(Store(cfg.execution.store_dir), tasks, 1)
        rec = run_timeline(cfg, tasks, executor, run_id=method, log=lambda m: None)
        assert len(rec.rows) == len(rec.events) == 4
        assert set(rec.tenants) == {"ten0", "ten1"}
        # one schema: the runs' TaskRow plus the timeline's documented fields
        assert list(rec.rows[0]) == [f.name for f in dataclasses.fields(TimelineRow)]
        assert {f.name for f in dataclasses.fields(TaskRow)} < set(rec.rows[0])
        for r in rec.rows:
            assert r["onboarding_s"] == pytest.approx(r["queue_wait_s"] + r["train_s"]) and r["train_s"] > 0
            assert 0.0 <= r["final_score"] <= 1.0 and r["stored_bytes"] > 0 and r["wall_s"] >= 0
            assert r["final_score"] == rec.trace.R[-1, rec.trace.ordering.index(r["task"])]
            assert np.isnan(r["kt"]) and r["ref_score"] is None  # no KT references on the timeline
        rows += rec.rows
    # the second method's clock is fitted to the adapters the first one trained on this store
    assert "adapter: measured" in rows[-1]["cost_source"] or "adapter" not in rows[-1]["cost_source"]
    assert any("adapter: measured" in r["cost_source"] for r in rows[4:])
    summary = {s["method"]: s for s in summarize(rows, 20000)}
    for s in summary.values():
        assert s["onboarding_p50_s"] <= s["onboarding_p90_s"] <= s["onboarding_p99_s"]
        assert s["simulated_train_s"] > 0 and s["phase_wall_s"] > 0
    fusion, ad = pd.DataFrame(rows).groupby(["method", "tenant"])["stored_bytes"].sum().unstack(0).T.loc[
        ["fusion", "adapter_distillation"]].to_numpy()
    assert (ad < fusion).all()  # one distilled adapter per task vs adapters + fusion layers
    assert summary["adapter_distillation"]["tenants_within_budget"] >= summary["fusion"]["tenants_within_budget"]
    assert len(report.tenant_summary(pd.DataFrame(rows))) == 2  # the report's tenants table reads these rows
