"""cl_sim: a Ray-distributed simulator for continual learning with adapters.

Importing the package loads nothing heavy (no torch, no Ray); the CLI is `cl_sim.cli`.
"""
from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version as _version

    __version__ = _version("cl_sim")
except PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0.0.0+unknown"
