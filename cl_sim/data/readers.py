"""Reading one split file into a `Table` of raw columns, each row remembering its file and line.

    table = read_table(Path("rte/train.tsv"), "tsv")
    table.columns["label"][0], table.where[0]   # "entailment", "rte/train.tsv line 2"

Formats: csv (standard quoting, strict), tsv (GLUE-style, quoting off), jsonl (one object per
line), parquet, label_text ('<label> <text>' lines) and text_semicolon_label. Problems raise a
``DataError`` naming the file and line; `cl_sim.data.files` turns tables into tasks.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from cl_sim.errors import DataError


@dataclass(frozen=True)
class Table:
    """One split's raw columns (name -> values: str, number or None) and each row's origin."""

    columns: dict
    where: tuple[str, ...]  # e.g. "/data/rte/train.tsv line 7", for error messages


def _read_delimited(path: Path, fmt: str, header: bool) -> Table:
    """csv (standard quoting) or tsv (QUOTE_NONE, as GLUE writes it); blank lines skipped."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        # csv: strict, so an unterminated quote (a truncated file) is an error, not one huge field
        dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {"strict": True}
        reader = csv.reader(f, **dialect)
        rows = [(reader.line_num, row) for row in reader if row]
    if not rows:
        return Table({}, ())
    names = rows[0][1] if header else [str(i) for i in range(len(rows[0][1]))]
    body = rows[1:] if header else rows
    for line, row in body:
        if len(row) != len(names):
            raise DataError(
                f"{path} line {line}: {len(row)} fields, expected {len(names)} "
                f"(columns {names}); for a GLUE-style .tsv check that tabs are not inside fields"
            )
    columns = {name: [row[i] for _, row in body] for i, name in enumerate(names)}
    return Table(columns, tuple(f"{path} line {line}" for line, _ in body))


def _read_label_text(path: Path) -> Table:
    """Lines '<label> <text>' (SST-2, TREC): columns "0" (label) and "1" (text)."""
    labels, texts, where = [], [], []
    with open(path, encoding="utf-8-sig") as f:
        for i, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise DataError(f"{path} line {i}: expected '<label> <text>', got {line[:80]!r}")
            labels.append(parts[0])
            texts.append(parts[1])
            where.append(f"{path} line {i}")
    return Table({"0": labels, "1": texts}, tuple(where))


def _read_text_semicolon_label(path: Path) -> Table:
    """A header line, then '<text>;<label>' lines split on the LAST ';' (texts may hold ';')."""
    rows, where = [], []
    with open(path, encoding="utf-8-sig") as f:
        lines = [(i, line.rstrip("\r\n")) for i, line in enumerate(f, start=1)]
    lines = [(i, line) for i, line in lines if line.strip()]
    if not lines:
        return Table({}, ())
    names = lines[0][1].rsplit(";", 1)
    for i, line in lines[1:]:
        parts = line.rsplit(";", 1)
        if len(parts) != 2 or len(names) != 2:
            raise DataError(f"{path} line {i}: expected '<text>;<label>', got {line[:80]!r}")
        rows.append(parts)
        where.append(f"{path} line {i}")
    return Table({names[0]: [r[0] for r in rows], names[1]: [r[1] for r in rows]}, tuple(where))


def _read_jsonl(path: Path) -> Table:
    """One JSON object per line; a key missing from a row reads as None."""
    records, where = [], []
    with open(path, encoding="utf-8-sig") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path} line {i}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path} line {i}: expected a JSON object, not {obj!r:.40}")
            records.append(obj)
            where.append(f"{path} line {i}")
    names = list(dict.fromkeys(k for r in records for k in r))
    return Table({k: [r.get(k) for r in records] for k in names}, tuple(where))


def _read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        columns = pq.read_table(path).to_pydict()
    except (pa.ArrowException, OSError) as e:  # truncated or not parquet at all
        raise DataError(f"{path}: not a readable parquet file ({str(e).splitlines()[0]})") from None
    n = len(next(iter(columns.values()), []))
    return Table(columns, tuple(f"{path} row {i}" for i in range(n)))


def read_table(path: Path, fmt: str, header: bool = True) -> Table:
    """Read one split file in ``fmt`` (one of ``FORMATS``) into a ``Table``."""
    if fmt in ("csv", "tsv"):
        return _read_delimited(path, fmt, header)
    readers = {"jsonl": _read_jsonl, "parquet": _read_parquet, "label_text": _read_label_text,
               "text_semicolon_label": _read_text_semicolon_label}
    return readers[fmt](path)
