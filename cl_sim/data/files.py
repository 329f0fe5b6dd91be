"""Tasks from local files: csv, tsv (GLUE-style, quoting off), jsonl, parquet.

A task spec names one file per split, the text column(s), the label column, label type
and metric. Every problem raises one ``DataError`` naming the task, file and line: unreadable
or truncated files, missing columns, texts or labels that are not single values (a JSON list or
object, a parquet list or struct), a train split with a single class (or constant regression
targets), and rows with an empty or whitespace-only text segment, which are refused unless the
task sets ``drop_empty_text`` (then they are dropped and counted in a warning).

Example::

    task = load_file_task("rte", {"train": "rte/train.tsv", "dev": "rte/dev.tsv"},
                          ["sentence1", "sentence2"], "label", data_root="../shared/data")
    task = shared_task("copa")  # one of SHARED_TASKS, found under $CL_SIM_DATA
"""
from __future__ import annotations

import csv
import logging
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np

from cl_sim.data.readers import Table, read_table
from cl_sim.data.task import KINDS, Split, Task, carve_dev, label_sort_key
from cl_sim.errors import ConfigError, DataError

FORMATS = ("csv", "tsv", "jsonl", "parquet", "label_text", "text_semicolon_label")
SPLIT_NAMES = ("train", "dev", "test")
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
_KIND_METRICS = {
    "classification": ("accuracy", "f1", "matthews"),
    "multiple_choice": ("accuracy", "f1", "matthews"),
    "regression": ("pearson", "spearman"),
}
DATA_ENV = "CL_SIM_DATA"
log = logging.getLogger("cl_sim.data")


def resolve_path(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Path:
    """Resolve a relative path against ``data_root``, then ``$CL_SIM_DATA``, then the cwd."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    base = data_root if data_root is not None else os.environ.get(DATA_ENV) or os.getcwd()
    return Path(base).expanduser() / p


def _infer_format(path: Path, fmt: str | None, task: str) -> str:
    fmt = fmt or _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"task {task!r}: cannot infer the format of {path}; set one of {FORMATS}")
    if fmt not in FORMATS:
        raise ConfigError(f"task {task!r}: unknown format {fmt!r}; choose one of {FORMATS}")
    return fmt


def _read_splits(name: str, paths: dict, fmt: str | None, header: bool, data_root) -> dict:
    """Read every split's file into a ``Table``; read errors name the task."""
    tables = {}
    for split, rel in paths.items():
        path = resolve_path(rel, data_root)
        if not path.is_file():
            raise DataError(f"task {name!r}: {split} file not found: {path}")
        try:
            tables[split] = read_table(path, _infer_format(path, fmt, name), header)
        except DataError as e:
            raise DataError(f"task {name!r}: {e}") from None
        except (UnicodeDecodeError, csv.Error, OSError) as e:  # binary, NUL bytes, bad quoting, permissions
            raise DataError(f"task {name!r}: cannot read {path}: {e}") from None
    return tables


def check_spec(name: str, splits, label_type: str, metric: str, dev_from_train: float) -> None:
    """Reject an unknown label type / metric / split name and a missing train or dev split."""
    if label_type not in KINDS:
        raise ConfigError(f"task {name!r}: unknown label_type {label_type!r}; choose from {KINDS}")
    if metric not in _KIND_METRICS[label_type]:
        raise ConfigError(
            f"task {name!r}: metric {metric!r} does not fit label_type {label_type!r}; "
            f"choose one of {_KIND_METRICS[label_type]}"
        )
    unknown = sorted(set(splits) - set(SPLIT_NAMES))
    if unknown:
        raise DataError(f"task {name!r}: unknown split name(s) {unknown}; use {SPLIT_NAMES}")
    if "train" not in splits:
        raise DataError(f"task {name!r}: the train split is missing (given: {sorted(splits)})")
    if "dev" not in splits and not 0.0 < dev_from_train < 1.0:
        raise DataError(f"task {name!r}: no dev split; give a dev path or dev_from_train in (0, 1)")


def load_file_task(
    name: str,
    paths: dict[str, str],
    text_columns: list,
    label_column: str,
    label_type: str = "classification",
    metric: str = "accuracy",
    format: str | None = None,
    header: bool = True,
    tenant: str = "default",
    data_root: str | os.PathLike | None = None,
    label_sep: str | None = None,
    drop_empty_text: bool = False,
    dev_from_train: float = 0.0,
) -> Task:
    """Load a task from one local file per split.

    Args:
        name: task name.
        paths: split name ("train", "dev", "test") -> file path; relative paths resolve
            against ``data_root``, then ``$CL_SIM_DATA``, then the cwd.
        text_columns: the text segments of an example, in order. An entry that is a list
            of columns joins their values with a space (e.g. COPA's premise + question).
            multiple_choice: ``[context, choice_1, choice_2, ...]``.
        label_column: classification: any value, as a string; regression: a number;
            multiple_choice: index of the right choice.
        label_type: "classification", "regression" or "multiple_choice".
        metric: accuracy / f1 / matthews (classification), pearson / spearman (regression).
        format: csv, tsv, jsonl, parquet, label_text ('<label> <text>' lines),
            text_semicolon_label (a header, then '<text>;<label>' split on the last ';');
            None: by suffix.
        header: csv/tsv only; False names columns by position as strings ("0", "3").
        tenant: owning tenant.
        data_root: base folder for relative paths.
        label_sep: keep only the part of a label before this separator (TREC "LOC:city").
        drop_empty_text: drop rows with an empty or whitespace-only text segment (counted in a
            warning); by default such a row is an error.
        dev_from_train: without a dev path, move this fraction of train (per class, seeded
            by the task name) into dev.

    Returns:
        A ``Task``; class names sorted numeric-aware ("0" < "1" < "10").

    Raises:
        DataError: missing file/column/train/dev split; empty split; wrong field count
            (names file and line); bad labels; dev/test labels not seen in train.
        ConfigError: unknown label_type, metric or format.
    """
    check_spec(name, paths, label_type, metric, dev_from_train)
    tables = _read_splits(name, paths, format, header, data_root)
    return task_from_tables(
        name, tables, text_columns, label_column, label_type, metric, tenant,
        label_sep=label_sep, drop_empty_text=drop_empty_text, dev_from_train=dev_from_train,
    )


def _scalar(v, where: str, what: str, column: str, task: str):
    """`v` unless it is a collection (a JSON list or object, a parquet list or struct, bytes, an
    array), which would otherwise become a text or class of its own through `str`."""
    if isinstance(v, str) or not isinstance(v, Collection):
        return v
    kind = {list: "a list", dict: "an object", bytes: "bytes"}.get(type(v), type(v).__name__)
    raise DataError(f"task {task!r}: {where}: {what} in column {column!r} is {kind}, not a single value "
                    f"(a string or a number): {str(v)[:60]}")


def _segment(table: Table, col, split: str, task: str) -> list:
    """Values of one text segment (a column, or several joined by a space)."""
    cols = [col] if isinstance(col, str) else list(col)
    for c in cols:
        if c not in table.columns:
            raise DataError(
                f"task {task!r}: text column {c!r} not in the {split} split; "
                f"available columns: {list(table.columns)}"
            )
    values = []
    for i in range(len(table.where)):
        parts = [_scalar(table.columns[c][i], table.where[i], "text", c, task) for c in cols]
        if any(p is None for p in parts):
            raise DataError(f"task {task!r}: {table.where[i]}: missing text in {cols}")
        values.append(" ".join(str(p) for p in parts))
    return values


def _raw_labels(table: Table, label_column: str, split: str, task: str, sep: str | None) -> list:
    if label_column not in table.columns:
        raise DataError(
            f"task {task!r}: label column {label_column!r} not in the {split} split; "
            f"available columns: {list(table.columns)}"
        )
    out = []
    for where, v in zip(table.where, table.columns[label_column]):
        v = _scalar(v, where, "label", label_column, task)
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # parquet/json 1.0 and csv "1" name the same class
        v = "" if v is None else str(v).strip()
        if not v:
            raise DataError(f"task {task!r}: {where}: empty label in column {label_column!r}")
        out.append(v.split(sep, 1)[0] if sep else v)
    return out


def _encode_labels(raw: list, where: tuple, kind: str, names: tuple, task: str) -> np.ndarray:
    if kind == "classification":
        index = {n: i for i, n in enumerate(names)}
        return np.array([index[v] for v in raw], dtype=np.int64)
    if kind == "regression":
        out = []
        for w, v in zip(where, raw):
            try:
                out.append(float(v))
            except ValueError:
                msg = f"task {task!r}: {w}: regression label {v!r} is not a number"
                raise DataError(msg) from None
        return np.array(out, dtype=np.float32)
    for w, v in zip(where, raw):
        if not v.isdigit() or int(v) >= len(names):
            raise DataError(f"task {task!r}: {w}: choice index {v!r} not in [0, {len(names)})")
    return np.array([int(v) for v in raw], dtype=np.int64)


def task_from_tables(
    name: str,
    tables: dict[str, Table],
    text_columns: list,
    label_column: str,
    label_type: str,
    metric: str,
    tenant: str = "default",
    label_names: tuple[str, ...] | None = None,
    label_sep: str | None = None,
    drop_empty_text: bool = False,
    dev_from_train: float = 0.0,
) -> Task:
    """Build and validate a ``Task`` from raw split tables (shared by files and HF loaders).

    ``label_names`` (classification): the class names when labels are already integer
    ids (HF ClassLabel); otherwise names are the sorted distinct train labels.
    Other arguments as in ``load_file_task``.
    """
    check_spec(name, tables, label_type, metric, dev_from_train)
    if not text_columns:
        raise DataError(f"task {name!r}: text_columns is empty")
    if label_type == "multiple_choice" and len(text_columns) < 3:
        raise DataError(f"task {name!r}: multiple_choice needs [context, choice_1, choice_2, ..]")
    raw = {}
    for split, table in tables.items():
        if not table.where:
            raise DataError(f"task {name!r}: the {split} split is empty")
        texts = list(zip(*[_segment(table, c, split, name) for c in text_columns]))
        labels = _raw_labels(table, label_column, split, name, label_sep)
        texts, labels, where = _empty_texts(name, split, texts, labels, table.where, drop_empty_text)
        if not texts:
            raise DataError(f"task {name!r}: the {split} split is empty")
        raw[split] = (texts, labels, where)
    if label_type == "classification":
        _one_value(name, raw["train"][1], "label")
    names = _label_names(name, raw, text_columns, label_type, label_names)
    splits = {
        split: Split(tuple(texts), _encode_labels(labels, where, label_type, names, name))
        for split, (texts, labels, where) in raw.items()
    }
    if label_type == "regression":
        _one_value(name, splits["train"].labels.tolist(), "target")
    if "dev" not in splits and dev_from_train > 0:
        splits["train"], splits["dev"] = carve_dev(splits["train"], dev_from_train, name)
    return Task(name, label_type, names, metric, splits, tenant)


def _empty_texts(name: str, split: str, texts: list, labels: list, where: tuple, drop: bool):
    """Refuse (or, with ``drop``, drop and count) rows with an empty or whitespace-only segment."""
    empty = [i for i, t in enumerate(texts) if not all(s.strip() for s in t)]
    if not empty:
        return texts, labels, where
    if not drop:
        raise DataError(f"task {name!r}: {where[empty[0]]}: empty text ({len(empty)} such row(s) in the {split} "
                        f"split); fix the file, or set drop_empty_text: true on the task to drop them")
    log.warning("task %r: dropped %d %s row(s) with empty text", name, len(empty), split)
    gone = set(empty)
    keep = [i for i in range(len(texts)) if i not in gone]
    return [texts[i] for i in keep], [labels[i] for i in keep], tuple(where[i] for i in keep)


def _one_value(name: str, labels: list, what: str) -> None:
    """A single training class (or constant regression targets) leaves nothing to learn or score."""
    if len(set(labels)) == 1:
        need = "two classes" if what == "label" else "two different targets (correlations are undefined otherwise)"
        raise DataError(f"task {name!r}: every train row has {what} {labels[0]!r} ({len(labels)} rows); "
                        f"a task needs at least {need} in train")


def _label_names(name: str, raw: dict, text_columns: list, kind: str, given) -> tuple[str, ...]:
    """Class names; checks that every dev/test label was seen in train."""
    if kind == "regression":
        return ()
    if kind == "multiple_choice":
        return tuple(c if isinstance(c, str) else "+".join(c) for c in text_columns[1:])
    if given is not None:
        raw_to_name = {str(i): n for i, n in enumerate(given)}
        for split, (_, labels, where) in raw.items():
            for i, v in enumerate(labels):
                if v not in raw_to_name:
                    raise DataError(
                        f"task {name!r}: {where[i]}: label {v!r} is not a class id "
                        f"in [0, {len(given)})"
                    )
                labels[i] = raw_to_name[v]
    seen = set(raw["train"][1])
    for split, (_, labels, _) in raw.items():
        unseen = sorted(set(labels) - seen, key=label_sort_key)
        if unseen:
            raise DataError(
                f"task {name!r}: {split} labels not seen in train: {unseen[:10]} "
                f"(train has {sorted(seen, key=label_sort_key)[:20]})"
            )
    return tuple(given) if given is not None else tuple(sorted(seen, key=label_sort_key))


def _tsv(folder: str, splits=("train", "dev"), suffix: str = "tsv") -> dict[str, str]:
    return {s: f"{folder}/{s}.{suffix}" for s in splits}


# Tasks staged in ../shared/data, as plain specs (columns from each task's SOURCE.txt).
SHARED_TASKS: dict[str, dict] = {
    "rte": dict(paths=_tsv("rte"), text_columns=["sentence1", "sentence2"], label_column="label"),
    "mrpc": dict(paths=_tsv("mrpc", ("train", "dev", "test")), metric="f1",
                 text_columns=["#1 String", "#2 String"], label_column="Quality"),
    "sst2": dict(paths=_tsv("sst2", ("train", "dev", "test"), "txt"), format="label_text",
                 header=False, text_columns=["1"], label_column="0"),
    "cola": dict(paths=_tsv("cola"), header=False, text_columns=["3"], label_column="1",
                 metric="matthews"),
    "qnli": dict(paths=_tsv("qnli"), text_columns=["question", "sentence"], label_column="label"),
    "stsb": dict(paths=_tsv("stsb"), text_columns=["sentence1", "sentence2"],
                 label_column="score", label_type="regression", metric="pearson"),
    "copa": dict(paths=_tsv("copa", suffix="jsonl"), label_type="multiple_choice",
                 text_columns=[["premise", "question"], "choice1", "choice2"],
                 label_column="label"),
    "cb": dict(paths=_tsv("cb", suffix="jsonl"), text_columns=["premise", "hypothesis"],
               label_column="label"),
    "trec": dict(paths=_tsv("trec", ("train", "test"), "txt"), format="label_text", header=False,
                 text_columns=["1"], label_column="0", label_sep=":", dev_from_train=0.1),
    "cr": dict(paths=_tsv("cr"), header=False, text_columns=["1"], label_column="0",
               drop_empty_text=True),
    "mr": dict(paths=_tsv("mr"), header=False, text_columns=["1"], label_column="0"),
    "subj": dict(paths=_tsv("subj"), header=False, text_columns=["1"], label_column="0"),
    "mpqa": dict(paths=_tsv("mpqa"), header=False, text_columns=["1"], label_column="0"),
    # SICK entailment (AdapterFusion's SICK task); the relatedness score is not used
    "sick": dict(paths=_tsv("sick", ("train", "dev", "test"), "txt"), format="tsv",
                 text_columns=["sentence_A", "sentence_B"], label_column="entailment_judgment"),
    # AG News: train/dev derived from the official test set (INDEX.md); orig_test is not a split
    "agnews": dict(paths=_tsv("agnews", suffix="csv"), text_columns=["Title", "Description"],
                   label_column="Class Index"),
    "emotion": dict(paths=_tsv("emotion", ("train", "dev", "test"), "txt"),
                    format="text_semicolon_label", text_columns=["text"], label_column="label_name"),
    "banking77": dict(paths=_tsv("banking77", ("train", "test"), "csv"), text_columns=["text"],
                      label_column="category", dev_from_train=0.1),
    # in-scope intents only; the oos_* files (out-of-scope detection) are not splits of this task
    "clinc150": dict(paths=_tsv("clinc150", ("train", "dev", "test")), text_columns=["text"],
                     label_column="intent"),
    "wnli": dict(paths=_tsv("wnli"), text_columns=["sentence1", "sentence2"], label_column="label"),
}


def shared_task(name: str, data_root: str | Path | None = None, tenant: str = "default",
                task_name: str | None = None) -> Task:
    """Load one of ``SHARED_TASKS`` from the shared benchmark data (never copied).

    Args:
        name: a key of ``SHARED_TASKS`` (rte, mrpc, sst2, cola, qnli, stsb, copa, cb,
            trec, cr, mr, subj, mpqa, sick, agnews, emotion, banking77, clinc150, wnli).
        data_root: the folder holding one sub-folder per task; default ``$CL_SIM_DATA``.
        tenant: owning tenant.
        task_name: the task's name in a stream (default: ``name``), e.g. two tenants' copies.

    Returns:
        The task. TREC and BANKING77 have no dev split: 10% of train (stratified per
        class, seeded by the task name: ``carve_dev``) becomes dev; the original test
        stays test. TREC uses the 6 coarse labels.
    """
    if name not in SHARED_TASKS:
        raise DataError(f"unknown shared task {name!r}; known: {sorted(SHARED_TASKS)}")
    root = data_root if data_root is not None else os.environ.get(DATA_ENV)
    if not root:
        raise DataError(f"shared task {name!r}: pass data_root or set ${DATA_ENV} to the data dir")
    return load_file_task(task_name or name, tenant=tenant, data_root=root, **SHARED_TASKS[name])
