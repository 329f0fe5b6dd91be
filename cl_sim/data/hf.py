"""Tasks from Hugging Face ``datasets``: a hub name, or a locally saved DatasetDict.

``datasets`` is imported inside the function, so the rest of ``cl_sim`` works without it.
Validation is the same as for local files (``files.task_from_tables``).

Example::

    task = load_hf_task("rte", "glue", "rte", text_columns=["sentence1", "sentence2"],
                        label_column="label")           # needs network the first time
    task = load_hf_task("rte", "/data/rte_saved", text_columns=[...], label_column="label")
"""
from __future__ import annotations

import os
from pathlib import Path

from cl_sim.data.files import Table, check_spec, task_from_tables
from cl_sim.data.task import Task
from cl_sim.errors import DataError

DEFAULT_SPLITS = {"train": "train", "dev": "validation"}


def _open_dataset(name: str, path: str, config_name: str | None):
    """``load_from_disk`` for a local folder, else ``load_dataset`` (hub or local script)."""
    import datasets

    local = Path(path).expanduser()
    if local.is_dir() and (local / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(local))
    if local.is_dir() and (local / "dataset_info.json").is_file():
        raise DataError(
            f"task {name!r}: {local} holds a single saved Dataset; save a DatasetDict "
            "(with its splits) instead"
        )
    try:
        return datasets.load_dataset(path, config_name)
    except Exception as e:  # noqa: BLE001 - datasets raises many types; report one
        raise DataError(f"task {name!r}: cannot load dataset {path!r} ({config_name}): {e}") from e


def _class_names(dataset, label_column: str):
    """ClassLabel names of the label column, or None when it is not a ClassLabel."""
    import datasets

    feature = dataset.features.get(label_column)
    if isinstance(feature, datasets.ClassLabel):
        return tuple(feature.names)
    return None


def load_hf_task(
    name: str,
    path: str,
    config_name: str | None = None,
    text_columns: list | None = None,
    label_column: str = "label",
    splits: dict[str, str] | None = None,
    label_type: str = "classification",
    metric: str = "accuracy",
    tenant: str = "default",
    dev_from_train: float = 0.0,
    drop_empty_text: bool = False,
) -> Task:
    """Load a task with ``datasets``.

    Args:
        name: task name.
        path: a hub dataset name ("glue", "super_glue", ...) or a local folder written by
            ``DatasetDict.save_to_disk`` (then loaded with ``load_from_disk``).
        config_name: the dataset configuration ("rte"); ignored for a local folder.
        text_columns: text segment columns, as in ``load_file_task`` (required).
        label_column: the label column. A ClassLabel feature gives the class names.
        splits: our split name -> the dataset's split name; default
            ``{"train": "train", "dev": "validation"}``. Add "test" only when the test
            split has labels (GLUE test labels are -1 and are rejected).
        label_type: "classification", "regression" or "multiple_choice".
        metric: as in ``load_file_task``.
        tenant: owning tenant.
        dev_from_train: without a "dev" entry in ``splits``, carve this fraction of train.
        drop_empty_text: as in ``load_file_task`` (default: rows with empty text are an error).

    Returns:
        A ``Task``.

    Raises:
        DataError: dataset or split not found, missing column, empty split, unknown labels.
    """
    if not text_columns:
        raise DataError(f"task {name!r}: text_columns is required")
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    check_spec(name, splits, label_type, metric, dev_from_train)  # before any download
    ds = _open_dataset(name, os.fspath(path), config_name)
    tables, label_names = {}, None
    for ours, theirs in splits.items():
        if theirs not in ds:
            raise DataError(
                f"task {name!r}: split {theirs!r} not in dataset {path!r}; available: {list(ds)}"
            )
        part = ds[theirs]
        where = tuple(f"{path}[{theirs}] row {i}" for i in range(len(part)))
        tables[ours] = Table(part.to_dict(), where)
        if ours == "train" and label_type == "classification":
            label_names = _class_names(part, label_column)
    return task_from_tables(
        name, tables, text_columns, label_column, label_type, metric, tenant,
        label_names=label_names, dev_from_train=dev_from_train, drop_empty_text=drop_empty_text,
    )
