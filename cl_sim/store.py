"""The durable adapter store: one safetensors file per finished phase, keyed by content.

    store = Store("runs/store")
    store.put(key, {"adapter": {...}, "head": {...}}, meta={...})
    states = store.states(key)   # verified against the sha256 in its manifest entry

Layout: `<root>/states/<key>.safetensors` plus `<root>/manifest/<key>.json` holding the file's
sha256, byte size, tensor groups and the phase's metrics. Both are written atomically and the
manifest entry last, so an entry that is listed is complete; a crash leaves no half entry.
The root may be a filesystem URI every node reaches (`s3://…`; `cl_sim.storage`): object stores
have no rename, but a PUT is atomic, and the manifest-last order is the commit point there too.
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
from safetensors.torch import load, save

from cl_sim.errors import StoreError
from cl_sim.io import json_default
from cl_sim.storage import Files, is_uri

States = dict[str, dict[str, torch.Tensor]]  # group ("adapter", "head", ...) -> tensors


def flatten(states: States) -> dict[str, torch.Tensor]:
    return {f"{g}/{k}": v.contiguous() for g, part in states.items() for k, v in part.items()}


def unflatten(flat: dict[str, torch.Tensor]) -> States:
    states: States = {}
    for name, v in sorted(flat.items()):  # name order, whatever order the file holds them in
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
    """`root`: a folder, or a filesystem URI every node reaches (`s3://bucket/prefix`, see
    `cl_sim.storage`): the same layout and checks on both."""

    def __init__(self, root: str | Path, cache_entries: int = 64):
        self.root = str(root) if is_uri(root) else Path(root)
        self.files = Files(root)
        if not self.files.uri:
            (self.root / "states").mkdir(parents=True, exist_ok=True)
            (self.root / "manifest").mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, States] = OrderedDict()
        self._cache_entries = cache_entries

    def _paths(self, key: str) -> tuple[str, str]:
        return f"states/{key}.safetensors", f"manifest/{key}.json"

    def has(self, key: str) -> bool:
        return self.files.exists(self._paths(key)[1])

    def keys(self) -> list[str]:
        return self.files.names("manifest", ".json")

    def meta(self, key: str) -> dict:
        path = self._paths(key)[1]
        if not self.files.exists(path):
            raise StoreError(f"store {self.root}: no entry '{key}'")
        try:
            return json.loads(self.files.read(path))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise StoreError(f"store {self.root}: manifest entry {key}.json is corrupt; delete it to retrain") from None

    def states(self, key: str) -> States:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        entry = self.meta(key)
        path = self._paths(key)[0]
        if not self.files.exists(path):
            raise StoreError(f"store {self.root}: state file {key}.safetensors is missing for entry '{key}'")
        blob = self.files.read(path)
        digest = hashlib.sha256(blob).hexdigest()
        if "check" in entry and manifest_check(entry) != entry["check"]:
            raise StoreError(f"store {self.root}: manifest entry '{key}' is corrupt (its check does not match); "
                             f"delete it to retrain")
        if digest != entry["sha256"]:
            raise StoreError(f"store {self.root}: {key}.safetensors is corrupt (sha256 {digest[:12]} != manifest "
                             f"{entry['sha256'][:12]}); delete it and its manifest entry to retrain")
        states = unflatten(load(blob))
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
        blob = save(flatten(states))
        self.files.write(tensors_path, blob)  # the blob first: the manifest (last) commits the entry
        entry = {
            "key": key,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "bytes": len(blob),
            "groups": {g: sum(v.numel() for v in part.values()) for g, part in states.items()},
            **meta,
        }
        entry = json.loads(json.dumps(entry, default=json_default, allow_nan=False))  # as it reads back
        entry["check"] = manifest_check(entry)
        self.files.write(manifest_path, json.dumps(entry, indent=2, sort_keys=True).encode())
        self._remember(key, states)
        return entry

    def _remember(self, key: str, states: States) -> None:
        self._cache[key] = states
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)

    # evaluation scores are cached beside the states: keyed by (deployment, task split)
    def score(self, key: str) -> Optional[tuple[float, Optional[list]]]:
        path = f"scores/{key}.json"
        if not self.files.exists(path):
            return None
        entry = json.loads(self.files.read(path))
        return entry["score"], entry.get("attention")

    def put_score(self, key: str, score: float, attention: Optional[list] = None,
                  refs: Optional[list] = None) -> None:
        """Cache a score; `refs` are the entries it was computed from (for `cl-sim store gc`)."""
        entry = {"score": score, "attention": attention, "refs": list(refs or [])}
        self.files.write(f"scores/{key}.json", json.dumps(entry, default=json_default, allow_nan=False).encode())

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
