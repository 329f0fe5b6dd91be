"""Packaging facts the install and CI depend on."""

import importlib
import importlib.util
import os
import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
CI_RUN = REPO / ".ci" / "run"
README = REPO / "README.md"
SETUP_SH = REPO / "scripts" / "setup.sh"


@pytest.fixture(scope="module")
def project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def test_torch_is_pinned_exactly(project):
    # A range or bare `torch` makes pip pull a multi-GB CUDA build on a CPU machine.
    torch_reqs = [
        re.sub(r"\s+", "", dep)
        for dep in project["dependencies"]
        if re.match(r"^torch\b(?![-_.\w])", dep.strip())
    ]
    assert torch_reqs == ["torch==2.13.0"]


def test_dev_extra_pulls_ray(project):
    dev = [re.sub(r"\s+", "", d) for d in project["optional-dependencies"]["dev"]]
    assert "cl_sim[ray]" in dev or any(d.startswith("ray[") for d in dev)
    assert any(d.startswith("ray[") for d in project["optional-dependencies"]["ray"])


def test_console_script_points_at_cli_main(project):
    target = project["scripts"]["cl-sim"]
    assert target == "cl_sim.cli:main"
    module_name, attr = target.split(":")
    if importlib.util.find_spec(module_name) is None:
        return  # cl_sim.cli not written yet: the string check above is all we can do
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr))


def _ci_test_command() -> str:
    lines = [
        line.strip()
        for line in CI_RUN.read_text().splitlines()
        if "pytest" in line and not line.lstrip().startswith("#")
    ]
    assert len(lines) == 1, f".ci/run should run one test command, found {lines}"
    return lines[0]


def test_ci_runs_the_readme_test_command():
    if not README.is_file():
        pytest.skip("README.md not written yet")
    command = _ci_test_command()
    assert command in README.read_text(), (
        f"README.md must show the test command that .ci/run runs: {command!r}"
    )


def test_ci_run_is_executable():
    assert os.access(CI_RUN, os.X_OK)


def test_setup_installs_torch_before_the_package():
    text = SETUP_SH.read_text()
    assert text.index("install torch==2.13.0") < text.index('install -e ".[dev]"')
