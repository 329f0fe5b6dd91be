"""What a driver prints of Ray's forwarded logs: raylet's worker start-up warning only with --verbose."""
import pytest
from ray._private import worker
from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

from cl_sim import progress
from cl_sim.execution.ray_logs import quiet_ray_driver_logs

CHATTER = ("WARNING: 10 PYTHON worker processes have been started on node: abc with address: 10.0.0.1, "
           "which is 5x the maximum expected startup concurrency (2).")


@pytest.fixture
def printed(monkeypatch):
    """Ray's print handler as `ray.init(log_to_driver=True)` installs it, recording instead."""
    got = []
    monkeypatch.setattr(dispatcher, "handlers", [("ray_print_logs", got.append), ("other", lambda d: None)])
    return got


@pytest.fixture
def errors_printed(monkeypatch):
    """The printer Ray's error listener calls for raylet's messages (`listen_error_messages`), recording."""
    got = []
    monkeypatch.setattr(worker, "print_to_stdstream", lambda data, ignore_prefix: got.append(data))
    return got


@pytest.mark.parametrize("level", [progress.QUIET, progress.NORMAL])
def test_startup_warning_from_rays_error_listener_is_dropped(monkeypatch, errors_printed, level):
    """Where the warning really comes from: raylet pushes it as an error, the driver's listener prints
    it with `worker.print_to_stdstream` (looked up in the module at each call)."""
    monkeypatch.setenv(progress.ENV, str(level))
    quiet_ray_driver_logs()
    quiet_ray_driver_logs()
    worker.print_to_stdstream({"lines": [CHATTER], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    worker.print_to_stdstream({"lines": ["raylet: out of memory"], "pid": "raylet", "is_err": False},
                              ignore_prefix=False)
    assert errors_printed == [{"lines": ["raylet: out of memory"], "pid": "raylet", "is_err": False}]


def test_verbose_keeps_the_error_listeners_warning(monkeypatch, errors_printed):
    monkeypatch.setenv(progress.ENV, str(progress.VERBOSE))
    quiet_ray_driver_logs()
    worker.print_to_stdstream({"lines": [CHATTER], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    assert errors_printed == [{"lines": [CHATTER], "pid": "raylet", "is_err": False}]


@pytest.mark.parametrize("level", [progress.QUIET, progress.NORMAL])
def test_startup_chatter_is_dropped_and_everything_else_kept(monkeypatch, printed, level):
    monkeypatch.setenv(progress.ENV, str(level))
    quiet_ray_driver_logs()
    quiet_ray_driver_logs()  # a second init (a trial joining) does not wrap twice
    dispatcher.emit({"pid": "raylet", "lines": [CHATTER]})
    dispatcher.emit({"pid": "raylet", "lines": [CHATTER, "[2026-12-04] raylet crashed: SIGSEGV"]})
    dispatcher.emit({"pid": 123, "lines": [CHATTER, "epoch 1"]})  # a worker's own output is never touched
    assert printed == [{"pid": "raylet", "lines": ["[2026-12-04] raylet crashed: SIGSEGV"]},
                       {"pid": 123, "lines": [CHATTER, "epoch 1"]}]


def test_verbose_keeps_rays_startup_chatter(monkeypatch, printed):
    monkeypatch.setenv(progress.ENV, str(progress.VERBOSE))
    quiet_ray_driver_logs()
    dispatcher.emit({"pid": "raylet", "lines": [CHATTER]})
    assert printed == [{"pid": "raylet", "lines": [CHATTER]}]
