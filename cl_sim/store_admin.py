"""Inspect and prune a store: `cl-sim store ls | verify | gc`.

    rows = list_entries(store)      # one dict per entry: key, kind, task, bytes, age, fingerprint state
    problems = verify(store)        # [] when every manifest parses and every file matches its sha256
    plan = gc_plan(store)           # what `gc` would remove, and why; `remove(store, plan)` does it

An entry is *current* when its manifest records this code version and these dependency versions
(`cl_sim.fingerprint`); entries written before fingerprints existed count as another version.
Backbone weights are not re-hashed here (that would load every backbone): a run reports entries
whose weights differ when it opens the store.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from cl_sim.errors import StoreError
from cl_sim import fingerprint as fp
from cl_sim.store import Store, manifest_check, sha256_file


def _manifest(store: Store, key: str) -> dict | None:
    try:
        return store.meta(key)
    except StoreError:
        return None


def is_current(entry: dict) -> bool:
    parts = entry.get("fingerprint_parts") or {}
    return parts.get("code") == fp.code_version() and parts.get("versions") == fp.dependency_versions()


def list_entries(store: Store) -> list[dict]:
    """One row per manifest entry (corrupt manifests are listed with kind '?')."""
    rows, now = [], time.time()
    for key in store.keys():
        entry = _manifest(store, key) or {}
        phase = entry.get("phase", {})
        path = store.root / "manifest" / f"{key}.json"
        rows.append({"key": key, "kind": phase.get("kind", "?"), "task": phase.get("task", "?"),
                     "bytes": entry.get("bytes", 0), "age_s": now - path.stat().st_mtime,
                     "fingerprint": entry.get("fingerprint", "none"),
                     "current": bool(entry) and is_current(entry)})
    return rows


def verify(store: Store) -> list[str]:
    """Every manifest parses and names a state file of the recorded size and sha256; every
    cached score parses. Returns one line per problem."""
    problems = []
    for key in store.keys():
        entry = _manifest(store, key)
        if entry is None or "sha256" not in entry:
            problems.append(f"{key}: manifest entry is corrupt")
            continue
        if "check" in entry and manifest_check(entry) != entry["check"]:
            problems.append(f"{key}: manifest entry does not match its check")
        path = store.root / "states" / f"{key}.safetensors"
        if not path.is_file():
            problems.append(f"{key}: state file {path.name} is missing")
        elif (digest := sha256_file(path)) != entry["sha256"]:
            problems.append(f"{key}: {path.name} sha256 {digest[:12]} != manifest {entry['sha256'][:12]}")
    for path in sorted((store.root / "scores").glob("*.json")):
        try:
            score = json.loads(path.read_text())["score"]
            float(score)
        except (ValueError, KeyError, TypeError):
            problems.append(f"score {path.stem}: cache file is corrupt")
    return problems


@dataclass
class Removal:
    path: Path
    reason: str


def gc_plan(store: Store) -> list[Removal]:
    """Files `gc` removes: entries from another code version, state files without a manifest,
    interrupted temporary files, and cached scores whose entries are gone or not current."""
    plan, current = [], set()
    for key in store.keys():
        entry = _manifest(store, key)
        if entry is not None and is_current(entry):
            current.add(key)
            continue
        why = "another code version" if entry is not None else "corrupt manifest"
        plan.append(Removal(store.root / "manifest" / f"{key}.json", why))
        state = store.root / "states" / f"{key}.safetensors"
        if state.is_file():
            plan.append(Removal(state, why))
    listed = set(store.keys())
    for state in sorted((store.root / "states").glob("*.safetensors")):
        if state.stem not in listed:
            plan.append(Removal(state, "no manifest entry"))
    for tmp in sorted(store.root.glob("*/.*.tmp")):
        plan.append(Removal(tmp, "interrupted write"))
    for path in sorted((store.root / "scores").glob("*.json")):
        try:
            refs = json.loads(path.read_text()).get("refs") or []
        except ValueError:
            refs = []
        if not refs or not set(refs) <= current:
            plan.append(Removal(path, "score of entries that are gone or not current"))
    return plan


def remove(plan: list[Removal]) -> int:
    """Delete the planned files (manifests first, so no listed entry loses its state file)."""
    ordered = sorted(plan, key=lambda r: r.path.parent.name != "manifest")
    for r in ordered:
        r.path.unlink(missing_ok=True)
    return sum(1 for r in plan if r.path.parent.name == "manifest")


def foreign_note(store: Store, backbone: str) -> str | None:
    """The line a run prints when the store holds entries it must not reuse (None: there are none)."""
    n = len(store.foreign(backbone, fp.fingerprint(backbone)))
    if not n:
        return None
    return (f"store: {n} entries from another code version or other '{backbone}' weights ignored "
            f"(kept; `cl-sim store gc` lists them)")
