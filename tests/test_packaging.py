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


CONSTRAINTS = REPO / "scripts" / "constraints.txt"


def _requirement(deps: list[str], name: str) -> str:
    [req] = [re.sub(r"\s+", "", d) for d in deps if re.match(rf"^{name}\b(?![-_.\w])", d.strip())]
    return req


def test_package_declares_ranges_and_the_constraints_file_pins_the_tested_versions(project):
    # exact pins in the metadata would stop users installing cl_sim beside any other torch/Ray;
    # setup.sh installs the tested versions from scripts/constraints.txt instead
    torch_req = _requirement(project["dependencies"], "torch")
    assert "==" not in torch_req and ">=" in torch_req
    pins = dict(line.split("==") for line in CONSTRAINTS.read_text().splitlines() if "==" in line and not line.startswith("#"))
    assert pins == {"torch": "2.13.0", "ray": "2.60.0"}
    from packaging.requirements import Requirement

    assert pins["torch"] in Requirement(torch_req).specifier
    assert pins["ray"] in Requirement(project["optional-dependencies"]["ray"][0]).specifier


def test_the_narrow_ray_range_covers_the_installed_ray_and_its_private_apis(project):
    """cl_sim reads private Ray APIs (the reason for the narrow range in pyproject.toml): they exist
    in the Ray installed here, and that Ray is inside the declared range."""
    ray = pytest.importorskip("ray")
    from packaging.requirements import Requirement

    assert ray.__version__ in Requirement(project["optional-dependencies"]["ray"][0]).specifier
    from ray._private import state, worker
    from ray._private.ray_logging import global_worker_stdstream_dispatcher

    assert callable(state.jobs) and callable(worker.print_to_stdstream) and hasattr(worker, "global_worker")
    assert hasattr(global_worker_stdstream_dispatcher, "handlers") and hasattr(global_worker_stdstream_dispatcher, "_lock")


def test_license_version_and_default_store(project, monkeypatch, tmp_path):
    import importlib.metadata

    import cl_sim
    from cl_sim.config import load_config

    assert "cl_sim developers" in (REPO / "LICENSE").read_text() and project["license"] == {"file": "LICENSE"}
    assert cl_sim.__version__ == importlib.metadata.version("cl_sim")
    monkeypatch.delenv("CL_SIM_STORE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert load_config(None, []).execution.store_dir == str(tmp_path / "cache" / "cl_sim" / "store")  # not runs/
    monkeypatch.setenv("CL_SIM_STORE", str(tmp_path / "mine"))
    assert load_config(None, []).execution.store_dir == str(tmp_path / "mine")
    assert load_config(None, ["execution.store_dir=~/s"]).execution.store_dir == str(Path.home() / "s")


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
    assert text.index("install torch==2.13.0") < text.index('-c "$ROOT/scripts/constraints.txt" -e ".[dev]"')
