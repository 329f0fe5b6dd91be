"""Every bad input caught at the edge (issue 9): one line `cl-sim: error: ...`, exit 2, nothing
written; `cl-sim validate` rejects exactly what `cl-sim run` rejects, before any training."""
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cl_sim.cli import main

SYN = dict(n_train=32, n_dev=16, n_test=16, n_signal_words=12, n_filler_words=12)
GOOD_ROWS = [("red apple", "x"), ("green pear", "y"), ("blue sky", "x"), ("old stone", "y")]


def _config(tmp: Path, **sections) -> str:
    tree = {"backbone": {"name": "tiny-bert", "max_length": 32},
            "tasks": [{"name": "a", "family": "a", **SYN}, {"name": "b", "family": "b", **SYN}],
            "training": {"epochs": 1, "batch_size": 16, "threads": 1},
            "output": {"dir": str(tmp / "out")}, "execution": {"store_dir": str(tmp / "store")}}
    tree.update(sections)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def _file_task(tmp: Path, train_text: str, suffix: str = "csv", **task) -> str:
    """A config whose one file task reads `train_text` as its train split (dev is fine)."""
    train, dev = tmp / f"train.{suffix}", tmp / "dev.csv"
    train.write_text(train_text)
    dev.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in GOOD_ROWS))
    spec = {"name": "f", "source": "file", "paths": {"train": str(train), "dev": str(dev)},
            "text_columns": ["text"], **task}
    return _config(tmp, tasks=[spec])


def _parquet_task(tmp: Path, data: bytes | None = None, table: pa.Table | None = None) -> str:
    path = tmp / "train.parquet"
    if table is not None:
        pq.write_table(table, path)
    else:
        path.write_bytes(data)
    dev = tmp / "dev.csv"
    dev.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in GOOD_ROWS))
    return _config(tmp, tasks=[{"name": "f", "source": "file", "paths": {"train": str(path), "dev": str(dev)},
                                "text_columns": ["text"]}])


def _good_parquet_bytes(tmp: Path) -> bytes:
    path = tmp / "good.parquet"
    pq.write_table(pa.table({"text": [t for t, _ in GOOD_ROWS], "label": [y for _, y in GOOD_ROWS]}), path)
    data = path.read_bytes()
    path.unlink()
    return data


CSV_OK = "text,label\n" + "".join(f"{t},{y}\n" for t, y in GOOD_ROWS)

# case -> (args builder, text the one error line must contain)
BAD = {
    # --- config files and keys
    "missing config file": (lambda t: [str(t / "absent.yaml")], "config file not found"),
    "invalid yaml": (lambda t: [str((t / "c.yaml").write_text("a: [1, 2") and t / "c.yaml")], "not valid YAML"),
    "top level not a mapping": (lambda t: [str((t / "c.yaml").write_text("- 1\n") and t / "c.yaml")],
                                "top level must be a mapping"),
    "unknown key": (lambda t: [_config(t), "training.epoch=2"], "unknown config key 'training.epoch'"),
    "unknown top-level key in yaml": (lambda t: [_config(t, trainer={"epochs": 1})], "unknown config key 'trainer'"),
    "unknown nested key": (lambda t: [_config(t), "method.fusion.lrr=0.1"], "unknown config key 'method.fusion.lrr'"),
    "unknown key in a task": (lambda t: [_config(t, tasks=[{"name": "a", "famly": "a"}])], "unknown config key 'tasks[0].famly'"),
    "override without =": (lambda t: [_config(t), "training.epochs=1", "training.lr"], "not of the form key=value"),
    # --- types
    "wrong type int": (lambda t: [_config(t), "training.epochs=abc"], "training.epochs: expected int"),
    "wrong type float": (lambda t: [_config(t), "training.lr=fast"], "training.lr: expected float"),
    "wrong type bool": (lambda t: [_config(t), "execution.use_gpu=maybe"], "execution.use_gpu: expected bool"),
    "wrong type list": (lambda t: [_config(t), "stream.ordering=a"], "stream.ordering: expected a list"),
    # --- ranges
    "negative max_failures": (lambda t: [_config(t), "execution.max_failures=-1"], "execution.max_failures: must be >= 0"),
    "zero batch size": (lambda t: [_config(t), "training.batch_size=0"], "training.batch_size: must be > 0"),
    "nan learning rate": (lambda t: [_config(t), "training.lr=.nan"], "training.lr: must be a finite number"),
    "negative weight decay": (lambda t: [_config(t), "training.weight_decay=-0.1"], "training.weight_decay: must be >= 0"),
    "negative seed": (lambda t: [_config(t), "training.seed=-3"], "training.seed: must be >= 0"),
    "zero max_train_examples": (lambda t: [_config(t), "training.max_train_examples=0"],
                                "training.max_train_examples: must be > 0"),
    "low-shot fraction above 1": (lambda t: [_config(t), "method.low_shot_fraction=1.5"], "method.low_shot_fraction"),
    "zero temperature": (lambda t: [_config(t), "method.distill.temperature=0"], "method.distill.temperature: must be > 0"),
    "negative distill weight": (lambda t: [_config(t), "method.distill.hidden_weight=-1"],
                                "method.distill.hidden_weight: must be >= 0"),
    "one-class synthetic task": (lambda t: [_config(t), "tasks.0.n_classes=1"], "tasks[a].n_classes: must be >= 2"),
    "empty synthetic split": (lambda t: [_config(t), "tasks.0.n_train=0"], "tasks[a].n_train: must be > 0"),
    "dev_from_train out of range": (lambda t: [_config(t), "tasks.0.dev_from_train=1.5"], "dev_from_train"),
    "negative cpus per worker": (lambda t: [_config(t), "execution.cpus_per_worker=-1"], "execution.cpus_per_worker"),
    # --- cross-field
    "unknown method": (lambda t: [_config(t), "method.name=nope"], "method.name: unknown method 'nope'"),
    "kt_reference that is no single-task reference": (
        lambda t: [_config(t), "method.kt_reference=sequential_ft"], "method.kt_reference"),
    "teacher_count too large": (lambda t: [_config(t), "method.name=i2i", "method.teacher_count=5"],
                                "method.teacher_count: 5 is more than"),
    "duplicate task": (lambda t: [_config(t, tasks=[{"name": "a", **SYN}, {"name": "a", **SYN}])],
                       "duplicate task name 'a'"),
    "unknown task in ordering": (lambda t: [_config(t), "stream.ordering=[a, zz]"], "stream.ordering: unknown task 'zz'"),
    "task twice in ordering": (lambda t: [_config(t), "stream.ordering=[a, a]"], "appears more than once"),
    # --- models
    "backbone neither local nor offline": (lambda t: [_config(t), "backbone.name=no-such-org/no-such-model"],
                                           "backbone.name: cannot load 'no-such-org/no-such-model'"),
    "backbone folder without config.json": (
        lambda t: [_config(t), f"backbone.name={(t / 'model').mkdir() or t / 'model'}"], "has no config.json"),
    "albert backbone": (lambda t: [_config(t), f"backbone.name={_albert(t)}"], "'albert' is not supported"),
    # --- data files
    "missing data file": (lambda t: [_file_task(t, CSV_OK), f"tasks.0.paths.train={t / 'nope.csv'}"],
                          "train file not found"),
    "missing label column": (lambda t: [_file_task(t, CSV_OK, label_column="gold")], "label column 'gold'"),
    "missing text column": (lambda t: [_file_task(t, CSV_OK, text_columns=["body"])], "'body'"),
    "corrupt csv (unclosed quote)": (lambda t: [_file_task(t, 'text,label\n"red apple,x\ngreen pear,y\n')], "task 'f'"),
    "csv row with too many fields": (lambda t: [_file_task(t, "text,label\nred,apple,x\ngreen pear,y\n")], "task 'f'"),
    "truncated tsv": (lambda t: [_file_task(t, "text\tlabel\nred apple\tx\ngreen pear", suffix="tsv")], "task 'f'"),
    "truncated jsonl": (lambda t: [_file_task(t, '{"text": "red", "label": "x"}\n{"text": "gre', suffix="jsonl")],
                        "not valid JSON"),
    "corrupt parquet": (lambda t: [_parquet_task(t, data=b"PAR1 this is not parquet")], "cannot read"),
    "truncated parquet": (lambda t: [_parquet_task(t, data=_good_parquet_bytes(t)[:-40])], "cannot read"),
    "empty train split": (lambda t: [_file_task(t, "text,label\n")], "the train split is empty"),
    "single-class train split": (lambda t: [_file_task(t, "text,label\nred apple,x\nblue sky,x\n")],
                                 "train split has a single class"),
    "whitespace-only texts": (lambda t: [_file_task(t, 'text,label\n"  ",x\n"\t",y\n')], "empty"),
    "unknown shared task": (lambda t: [_config(t, tasks=[{"name": "nope", "source": "shared"}])], "nope"),
}


def _albert(tmp: Path) -> Path:
    from transformers import AlbertConfig, AutoModel

    from cl_sim.backbone import load_tokenizer

    folder = tmp / "albert"
    tok = load_tokenizer("tiny-bert")
    AutoModel.from_config(AlbertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, embedding_size=32, vocab_size=len(tok))).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_the_table_has_at_least_30_cases():
    assert len(BAD) >= 30


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_and_run_reject_alike(tmp_path, capsys, case):
    make_args, needle = BAD[case]
    args = make_args(tmp_path)
    capsys.readouterr()  # what building the case printed (transformers' save bars) is not the CLI's
    for command in ("validate", "run"):
        code = main([command, *args])
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, (command, out, err)
        assert len(lines) == 1 and lines[0].startswith("cl-sim: error: ") and needle in lines[0], (command, err)
        assert "Traceback" not in out + err
        assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()  # nothing written
