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

import hashlib
import json
import time
from dataclasses import dataclass

from cl_sim.errors import StoreError
from cl_sim import fingerprint as fp
from cl_sim.store import Store, manifest_check


def read_manifest(store: Store, key: str) -> dict | None:
    """`key`'s manifest, or None where it is missing or unreadable."""
    try:
        return store.meta(key)
    except StoreError:
        return None


def is_current(entry: dict) -> bool:
    parts = entry.get("fingerprint_parts") or {}
    versions = {k: fp.public_version(v) for k, v in (parts.get("versions") or {}).items()}  # entries before tags were dropped
    return parts.get("code") == fp.code_version() and versions == fp.dependency_versions()


def where_ran(entry: dict) -> str:
    """`ray 2x cuda:0 (NVIDIA A10G, torch 2.13.0+cu128)`: executor, workers, device and torch build."""
    ex = entry.get("execution") or {}
    if not ex:
        return "-"
    device = ex.get("device", "?")
    name = ex.get("device_name")
    build = ex.get("torch")
    detail = ", ".join(x for x in (name if name and name != "cpu" else None, f"torch {build}" if build else None) if x)
    return f"{ex.get('executor', '?')} {ex.get('workers', 1)}x {device}" + (f" ({detail})" if detail else "")


def list_entries(store: Store) -> list[dict]:
    """One row per manifest entry (corrupt manifests are listed with kind '?')."""
    rows, now = [], time.time()
    for key in store.keys():
        entry = read_manifest(store, key) or {}
        phase = entry.get("phase", {})
        mtime = store.files.mtime(f"manifest/{key}.json")
        rows.append({"key": key, "kind": phase.get("kind", "?"), "task": phase.get("task", "?"),
                     "bytes": entry.get("bytes", 0), "age_s": None if mtime is None else now - mtime,
                     "fingerprint": entry.get("fingerprint", "none"), "ran": where_ran(entry),
                     "current": bool(entry) and is_current(entry)})
    return rows


def verify(store: Store) -> list[str]:
    """Every manifest parses and names a state file of the recorded size and sha256; every
    cached score parses. Returns one line per problem."""
    problems = []
    for key in store.keys():
        entry = read_manifest(store, key)
        if entry is None or "sha256" not in entry:
            problems.append(f"{key}: manifest entry is corrupt")
            continue
        if "check" in entry and manifest_check(entry) != entry["check"]:
            problems.append(f"{key}: manifest entry does not match its check")
        state = f"states/{key}.safetensors"
        if not store.files.exists(state):
            problems.append(f"{key}: state file {key}.safetensors is missing")
        elif (digest := hashlib.sha256(store.files.read(state)).hexdigest()) != entry["sha256"]:
            problems.append(f"{key}: {key}.safetensors sha256 {digest[:12]} != manifest {entry['sha256'][:12]}")
    for name in store.files.names("scores", ".json"):
        try:
            float(json.loads(store.files.read(f"scores/{name}.json"))["score"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"score {name}: cache file is corrupt")
    return problems


@dataclass
class Removal:
    path: str  # relative to the store's root: `manifest/<key>.json`, `states/<key>.safetensors`, ...
    reason: str


def gc_plan(store: Store) -> list[Removal]:
    """Files `gc` removes: entries from another code version, state files without a manifest,
    interrupted temporary files, and cached scores whose entries are gone or not current."""
    plan, current = [], set()
    for key in store.keys():
        entry = read_manifest(store, key)
        if entry is not None and is_current(entry):
            current.add(key)
            continue
        why = "another code version" if entry is not None else "corrupt manifest"
        plan.append(Removal(f"manifest/{key}.json", why))
        if store.files.exists(f"states/{key}.safetensors"):
            plan.append(Removal(f"states/{key}.safetensors", why))
    listed = set(store.keys())
    for name in store.files.names("states", ".safetensors"):
        if name not in listed:
            plan.append(Removal(f"states/{name}.safetensors", "no manifest entry"))
    for tmp in store.files.leftovers():
        plan.append(Removal(tmp, "interrupted write"))
    for name in store.files.names("scores", ".json"):
        try:
            refs = json.loads(store.files.read(f"scores/{name}.json")).get("refs") or []
        except ValueError:
            refs = []
        if not refs or not set(refs) <= current:
            plan.append(Removal(f"scores/{name}.json", "score of entries that are gone or not current"))
    return plan


def remove(store: Store, plan: list[Removal]) -> int:
    """Delete the planned files (manifests first, so no listed entry loses its state file)."""
    for r in sorted(plan, key=lambda r: not r.path.startswith("manifest/")):
        store.files.delete(r.path)
    return sum(1 for r in plan if r.path.startswith("manifest/"))


def foreign_note(store: Store, backbone: str) -> str | None:
    """The line a run prints when the store holds entries it must not reuse (None: there are none)."""
    n = len(store.foreign(backbone, fp.fingerprint(backbone)))
    if not n:
        return None
    return (f"store: {n} entries from another code version or other '{backbone}' weights ignored "
            f"(kept; `cl-sim store gc` lists them)")
