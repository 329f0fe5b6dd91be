"""The core has no Ray import (STYLE principle 1): Ray lives in cl_sim/execution/ only."""
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cl_sim"
CORE = ["cl_sim", "cl_sim.config", "cl_sim.simulate", "cl_sim.cli", "cl_sim.methods", "cl_sim.train",
        "cl_sim.phases", "cl_sim.store", "cl_sim.tasks", "cl_sim.metrics", "cl_sim.results", "cl_sim.timeline",
        "cl_sim.report.run", "cl_sim.execution.local"]
RAY_IMPORT = re.compile(r"^\s*(import\s+ray\b|from\s+ray\b)", re.MULTILINE)


def test_importing_the_core_does_not_import_ray():
    modules = [m for m in CORE if importlib.util.find_spec(m) is not None]
    code = textwrap.dedent(f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
        print("RAY:" + ",".join(loaded))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "RAY:\n" in result.stdout, result.stdout  # nothing from ray was loaded


def test_no_ray_import_statement_outside_execution():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "execution" in path.relative_to(PACKAGE).parts:
            continue
        for match in RAY_IMPORT.finditer(path.read_text()):
            line = path.read_text()[: match.start()].count("\n") + 1
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    assert offenders == []


def test_the_pattern_catches_real_ray_imports():
    # guard against a regex that silently matches nothing
    assert RAY_IMPORT.search("import ray\n") and RAY_IMPORT.search("    from ray import train\n")
    assert RAY_IMPORT.search("import ray.tune as tune\n")
    assert not RAY_IMPORT.search("import rayleigh\n") and not RAY_IMPORT.search("# import ray\n")
