"""How much a run says: `--quiet` (results only), normal (one line per finished phase or trial,
a live bar per phase on a terminal), `--verbose` (also transformers' and Ray's own output).

    set_verbosity(QUIET | NORMAL | VERBOSE)   # CLI and experiment flags; inherited by Ray workers
    bar = phase_bar(total_steps, "adapter sick")   # tqdm bar (a no-op off a terminal or when quiet)

The level travels in `$CL_SIM_VERBOSITY`, so Ray workers started after `set_verbosity` see it.
"""
from __future__ import annotations

import logging
import os
import re
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


# raylet's warning when a sweep starts its trials, pool actors and Train workers at once ("N PYTHON
# worker processes have been started on node ... maximum expected startup concurrency"): by design here
_RAY_STARTUP_CHATTER = re.compile(r"PYTHON worker processes have been started on node")


def quiet_ray_driver_logs() -> None:
    """Unless VERBOSE, drop raylet's worker start-up warning from what Ray forwards to this driver
    (everything else it forwards, raylet's real errors included, still prints). Call after
    `ray.init`; a no-op where Ray's log dispatcher differs from the one this was written against."""
    if verbosity() >= VERBOSE:
        return
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:  # pragma: no cover - another Ray layout: its lines stay
        return

    def filtered(handler):
        def emit(data: dict) -> None:
            if data.get("pid") == "raylet":
                lines = [line for line in data.get("lines", []) if not _RAY_STARTUP_CHATTER.search(line)]
                if not lines:
                    return
                data = {**data, "lines": lines}
            handler(data)
        emit.quiet = True
        return emit

    with dispatcher._lock:
        dispatcher.handlers = [(name, filtered(h) if name == "ray_print_logs" and not getattr(h, "quiet", False) else h)
                               for name, h in dispatcher.handlers]


def say(msg: str) -> None:
    """A progress line (not a result): printed unless quiet."""
    if verbosity() >= NORMAL:
        print(msg, flush=True)


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
