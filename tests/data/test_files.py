"""Local-file tasks: every format, path resolution, and one clear DataError per bad input."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from cl_sim.data.files import SHARED_TASKS, load_file_task, shared_task
from cl_sim.errors import ConfigError, DataError

PAIR = ["s1", "s2"]


def _write(path: Path, text: str, bom: bool = False) -> str:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return str(path)


def _tsv_task(tmp_path, train: str, dev: str = "s1\ts2\tlabel\nx\ty\ta\n", **kwargs):
    paths = {"train": _write(tmp_path / "train.tsv", train),
             "dev": _write(tmp_path / "dev.tsv", dev)}
    kwargs.setdefault("text_columns", PAIR)
    kwargs.setdefault("label_column", "label")
    return load_file_task("toy", paths, **kwargs)


TRAIN_TSV = 's1\ts2\tlabel\nHe said "hi\tok\ta\nit\'s "quoted" here\tno\tb\n\n'


def test_tsv_quoting_is_off(tmp_path):
    task = _tsv_task(tmp_path, TRAIN_TSV)
    train = task.splits["train"]
    assert train.texts == (('He said "hi', "ok"), ('it\'s "quoted" here', "no"))
    assert task.labels == ("a", "b") and train.labels.tolist() == [0, 1]
    assert task.splits["dev"].labels.tolist() == [0]


def test_tsv_with_bom_and_crlf(tmp_path):
    train = _write(tmp_path / "train.tsv", "Quality\t#1 String\r\n1\tgood\r\n0\tbad\r\n", bom=True)
    dev = _write(tmp_path / "dev.tsv", "Quality\t#1 String\r\n0\tmeh\r\n")
    task = load_file_task("bom", {"train": train, "dev": dev}, ["#1 String"], "Quality")
    assert task.labels == ("0", "1")
    assert task.splits["train"].texts == (("good",), ("bad",))
    assert task.splits["train"].labels.tolist() == [1, 0]


def test_csv_with_standard_quoting(tmp_path):
    train = _write(tmp_path / "train.csv", 'text,label\n"a, b",x\n"say ""hi""",y\n')
    dev = _write(tmp_path / "dev.csv", "text,label\nz,x\n")
    task = load_file_task("c", {"train": train, "dev": dev}, ["text"], "label")
    assert task.splits["train"].texts == (("a, b",), ('say "hi"',))


def test_jsonl_and_numeric_aware_label_order(tmp_path):
    rows = [{"t": f"w{i}", "y": y} for i, y in enumerate([10, 2, 1, 2])]
    train = _write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    dev = _write(tmp_path / "dev.jsonl", json.dumps({"t": "q", "y": 1}) + "\n")
    task = load_file_task("j", {"train": train, "dev": dev}, ["t"], "y")
    assert task.labels == ("1", "2", "10")
    assert task.splits["train"].labels.tolist() == [2, 1, 0, 1]


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    for split, (texts, labels) in {"train": (["a", "b"], [0, 1]), "dev": (["c"], [1])}.items():
        pq.write_table(pa.table({"text": texts, "label": labels}), tmp_path / f"{split}.parquet")
    paths = {s: str(tmp_path / f"{s}.parquet") for s in ("train", "dev")}
    task = load_file_task("p", paths, ["text"], "label")
    assert task.labels == ("0", "1") and task.splits["dev"].labels.tolist() == [1]


def test_headerless_positions_and_label_text(tmp_path):
    train = _write(tmp_path / "train.tsv", "src\t1\t\tA sentence.\nsrc\t0\t*\tBad one.\n")
    dev = _write(tmp_path / "dev.tsv", "src\t0\t*\tAnother.\n")
    task = load_file_task("cola", {"train": train, "dev": dev}, ["3"], "1", header=False,
                          metric="matthews")
    assert task.splits["train"].texts == (("A sentence.",), ("Bad one.",))
    train = _write(tmp_path / "train.txt", "LOC:city Where is it ?\nHUM:desc Who was he ?\n")
    dev = _write(tmp_path / "dev.txt", "LOC:other Where else ?\n")
    task = load_file_task("trec", {"train": train, "dev": dev}, ["1"], "0", format="label_text",
                          header=False, label_sep=":")
    assert task.labels == ("HUM", "LOC") and task.splits["dev"].texts == (("Where else ?",),)


def test_regression_and_multiple_choice(tmp_path):
    task = _tsv_task(tmp_path, "s1\ts2\tscore\na\tb\t4.5\nc\td\t0\n", "s1\ts2\tscore\nx\ty\t2\n",
                     label_column="score", label_type="regression", metric="pearson")
    assert task.labels == () and task.num_labels == 1
    assert task.splits["train"].labels.dtype == np.float32
    np.testing.assert_allclose(task.splits["train"].labels, [4.5, 0.0])
    row = {"premise": "It rained.", "question": "effect", "c1": "Wet.", "c2": "Dry.", "label": 1}
    lines = json.dumps(row) + "\n" + json.dumps({**row, "label": 0})
    train = _write(tmp_path / "train.jsonl", lines)
    task = load_file_task("copa", {"train": train, "dev": train},
                          [["premise", "question"], "c1", "c2"], "label",
                          label_type="multiple_choice")
    assert task.kind == "multiple_choice" and task.labels == ("c1", "c2")
    assert task.splits["train"].texts[0] == ("It rained. effect", "Wet.", "Dry.")
    assert task.splits["train"].labels.tolist() == [1, 0]


def test_relative_paths_resolve_against_root_then_env_then_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    for split in ("train", "dev"):
        _write(folder / f"{split}.tsv", "t\tlabel\nx\ta\ny\tb\n")
    paths = {"train": "toy/train.tsv", "dev": "toy/dev.tsv"}
    monkeypatch.delenv("CL_SIM_DATA", raising=False)
    assert load_file_task("r", paths, ["t"], "label", data_root=tmp_path / "data").labels == ("a", "b")
    monkeypatch.setenv("CL_SIM_DATA", str(tmp_path / "data"))
    assert load_file_task("r", paths, ["t"], "label").labels == ("a", "b")
    monkeypatch.delenv("CL_SIM_DATA")
    monkeypatch.chdir(tmp_path / "data")
    assert load_file_task("r", paths, ["t"], "label").labels == ("a", "b")


def test_dev_carved_from_train_is_stratified_and_deterministic(tmp_path):
    rows = "".join(f"t{i}\t{'ab'[i % 2]}\n" for i in range(40))
    train = _write(tmp_path / "train.tsv", "t\tlabel\n" + rows)
    a = load_file_task("c", {"train": train}, ["t"], "label", dev_from_train=0.25)
    b = load_file_task("c", {"train": train}, ["t"], "label", dev_from_train=0.25)
    assert len(a.splits["dev"]) == 10 and len(a.splits["train"]) == 30
    assert sorted(a.splits["dev"].labels.tolist()) == [0] * 5 + [1] * 5
    assert a.splits["dev"].texts == b.splits["dev"].texts
    assert not set(a.splits["dev"].texts) & set(a.splits["train"].texts)


def test_empty_text_is_refused_unless_dropped_with_a_count(tmp_path, caplog):
    train = "s1\ts2\tlabel\n\t\ta\nx\t  \tb\nx\ty\ta\nu\tv\tb\n"  # row 2 all empty, row 3 half blank
    with pytest.raises(DataError, match=r"train.tsv line 2: empty text \(2 such row\(s\) in the train split\).*"
                                        r"drop_empty_text: true"):
        _tsv_task(tmp_path, train)
    with caplog.at_level("WARNING", logger="cl_sim.data"):
        task = _tsv_task(tmp_path, train, drop_empty_text=True)
    assert task.splits["train"].texts == (("x", "y"), ("u", "v"))
    assert "task 'toy': dropped 2 train row(s) with empty text" in caplog.text


@pytest.mark.parametrize("fmt, content, match", [
    ("csv", 'text,label\nred,x\n"blue sky,y\n', "cannot read .*unexpected end of data"),  # truncated in a quote
    ("tsv", "t\tlabel\nx\ta\ny", r"train.tsv line 3: 1 fields, expected 2"),  # cut mid-row
    ("tsv", b"t\tlabel\n\xff\xfe\x00bad\ty\n", "cannot read .*codec can't decode"),
    ("jsonl", '{"t": "x", "label": "a"}\n{"t": "y", "lab', r"line 2: not valid JSON"),
    ("parquet", b"PAR1 not really parquet", "not a readable parquet file"),
])
def test_corrupt_and_truncated_files(tmp_path, fmt, content, match):
    path = tmp_path / f"train.{fmt}"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=f"task 'toy': .*{match}"):
        load_file_task("toy", {"train": str(path), "dev": str(path)}, ["t" if fmt != "csv" else "text"], "label")


@pytest.mark.parametrize("train, kwargs, match", [
    ("t\tlabel\nx\ta\ny\ta\n", {}, r"every train row has label 'a' \(2 rows\); .* two classes"),
    ("t\tlabel\nx\t0.5\ny\t.5\n", {"label_type": "regression", "metric": "pearson"},
     r"every train row has target 0.5 \(2 rows\); .* two different targets"),
])
def test_degenerate_train_labels(tmp_path, train, kwargs, match):
    f = _write(tmp_path / "t.tsv", train)
    with pytest.raises(DataError, match=match):
        load_file_task("toy", {"train": f, "dev": f}, ["t"], "label", **kwargs)


@pytest.mark.parametrize(
    "train, kwargs, match",
    [
        ("s1\ts2\tlabel\nx\ty\ta\n", {"text_columns": ["s1", "nope"]},
         r"text column 'nope'.*available columns: \['s1', 's2', 'label'\]"),
        ("s1\ts2\tlabel\nx\ty\ta\n", {"label_column": "gold"}, r"label column 'gold'.*available"),
        ("s1\ts2\tlabel\n", {}, "train split is empty"),
        ("", {}, "train split is empty"),
        ("s1\ts2\tlabel\nx\ty\ta\nx\ty\n", {}, r"train.tsv line 3: 2 fields, expected 3"),
        ("s1\ts2\tlabel\nx\ty\tb\nu\tv\tc\n", {}, r"dev labels not seen in train: \['a'\]"),
        ("s1\ts2\tlabel\nx\ty\t \n", {}, "line 2: empty label"),
        ("s1\ts2\tlabel\nx\ty\thigh\n",
         {"label_type": "regression", "metric": "pearson", "dev": "s1\ts2\tlabel\nx\ty\t1\n"},
         "'high' is not a number"),
        ("s1\ts2\tlabel\nx\ty\t2\n",
         {"label_type": "multiple_choice", "text_columns": ["s1", "s2", "s1"],
          "dev": "s1\ts2\tlabel\nx\ty\t0\n"},
         r"choice index '2' not in \[0, 2\)"),
    ],
)
def test_data_errors(tmp_path, train, kwargs, match):
    with pytest.raises(DataError, match=match):
        _tsv_task(tmp_path, train, **kwargs)


def test_missing_file_names_path_and_task(tmp_path):
    with pytest.raises(DataError, match=r"task 'toy': dev file not found: .*nowhere\.tsv"):
        load_file_task("toy", {"train": _write(tmp_path / "t.tsv", "t\tl\nx\ta\n"),
                               "dev": str(tmp_path / "nowhere.tsv")}, ["t"], "l")


def test_split_errors(tmp_path):
    f = _write(tmp_path / "t.tsv", "t\tl\nx\ta\n")
    with pytest.raises(DataError, match="train split is missing"):
        load_file_task("toy", {"dev": f}, ["t"], "l")
    with pytest.raises(DataError, match="no dev split"):
        load_file_task("toy", {"train": f}, ["t"], "l")
    with pytest.raises(DataError, match=r"unknown split name\(s\) \['valid'\]"):
        load_file_task("toy", {"train": f, "valid": f}, ["t"], "l")


def test_jsonl_errors(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", '{"t": "x", "l": "a"}\n{"t": \n')
    with pytest.raises(DataError, match=r"bad.jsonl line 2: not valid JSON"):
        load_file_task("j", {"train": bad, "dev": bad}, ["t"], "l")
    gap = _write(tmp_path / "gap.jsonl", '{"t": "x", "l": "a"}\n{"l": "a"}\n')
    with pytest.raises(DataError, match=r"gap.jsonl line 2: missing text"):
        load_file_task("j", {"train": gap, "dev": gap}, ["t"], "l")


def test_config_errors(tmp_path):
    f = _write(tmp_path / "t.data", "t\tl\nx\ta\n")
    with pytest.raises(ConfigError, match="cannot infer the format"):
        load_file_task("toy", {"train": f, "dev": f}, ["t"], "l")
    with pytest.raises(ConfigError, match="unknown format 'xml'"):
        load_file_task("toy", {"train": f, "dev": f}, ["t"], "l", format="xml")
    with pytest.raises(ConfigError, match="metric 'pearson' does not fit"):
        load_file_task("toy", {"train": f, "dev": f}, ["t"], "l", metric="pearson")
    with pytest.raises(ConfigError, match="unknown label_type"):
        load_file_task("toy", {"train": f, "dev": f}, ["t"], "l", label_type="ranking")


# --- the shared benchmark data (read in place, never copied); skipped where absent ---
_DEFAULT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"  # ../shared/data
SHARED = Path(os.environ.get("CL_SIM_DATA") or _DEFAULT_SHARED)
needs_shared = pytest.mark.skipif(not (SHARED / "rte").is_dir(), reason=f"no data at {SHARED}")


def test_shared_task_errors(monkeypatch):
    with pytest.raises(DataError, match="unknown shared task 'imdb'"):
        shared_task("imdb", "/x")
    monkeypatch.delenv("CL_SIM_DATA", raising=False)
    with pytest.raises(DataError, match="CL_SIM_DATA"):
        shared_task("rte")


@needs_shared
@pytest.mark.parametrize(
    "name, sizes, labels",
    [
        ("rte", {"train": 2490, "dev": 277}, ("entailment", "not_entailment")),
        ("mrpc", {"train": 3576, "dev": 500, "test": 1725}, ("0", "1")),
        ("cola", {"train": 8551, "dev": 1043}, ("0", "1")),
        ("stsb", {"train": 5749, "dev": 1500}, ()),
        ("copa", {"train": 400, "dev": 100}, ("choice1", "choice2")),
        ("cb", {"train": 250, "dev": 56}, ("contradiction", "entailment", "neutral")),
        ("sst2", {"train": 6920, "dev": 872, "test": 1821}, ("0", "1")),
        ("cr", {"train": 3015, "dev": 755}, ("0", "1")),
    ],
)
def test_shared_tasks_load(name, sizes, labels):
    task = shared_task(name, SHARED)
    assert {s: len(v) for s, v in task.splits.items()} == sizes
    assert task.labels == labels


@needs_shared
def test_all_shared_tasks_load_and_trec_gets_a_dev_split():
    for name in SHARED_TASKS:
        task = shared_task(name, SHARED)
        assert "train" in task.splits and "dev" in task.splits, name
    trec = shared_task("trec", SHARED)
    assert trec.labels == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    assert len(trec.splits["train"]) + len(trec.splits["dev"]) == 5452
    assert len(trec.splits["test"]) == 500


@needs_shared
def test_config_tasks_with_source_shared_load_in_place():
    from cl_sim.config import load_config
    from cl_sim.tasks import load_tasks

    cfg = load_config(None, [f"data_root={SHARED}", "tasks=[{name: cr, source: shared}, "
                                                     "{name: cr_copy, source: shared, dataset: cr, tenant: t2}]"])
    tasks = load_tasks(cfg)
    assert [t.name for t in tasks.values()] == ["cr", "cr_copy"]
    assert len(tasks["cr"].splits["train"]) == 3015 and tasks["cr_copy"].tenant == "t2"
    assert tasks["cr"].splits["train"].texts == tasks["cr_copy"].splits["train"].texts
    with pytest.raises(ConfigError, match=r"tasks\[imdb\]\.dataset"):
        load_config(None, ["tasks=[{name: imdb, source: shared}]"])
