"""Task sources: synthetic tasks, local files, Hugging Face datasets, and batching.

``hf`` imports ``datasets`` only when called; nothing here imports Ray.
"""
from cl_sim.data.files import SHARED_TASKS, load_file_task, shared_task, task_from_tables
from cl_sim.data.hf import load_hf_task
from cl_sim.data.synthetic import (
    FILLER_WORDS,
    SIGNAL_WORDS,
    SYNTHETIC_DEFAULT,
    base_rule,
    default_stream,
    make_synthetic_task,
    task_rule,
)
from cl_sim.data.task import KINDS, METRICS, Split, Task, carve_dev, stable_seed
from cl_sim.data.tokenize import EncodedSplit, batches, collate, encode_split, iterate

__all__ = [
    "FILLER_WORDS",
    "KINDS",
    "METRICS",
    "SHARED_TASKS",
    "SIGNAL_WORDS",
    "SYNTHETIC_DEFAULT",
    "EncodedSplit",
    "Split",
    "Task",
    "base_rule",
    "batches",
    "carve_dev",
    "collate",
    "default_stream",
    "encode_split",
    "iterate",
    "load_file_task",
    "load_hf_task",
    "make_synthetic_task",
    "shared_task",
    "stable_seed",
    "task_from_tables",
    "task_rule",
]
