"""Arrows point down: no import cycle in cl_sim/ (function-level imports included), sweeps are
plain data, and config validation reads the method registry without loading torch, the phases or
the method context."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph() -> dict[str, set[str]]:
    """Module -> the cl_sim modules it imports anywhere in its file (static, via ast)."""
    files = {}
    for path in (ROOT / "cl_sim").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:  # `from pkg.mod import func` -> pkg.mod
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules, or [] (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_import_cycle_in_cl_sim():
    graph = import_graph()
    assert "cl_sim.config" in graph and len(graph) > 30  # the walk found the package
    assert find_cycle(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_sweep_is_plain_data_and_config_reaches_only_the_method_registry():
    graph = import_graph()
    assert not {d for d in graph["cl_sim.sweep"] if d.startswith("cl_sim.execution")}
    # config validates method names against the registry, whose modules are plain functions and data
    assert not {d for d in reaches(graph, "cl_sim.config")
                if d.startswith(("cl_sim.execution", "cl_sim.phases", "cl_sim.kinds", "cl_sim.model"))
                or d == "cl_sim.methods.base"}


def test_loading_and_validating_a_config_loads_no_torch_or_ray():
    code = ("import sys; from cl_sim.config import load_config; load_config(None, ['method.name=i2i']); "
            "print(sorted(m for m in ('cl_sim.methods.base', 'cl_sim.phases', 'torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_config_s_phase_kind_names_are_the_registry_s():
    from cl_sim.config import PHASE_KINDS
    from cl_sim.kinds import KINDS

    assert PHASE_KINDS == tuple(KINDS)
