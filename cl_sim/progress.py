"""How much a run says: `--quiet` (results only), normal (one line per finished phase or trial,
a live bar per phase on a terminal), `--verbose` (also transformers' and Ray's own output).

    set_verbosity(QUIET | NORMAL | VERBOSE)   # CLI and experiment flags; inherited by Ray workers
    bar = phase_bar(total_steps, "adapter sick")   # tqdm bar (a no-op off a terminal or when quiet)

The level travels in `$CL_SIM_VERBOSITY`, so Ray workers started after `set_verbosity` see it.
"""
from __future__ import annotations

import logging
import os
import sys

QUIET, NORMAL, VERBOSE = 0, 1, 2
ENV = "CL_SIM_VERBOSITY"


def verbosity() -> int:
    try:
        return int(os.environ.get(ENV, NORMAL))
    except ValueError:
        return NORMAL


def set_verbosity(level: int) -> None:
    """Set the level for this process and the Ray processes it starts; quiet other libraries
    unless VERBOSE: transformers' progress bars and warnings, Ray Tune's INFO hints."""
    os.environ[ENV] = str(level)
    if level < VERBOSE:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's boxed config table and TensorBoard hint
        if not sys.stdout.isatty():  # a log file: no ANSI colour codes around Ray's "(pid=...)" prefixes
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        for name in ("ray.tune", "ray.train", "ray.air"):  # "View detailed results", TensorBoard hint
            logging.getLogger(name).setLevel(logging.WARNING)
        # "Token authentication is enabled for this Ray cluster" at every local start: on is right
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - transformers is a dependency
            pass


def say(msg: str) -> None:
    """A progress line (not a result): printed on stderr unless quiet, so that `cl-sim ... > out.txt`
    captures the results alone."""
    if verbosity() >= NORMAL:
        print(msg, file=sys.stderr, flush=True)


class _NoBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix_str(self, s: str) -> None: ...

    def close(self) -> None: ...


def phase_bar(total: int, desc: str, rank: int = 0):
    """A live bar (steps, examples/s, ETA) for one phase on rank 0 in a terminal; else a no-op
    (logs get the one line per finished phase instead)."""
    if rank != 0 or verbosity() < NORMAL or not sys.stderr.isatty():
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)
