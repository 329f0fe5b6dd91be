"""Where phases run: `open_executor` (in-process or the Ray Train phase pool) and sweep trials.

Importing this package imports no Ray: the Ray modules load only when the Ray executor is used.
"""
from cl_sim.execution.base import Executor, Session, executor_kind, open_executor, open_session, resolve

__all__ = ["Executor", "Session", "executor_kind", "open_executor", "open_session", "resolve"]
