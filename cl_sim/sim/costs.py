"""Simulated seconds of a phase, from measured phase wall times (the timeline's clock).

One small linear model per phase kind, fitted by non-negative least squares (`scipy.optimize.nnls`)
to the wall times the store recorded for phases of that kind (`metrics.wall_s`, `examples`):

    seconds = a + b x passes x (1 + c x (teachers - 1)) + d x dev_rows

    passes   examples pushed through forward + backward: the phase's training rows x its epochs, or
             more epochs where the step floor `min_steps` needs them (`phase_passes`, the same rule
             as `train.run_phase`: distillation's floor of 100 steps dominates small tasks)
    teachers adapters a fusion phase fuses (1 for every other kind): a fusion step crosses every
             teacher's adapter at every adapted position (docs/PERFORMANCE.md: 5 teachers ~1.8x 1)
    dev_rows rows scored at the phase's end
    a        model assembly, tokenisation and other per-phase start-up

Fitted as seconds = a + b' passes + e passes (teachers - 1) + d dev_rows, all >= 0, so c = e / b'.
A term the measurements cannot separate (one teacher count only, one dev size, fewer phases than
terms) is left out of the fit; the teacher term then falls back to `kinds.fusion.TEACHER_STEP_COST`
(measured by `benchmarks/multi_teacher.py`) and says so in `source`.

Where each kind's model comes from, first found wins (`cost_model`), and every row says which:
    configured  `stream.seconds_per_example[kind]`: seconds per pass, a = d = 0
    measured    the store's entries of this kind for the same backbone, max_length, adapter, precision
                and device type (`measured_phases`): a calibration is any earlier run on that store
                (`benchmarks/sim_costs.py` runs one and checks the model against a second stream)
    fallback    `Kind.seconds_per_example`: constants measured once on MiniLM with 2 CPU threads,
                labelled as such (another backbone or machine: +-40% or worse)
`stream.phase_overhead_s` is added to every phase in all three (e.g. a Ray Train fit's start-up).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from cl_sim.config import Config
from cl_sim.data.task import Task
from cl_sim.errors import StoreError
from cl_sim.kinds import KINDS
from cl_sim.kinds.fusion import TEACHER_STEP_COST
from cl_sim.phases import Phase


def phase_examples(phase: Phase, task: Task) -> int:
    """Training examples per epoch of `phase` (the same subset rule as `phases.encoded`)."""
    n = len(task.splits["train"])
    keep = n if phase.max_examples is None else min(n, phase.max_examples)
    return max(1, int(round(keep * phase.fraction)))


def phase_passes(phase: Phase, task: Task) -> int:
    """Examples pushed through forward + backward by `phase`: its epochs, or more where the step
    floor `min_steps` needs them (the same rule as `train.run_phase`)."""
    n = phase_examples(phase, task)
    steps_per_epoch = max(1, math.ceil(math.ceil(n / phase.batch_size) / phase.grad_accum))
    return n * max(phase.epochs, math.ceil(phase.min_steps / steps_per_epoch))


def phase_dev_rows(phase: Phase, task: Task) -> int:
    """Dev rows `phase` scores at its end (`dev_examples`: None = all, 0 = none)."""
    n = len(task.splits["dev"])
    return n if phase.dev_examples is None else min(n, phase.dev_examples)


def phase_teachers(phase: Phase) -> int:
    """Adapters the phase fuses (a fusion spec's `teachers`), else 1."""
    return max(1, len(getattr(phase.spec, "teachers", ()) or ()))


def default_teacher_cost(phase: Phase) -> float:
    fusion = getattr(phase.spec, "fusion", None)
    return TEACHER_STEP_COST["factorized" if fusion is not None and fusion.factorized else "plain"]


@dataclass(frozen=True)
class KindCost:
    """One kind's model: seconds = a + b x passes x (1 + c x (teachers - 1)) + d x dev_rows."""

    a: float  # seconds per phase
    b: float  # seconds per pass (per 1-teacher pass for fusion)
    c: Optional[float]  # each teacher beyond the first, as a share of a pass; None = TEACHER_STEP_COST
    d: float  # seconds per dev row
    source: str  # configured, measured (n phases) or fallback, and where the teacher term came from

    def seconds(self, phase: Phase, task: Task) -> float:
        c = default_teacher_cost(phase) if self.c is None else self.c
        return (self.a + self.b * phase_passes(phase, task) * (1.0 + c * (phase_teachers(phase) - 1))
                + self.d * phase_dev_rows(phase, task))


@dataclass(frozen=True)
class Sample:
    """One measured phase: its passes, teachers, dev rows and wall seconds."""

    passes: float
    teachers: int
    dev_rows: float
    wall_s: float


def fit_kind(samples: Sequence[Sample], kind: str = "") -> Optional[KindCost]:
    """Non-negative least squares over the terms `samples` can separate; None if they cannot give a
    positive cost per pass."""
    from scipy.optimize import nnls

    if not samples:
        return None
    passes = np.array([s.passes for s in samples], float)
    teach = np.array([s.passes * (s.teachers - 1) for s in samples], float)
    dev = np.array([s.dev_rows for s in samples], float)
    cols = {"b": passes}
    if len(set(passes)) > 1 and len(samples) >= 2:
        cols["a"] = np.ones(len(samples))
    if len({s.teachers for s in samples}) > 1 and len(samples) > len(cols):
        cols["e"] = teach
    if len(set(dev)) > 1 and len(samples) > len(cols):
        cols["d"] = dev
    coef, _ = nnls(np.column_stack(list(cols.values())), np.array([s.wall_s for s in samples], float))
    got = dict(zip(cols, coef))
    if not got["b"] > 0:
        return None
    teacher = ("; teacher term fitted" if "e" in got else
               "; teacher term: TEACHER_STEP_COST" if kind and hasattr(KINDS[kind].spec(), "teachers") else "")
    return KindCost(a=float(got.get("a", 0.0)), b=float(got["b"]), c=float(got["e"] / got["b"]) if "e" in got else None,
                    d=float(got.get("d", 0.0)), source=f"measured ({len(samples)} phases{teacher})")


def _same_setting(meta: dict, cfg: Config) -> bool:
    p = meta.get("phase") or {}
    if (p.get("backbone"), p.get("max_length"), p.get("precision")) != (cfg.backbone.name, cfg.backbone.max_length,
                                                                        cfg.training.precision):
        return False
    if p.get("adapter") is not None and p["adapter"] != dataclasses.asdict(cfg.adapter):
        return False
    on_cpu = (meta.get("execution") or {}).get("device_name", "cpu") == "cpu"
    return on_cpu != cfg.execution.use_gpu


def measured_phases(store, cfg: Config, keys: Optional[Sequence[str]] = None) -> dict[str, list[Sample]]:
    """The store's phases (or only `keys`) trained with this config's backbone, max_length, adapter
    and precision, on CPU (or on a GPU with `execution.use_gpu`), per kind, as samples for `fit_kind`."""
    out: dict[str, list[Sample]] = {}
    for key in sorted(set(store.keys() if keys is None else keys)):
        try:
            meta = store.meta(key)
        except StoreError:
            continue
        m = meta.get("metrics") or {}
        if not _same_setting(meta, cfg) or not m.get("wall_s") or not m.get("examples"):
            continue
        phase = meta["phase"]
        teachers = max(1, len((phase.get("spec") or {}).get("teachers") or ()))
        dev = m.get("dev_examples") or 0
        out.setdefault(phase["kind"], []).append(Sample(float(m["examples"]), teachers, float(dev), float(m["wall_s"])))
    return out


@dataclass(frozen=True)
class CostModel:
    """Per-kind models (`KindCost`) plus a fixed start-up per phase (`stream.phase_overhead_s`)."""

    kinds: dict[str, KindCost]
    overhead_s: float = 0.0

    def phase_seconds(self, phase: Phase, task: Task) -> float:
        return self.overhead_s + self.kinds[phase.kind].seconds(phase, task)

    def arrival(self, phases: Sequence[Phase], tasks: dict[str, Task]) -> tuple[float, int]:
        """Simulated seconds and example passes of an arrival's `phases`."""
        seconds = sum(self.phase_seconds(p, tasks[p.task]) for p in phases)
        return seconds, sum(phase_passes(p, tasks[p.task]) for p in phases)

    def sources(self) -> dict[str, str]:
        return {k: c.source for k, c in sorted(self.kinds.items())}

    def describe(self) -> dict[str, dict]:
        """The model as plain data (summary.json): per kind a, b, c, d and where they came from."""
        return {k: {"a_s": c.a, "b_s_per_pass": c.b, "c_per_teacher": c.c, "d_s_per_dev_row": c.d,
                    "source": c.source} for k, c in sorted(self.kinds.items())}


def fallback_model(cfg: Config) -> CostModel:
    """Configured kinds, the rest from the labelled fallback constants; reads no store."""
    spe = cfg.stream.seconds_per_example
    kinds = {k: KindCost(0.0, spe[k], None, 0.0, "configured (stream.seconds_per_example)") if k in spe
             else KindCost(0.0, kind.seconds_per_example, None, 0.0, "fallback (constants: MiniLM, 2 CPU threads)")
             for k, kind in KINDS.items()}
    return CostModel(kinds, cfg.stream.phase_overhead_s)


def cost_model(cfg: Config, store=None, keys: Optional[Sequence[str]] = None) -> CostModel:
    """Configured, else measured on `store` (`measured_phases`, over `keys` if given), else
    fallback, per kind."""
    base = fallback_model(cfg)
    if store is None:
        return base
    measured = measured_phases(store, cfg, keys)
    kinds = dict(base.kinds)
    for kind, samples in measured.items():
        if kind not in cfg.stream.seconds_per_example and (fit := fit_kind(samples, kind)) is not None:
            kinds[kind] = fit
    return CostModel(kinds, base.overhead_s)
