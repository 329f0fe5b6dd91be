"""Write a run's results: Parquet tables + JSON summary + the resolved config, atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cl_sim.config import Config, config_hash, save_config
from cl_sim.io import atomic_write_json, atomic_write_parquet


def run_dir(cfg: Config) -> Path:
    name = cfg.output.name or f"{cfg.method.name}-{config_hash(cfg)}"
    return Path(cfg.output.dir) / name


def tag(rows: list[dict], **cols) -> pd.DataFrame:
    return pd.DataFrame([{**cols, **r} for r in rows])


def write_run(cfg: Config, rec, out: Path, executor) -> dict[str, Path]:
    """Tables that depend only on config + seed (matrix, tasks, attention, summary) are
    bit-identical across reruns; wall times live in phases.parquet."""
    out.mkdir(parents=True, exist_ok=True)
    ident = dict(method=cfg.method.name, seed=cfg.training.seed, ordering=">".join(rec.ordering))
    paths = {"config": out / "config.yaml", "matrix": out / "matrix.parquet", "tasks": out / "tasks.parquet",
             "phases": out / "phases.parquet", "summary": out / "summary.json"}
    save_config(cfg, paths["config"])
    atomic_write_parquet(paths["matrix"], tag(rec.matrix, **ident))
    atomic_write_parquet(paths["tasks"], tag(rec.tasks, **ident))
    atomic_write_parquet(paths["phases"], tag(rec.phases, **ident))
    if rec.attention:
        paths["attention"] = out / "attention.parquet"
        atomic_write_parquet(paths["attention"], tag(rec.attention, **ident))
    atomic_write_json(paths["summary"], {**ident, "ordering": list(rec.ordering), **rec.summary,
                                         "R": [[None if np.isnan(x) else float(x) for x in row] for row in rec.R]})
    return paths
