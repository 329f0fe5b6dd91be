"""cl_sim: a Ray-distributed simulator for continual learning with adapters.

Importing the package loads nothing heavy (no torch, no Ray); the CLI is `cl_sim.cli`.
`cl_sim.__version__` is the installed distribution's version, read when first asked for (the
metadata lookup costs ~0.1 s, which `cl-sim --help` should not pay).
"""
from __future__ import annotations


def __getattr__(name: str):
    if name != "__version__":
        raise AttributeError(f"module 'cl_sim' has no attribute '{name}'")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("cl_sim")
    except PackageNotFoundError:  # a source checkout that was never installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
