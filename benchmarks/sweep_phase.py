"""What benchmarks/precision.py and benchmarks/length_groups.py share: the big sweep's adapter phase
(MiniLM, Pfeiffer, 500 examples x 1 epoch, batch 16, length 64, lr 3e-3, no dev pass), its command
line, and its tasks (real ones from ../shared/data, or one synthetic task for --smoke)."""
from __future__ import annotations

import argparse
import os

import torch

from cl_sim.config import Config, TaskConfig, load_config
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.data.task import Task
from cl_sim.tasks import load_task

DATA = os.environ.get("CL_SIM_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def parser(doc: str, tasks: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=tasks)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--examples", type=int, default=500, help="training examples per phase")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 = one pool slot's share)")
    p.add_argument("--smoke", action="store_true", help="tiny random BERT, one synthetic task: seconds")
    return p


def sweep_config(args) -> Config:
    """The big sweep's adapter-phase settings (threads set as asked)."""
    torch.set_num_threads(args.threads)
    return load_config(None, [f"backbone.name={'tiny-bert' if args.smoke else 'minilm'}", "backbone.max_length=64",
                              "adapter.kind=pfeiffer", "training.epochs=1", "training.batch_size=16",
                              "training.lr=0.003", f"training.max_train_examples={args.examples}",
                              "training.dev_examples=0"])


def tasks(args):
    """(name, Task) for each task asked for, loaded as it is reached."""
    for name in (["synthetic"] if args.smoke else args.tasks.split(",")):
        yield name, (make_synthetic_task("synthetic", "a", n_train=256, n_dev=64, n_test=256, seed=0) if args.smoke
                     else load_task(TaskConfig(name=name, source="shared"), DATA, 0))
