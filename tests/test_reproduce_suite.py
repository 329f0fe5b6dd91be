"""The reproduction suites' studies (experiments/reproduce.py) load as sweeps, CPU and GPU; the
strong-teacher studies (issue 28) give teachers and targets their own budgets and roles, and the
smoke test cuts every budget to its own."""
import importlib.util
from pathlib import Path

import pytest
import yaml

from cl_sim.config import task_budget
from cl_sim.sweep import trials_for

ROOT = Path(__file__).resolve().parents[1]
SUITES = [ROOT / "experiments" / "configs" / f"reproduce_{kind}.yaml" for kind in ("cpu", "gpu")]


def _reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "experiments" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_every_study_loads_and_strong_teachers_outsize_their_targets(path):
    reproduce, suite = _reproduce(), yaml.safe_load(path.read_text())
    for smoke in (False, True):
        studies = reproduce.load_studies(str(path), [], smoke, True)
        assert list(studies) == list(suite["studies"])
        for name, study in studies.items():
            cfg, sweep = study.config, study.sweep
            assert trials_for(cfg, sweep) and sweep.name == name and cfg.execution.executor == "local", name
            assert Path(cfg.data_root).is_absolute()  # the repository's ../shared/data, wherever it runs
            if smoke:
                assert cfg.backbone.name == "tiny-bert" and sweep.seeds == (0, 1) and cfg.output.dir.endswith("smoke")
            if study.teachers != "strong":
                continue
            budgets = {t.role: set() for t in cfg.tasks}
            for t in cfg.tasks:
                budgets[t.role].add(task_budget(cfg, t.name)[0])
            if smoke:
                assert budgets.keys() and all(b == {32} for b in budgets.values()), (name, budgets)
            elif "teacher" in budgets:  # a thousand rows or more (or all: None), 4x the largest target's
                teacher = min(b or 10**9 for b in budgets["teacher"])
                targets = [b or 10**9 for b in budgets["target"]]
                assert teacher >= 1000 and all(4 * b <= teacher for b in targets if b < 10**9), (name, budgets)
                assert len(sweep.seeds) >= 3


def test_cut_cpu_studies_note_their_cuts_and_where_their_rates_come_from():
    """RESULTS.md prints a study's `note` under its scale: the CPU strong-teacher studies say what
    was cut and that their adapter rate is the teachers' dev-split search's, the rate they run."""
    studies = _reproduce().load_studies(str(SUITES[0]), [], False, True)
    for name in ("strong_nli", "weak_nli", "strong_sentiment_similar"):
        note, lr = studies[name].note, studies[name].config.training.lr
        assert "lr_search_teachers" in note and f"adapter lr {lr:g}" in note, name
