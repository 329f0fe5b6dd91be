"""What a method is (`Method`, its registry entry) and the plain data it hands back.

Torch-free on purpose: `cl_sim.config` validates names against the registry and `cl_sim.sweep`
builds grids from it without loading the model. The context a recipe builds phases with
(`MethodContext`) lives in `cl_sim.methods.base`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class Claim:
    """A comparison the method's paper makes, re-measured in docs/RESULTS.md (`cl_sim.report.results_md`):
    this method minus `versus`, paired over seeds."""

    versus: str  # the method compared against
    paper: str  # the paper's own figure
    per_task: bool = False  # one row per task over every position (else: the targets that had teachers)
    matched: bool = False  # also rows against the step- and work-matched ST-A (`ref_matched_score`, `ref_work_score`)


@dataclass(frozen=True)
class Method:
    """One method: its recipe and what the simulator, the config checks, sweeps and reports ask of it."""

    arrive: Callable  # (ctx: MethodContext, teachers: list[Prior], history: list[Prior]) -> Arrival
    uses_teachers: bool = False  # earlier tasks are selected as its teachers (`method.teacher_count`)
    uses_adapters: bool = False  # it trains adapters (preflight injects them into the backbone)
    single_task: bool = False  # trains each task alone, order-independent: may be KT's reference (CLiMB)
    sweep_axes: tuple[str, ...] = ()  # trial params it reads besides ordering, seed, teacher_count
    title: str = ""  # its name in reports ("I2I"); empty = the registry name
    claims: tuple[Claim, ...] = ()  # its paper's comparisons with other methods


@dataclass(frozen=True)
class Deployed:
    """What inference on a task loads: store keys, nothing else."""

    head: str  # entry holding the task head
    adapter: Optional[str] = None  # entry holding the task's single adapter
    fusion: Optional[str] = None  # fusion entry (its teacher adapters are listed in its phase)
    backbone: Optional[str] = None  # entry holding a fine-tuned backbone


@dataclass(frozen=True)
class Prior:
    """A task that finished before the current phase started."""

    task: str
    adapter: Optional[str]  # the adapter later tasks fuse or distil from (None: method has none)
    deployed: Deployed


@dataclass
class Arrival:
    deployed: dict[str, Deployed]  # this task, plus earlier tasks whose deployment changed
    adapter: Optional[str]
    phases: list[str] = field(default_factory=list)  # store keys, in the order they ran
