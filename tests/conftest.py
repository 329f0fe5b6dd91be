"""Test-wide settings: the default phase store (`execution.store_dir` unset) is a fresh folder per
test session, never the developer's `~/.cache/cl_sim/store` (`cl_sim.config.default_store_dir`),
removed when the session ends."""
import atexit
import os
import shutil
import tempfile

os.environ["CL_SIM_STORE"] = tempfile.mkdtemp(prefix="cl_sim-test-store-")
atexit.register(shutil.rmtree, os.environ["CL_SIM_STORE"], ignore_errors=True)
