"""The durable adapter store: one safetensors file per finished phase, keyed by content.

    store = Store("runs/store")
    store.put(key, {"adapter": {...}, "head": {...}}, meta={...})
    states = store.states(key)   # verified against the sha256 in its manifest entry

Layout: `<root>/states/<key>.safetensors` plus `<root>/manifest/<key>.json` holding the file's
sha256, byte size, tensor groups and the phase's metrics. Both are written atomically and the
manifest entry last, so an entry that is listed is complete; a crash leaves no half entry.
Per-entry manifest files let many processes (Ray workers, sweep trials) add entries without a
shared lock. Keys are content-derived (see `cl_sim.phases.Phase.key`), so a phase already
computed by any run or trial is found here instead of being trained again.

Checkpoints and the store hold adapter/head/fusion state (and, only for the full fine-tuning
reference methods, a backbone), never a shared frozen backbone.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from cl_sim.errors import StoreError
from cl_sim.io import _json_default, atomic_save_file, atomic_write_json

States = dict[str, dict[str, torch.Tensor]]  # group ("adapter", "head", ...) -> tensors


def flatten(states: States) -> dict[str, torch.Tensor]:
    return {f"{g}/{k}": v.contiguous() for g, part in states.items() for k, v in part.items()}


def unflatten(flat: dict[str, torch.Tensor]) -> States:
    states: States = {}
    for name, v in flat.items():
        g, _, k = name.partition("/")
        states.setdefault(g, {})[k] = v
    return states


def manifest_check(entry: dict) -> str:
    """sha256 of a manifest entry's canonical JSON (without its own 'check' field): a flipped
    byte anywhere in the manifest shows, not only in the state file it names."""
    body = {k: v for k, v in entry.items() if k != "check"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Store:
    def __init__(self, root: str | Path, cache_entries: int = 64):
        self.root = Path(root)
        (self.root / "states").mkdir(parents=True, exist_ok=True)
        (self.root / "manifest").mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, States] = OrderedDict()
        self._cache_entries = cache_entries

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / "states" / f"{key}.safetensors", self.root / "manifest" / f"{key}.json"

    def has(self, key: str) -> bool:
        return self._paths(key)[1].is_file()

    def keys(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "manifest").glob("*.json"))

    def meta(self, key: str) -> dict:
        path = self._paths(key)[1]
        if not path.is_file():
            raise StoreError(f"store {self.root}: no entry '{key}'")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise StoreError(f"store {self.root}: manifest entry {path.name} is corrupt; delete it to retrain") from None

    def states(self, key: str) -> States:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        entry = self.meta(key)
        path = self._paths(key)[0]
        if not path.is_file():
            raise StoreError(f"store {self.root}: state file {path.name} is missing for entry '{key}'")
        digest = sha256_file(path)
        if "check" in entry and manifest_check(entry) != entry["check"]:
            raise StoreError(f"store {self.root}: manifest entry '{key}' is corrupt (its check does not match); "
                             f"delete it to retrain")
        if digest != entry["sha256"]:
            raise StoreError(f"store {self.root}: {path.name} is corrupt (sha256 {digest[:12]} != manifest "
                             f"{entry['sha256'][:12]}); delete it and its manifest entry to retrain")
        states = unflatten(load_file(str(path)))
        self._remember(key, states)
        return states

    def put(self, key: str, states: States, meta: dict) -> dict:
        """Write the tensors, then the manifest entry; returns the entry. Idempotent per key."""
        if self.has(key):
            return self.meta(key)
        off_cpu = sorted({str(v.device) for part in states.values() for v in part.values() if v.device.type != "cpu"})
        if off_cpu:  # the boundary every process shares: a CPU-only store actor cannot load CUDA tensors
            raise StoreError(f"store: entry '{key}' holds tensors on {', '.join(off_cpu)}; states enter the "
                             f"store as CPU tensors (cl_sim.phases.to_cpu)")
        tensors_path, manifest_path = self._paths(key)
        flat = flatten(states)
        atomic_save_file(tensors_path, lambda tmp: save_file(flat, tmp))
        entry = {
            "key": key,
            "sha256": sha256_file(tensors_path),
            "bytes": tensors_path.stat().st_size,
            "groups": {g: sum(v.numel() for v in part.values()) for g, part in states.items()},
            **meta,
        }
        entry = json.loads(json.dumps(entry, default=_json_default, allow_nan=False))  # as it reads back
        entry["check"] = manifest_check(entry)
        atomic_write_json(manifest_path, entry)
        self._remember(key, states)
        return entry

    def _remember(self, key: str, states: States) -> None:
        self._cache[key] = states
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)

    # evaluation scores are cached beside the states: keyed by (deployment, task split)
    def score(self, key: str) -> Optional[tuple[float, Optional[list]]]:
        path = self.root / "scores" / f"{key}.json"
        if not path.is_file():
            return None
        entry = json.loads(path.read_text())
        return entry["score"], entry.get("attention")

    def put_score(self, key: str, score: float, attention: Optional[list] = None,
                  refs: Optional[list] = None) -> None:
        """Cache a score; `refs` are the entries it was computed from (for `cl-sim store gc`)."""
        atomic_write_json(self.root / "scores" / f"{key}.json",
                          {"score": score, "attention": attention, "refs": list(refs or [])})

    def foreign(self, backbone: str, fingerprint: str) -> list[str]:
        """Entries trained on `backbone` under another fingerprint (code, weights or versions):
        their keys can never match this code's, so they are ignored, never reused or deleted."""
        out = []
        for key in self.keys():
            try:
                entry = self.meta(key)
            except StoreError:
                continue
            if entry.get("phase", {}).get("backbone") == backbone and entry.get("fingerprint") != fingerprint:
                out.append(key)
        return out
