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


def _without_chatter(data: dict):
    """`data` (Ray's forwarded-lines record) without raylet's start-up warning; None if nothing is left."""
    if data.get("pid") != "raylet":
        return data
    lines = [line for line in data.get("lines", []) if not _RAY_STARTUP_CHATTER.search(line)]
    return {**data, "lines": lines} if lines else None


def quiet_ray_driver_logs() -> None:
    """Unless VERBOSE, drop raylet's worker start-up warning from what Ray prints on this driver
    (everything else, raylet's real errors included, still prints). The warning reaches the driver as
    an error message, which Ray's error listener prints with `ray._private.worker.print_to_stdstream`;
    workers' forwarded logs go through the log dispatcher: both are filtered. Call after `ray.init`;
    a no-op where Ray's layout differs from the one this was written against (2.60)."""
    if verbosity() >= VERBOSE:
        return
    try:
        from ray._private import worker
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:  # pragma: no cover - another Ray layout: its lines stay
        return

    def filtered(handler):
        def emit(data: dict, *args, **kwargs) -> None:
            data = _without_chatter(data)
            if data is not None:
                handler(data, *args, **kwargs)
        emit.quiet = True
        return emit

    if not getattr(worker.print_to_stdstream, "quiet", False):
        worker.print_to_stdstream = filtered(worker.print_to_stdstream)  # looked up at call time
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
