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

Fitted in one go over every measured kind (`fit_kinds`): b and e = b x c per kind, a and d shared
by all kinds (the same model assembly and dev pass), all >= 0. A term the measurements cannot
separate (one teacher count only, one dev size, fewer phases than terms) is left out of the fit;
the teacher term then falls back to `kinds.fusion.TEACHER_STEP_COST` (measured by
`benchmarks/multi_teacher.py`) and says so in `source`.

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


def fit_kinds(measured: dict[str, Sequence[Sample]]) -> dict[str, KindCost]:
    """One non-negative least-squares fit over every kind's samples: a per-pass cost b per kind and
    a teacher term e per kind whose teacher counts vary, with the per-phase start-up a and the
    per-dev-row cost d shared by all kinds (the same model assembly and dev pass), each only where
    the samples can separate it. Kinds whose fitted cost per pass is not positive are left out."""
    from scipy.optimize import nnls

    rows = [(kind, x) for kind, xs in sorted(measured.items()) for x in xs]
    if not rows:
        return {}
    kinds = sorted({k for k, _ in rows})
    cols: dict[tuple, np.ndarray] = {("b", k): np.array([x.passes * (kk == k) for kk, x in rows], float)
                                     for k in kinds}
    for k in kinds:
        if len({x.teachers for x in measured[k]}) > 1 and len(rows) > len(cols):
            cols[("e", k)] = np.array([x.passes * (x.teachers - 1) * (kk == k) for kk, x in rows], float)
    if len({x.passes for _, x in rows}) > 1 and len(rows) > len(cols):
        cols[("a", "")] = np.ones(len(rows))
    if len({x.dev_rows for _, x in rows}) > 1 and len(rows) > len(cols):
        cols[("d", "")] = np.array([x.dev_rows for _, x in rows], float)
    coef, _ = nnls(np.column_stack(list(cols.values())), np.array([x.wall_s for _, x in rows], float))
    got = dict(zip(cols, coef))
    out = {}
    for k in kinds:
        b = got[("b", k)]
        if not b > 0:
            continue
        e = got.get(("e", k))
        teacher = ("; teacher term fitted" if e is not None else
                   "; teacher term: TEACHER_STEP_COST" if hasattr(KINDS[k].spec(), "teachers") else "")
        out[k] = KindCost(a=float(got.get(("a", ""), 0.0)), b=float(b), c=None if e is None else float(e / b),
                          d=float(got.get(("d", ""), 0.0)),
                          source=f"measured ({len(measured[k])} phases of {len(rows)} in the fit{teacher})")
    return out


def fit_kind(samples: Sequence[Sample], kind: str = "adapter") -> Optional[KindCost]:
    """`fit_kinds` on one kind's samples; None if they give no positive cost per pass."""
    return fit_kinds({kind: samples}).get(kind)


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
    and precision, on CPU (or on a GPU with `execution.use_gpu`), per kind, as samples for `fit_kinds`."""
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
    kinds.update(fit_kinds({k: v for k, v in measured.items() if k not in cfg.stream.seconds_per_example}))
    return CostModel(kinds, base.overhead_s)
