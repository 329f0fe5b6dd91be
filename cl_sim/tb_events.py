"""TensorBoard event files for one run (`cl-sim run`): per-step training loss of every phase the run
trained or reused, each phase's dev score, and the stream's score per arrival.

    write_events(out / "tensorboard", store, rec)   # then: tensorboard --logdir runs/<run>/tensorboard

Tags: `loss/<arrival>-<task>/<kind>` (x = optimizer step; the curve is the phase's own, stored with
it, so a phase reused from the store shows the curve it was trained with), `dev_score/<kind>`
(x = phase index in the run), `stream/score`, `stream/running_avg` (x = arrival). Written with
tensorboardX (Ray Tune's own TensorBoard logger needs it too); without it, nothing is written and
the caller says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np


def writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def write_events(folder: Path, store, rec) -> Optional[Path]:
    """Write the run's event file under `folder`; None when tensorboardX is not installed."""
    SummaryWriter = writer_class()
    if SummaryWriter is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(logdir=str(folder))
    try:
        for index, row in enumerate(rec.phases):
            metrics = store.meta(row["key"])["metrics"]
            tag = f"{row['arrival'] + 1}-{row['task']}/{row['kind']}"
            for step, loss in enumerate(metrics.get("loss_curve") or (), start=1):
                writer.add_scalar(f"loss/{tag}", loss, step)
            if metrics.get("dev_score") is not None:
                writer.add_scalar(f"dev_score/{row['kind']}", metrics["dev_score"], index)
        R = np.asarray(rec.R, dtype=float)
        for i in range(len(rec.ordering)):
            writer.add_scalar("stream/score", R[i, i], i + 1)
            writer.add_scalar("stream/running_avg", float(np.nanmean(R[i, : i + 1])), i + 1)
    finally:
        writer.close()
    return folder
