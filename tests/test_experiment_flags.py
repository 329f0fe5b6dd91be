"""Every experiment script takes the CLI's `--quiet`/`--verbose` (README: "every script takes
--quiet/--verbose"); `experiments/tenants.py`, which has its own parser, included (issue 25)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tenants():
    spec = importlib.util.spec_from_file_location("tenants_script", ROOT / "experiments" / "tenants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tenants_help_lists_quiet_and_verbose(capsys):
    with pytest.raises(SystemExit) as done:
        _tenants().parse_args(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--quiet" in out and "--verbose" in out


@pytest.mark.parametrize("flag, level", [("--quiet", 0), ("--verbose", 2)])
def test_tenants_takes_the_flags_and_sets_the_level(flag, level, monkeypatch, capsys):
    from cl_sim.progress import ENV, verbosity

    monkeypatch.setenv(ENV, "1")  # restored afterwards
    assert _tenants().main([flag, "--local", "training.epochs=0"]) == 2  # the config's error, not argparse's
    assert verbosity() == level
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == ["tenants: error: training.epochs: must be > 0, got 0"] and not out
