"""Turn the config's task list into loaded `Task`s, and compute task embeddings for teacher
selection by similarity."""
from __future__ import annotations

import functools

import numpy as np
import torch

from cl_sim.config import Config, TaskConfig
from cl_sim.data.files import load_file_task, shared_task
from cl_sim.data.hf import load_hf_task
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.data.task import Task


def load_task(tc: TaskConfig, data_root: str | None, seed: int) -> Task:
    if tc.source == "synthetic":
        return make_synthetic_task(tc.name, tc.family, tc.relatedness, tc.n_train, tc.n_dev, tc.n_test,
                                   tc.n_classes, seed=seed, tenant=tc.tenant, n_signal_words=tc.n_signal_words,
                                   n_filler_words=tc.n_filler_words)
    if tc.source == "shared":
        return shared_task(tc.dataset or tc.name, data_root, tc.tenant, task_name=tc.name)
    if tc.source == "file":
        return load_file_task(tc.name, dict(tc.paths), list(tc.text_columns), tc.label_column, tc.label_type,
                              tc.metric, tc.format, tc.header, tc.tenant, data_root,
                              dev_from_train=tc.dev_from_train, drop_empty_text=tc.drop_empty_text)
    return load_hf_task(tc.name, tc.hf_path, tc.hf_config, list(tc.text_columns), tc.label_column,
                        dict(tc.hf_splits), tc.label_type, tc.metric, tc.tenant, dev_from_train=tc.dev_from_train,
                        drop_empty_text=tc.drop_empty_text)


def load_tasks(cfg: Config) -> dict[str, Task]:
    """Load every task the config lists (data errors name the task and the file)."""
    return {tc.name: load_task(tc, cfg.data_root, cfg.training.seed) for tc in cfg.tasks}


@functools.lru_cache(maxsize=256)
def _embedding(backbone: str, data_hash: str, texts: tuple, max_length: int) -> np.ndarray:
    from cl_sim.phases import cached_backbone

    model, tokenizer = cached_backbone(backbone)
    with torch.no_grad():
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        enc.pop("token_type_ids", None)
        hidden = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        v = ((hidden * m).sum(1) / m.sum(1)).mean(0).numpy()
    return v / (np.linalg.norm(v) + 1e-12)


def task_embedding(task: Task, backbone: str, max_length: int = 64, n: int = 128) -> np.ndarray:
    """Mean-pooled frozen-backbone embedding of the first n training texts (computed once per task)."""
    texts = tuple(" ".join(t) for t in task.splits["train"].texts[:n])
    return _embedding(backbone, task.data_hash(), texts, max_length)
