"""What a driver prints of Ray's forwarded logs: raylet's worker start-up warning only with --verbose."""
import pytest
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
