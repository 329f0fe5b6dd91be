"""Quieter Ray output, unless `--verbose`: what Ray prints by itself that says nothing to act on.

    quiet_ray_driver_logs()   # a driver, after ray.init: no raylet worker start-up warning
    quiet_report_log()        # a Train worker: no INFO line per ray.train.report
"""
from __future__ import annotations

import logging
import re

from cl_sim.progress import VERBOSE, verbosity

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


def quiet_report_log() -> None:
    """Hide Ray Train's INFO line per `report` (one per epoch): its logger is named after its file
    path, so `RunConfig(logging_config=LoggingConfig("WARNING"))` does not reach it (Ray 2.60)."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray version: nothing to quiet, or quieted already
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)
