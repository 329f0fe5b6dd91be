"""Every bad input is caught at the edge: configs, data files and models.

Each case goes through both `cl-sim validate` and `cl-sim run`; both must print the same single
line `cl-sim: error: ...` on stderr, exit 2, and write nothing (no results folder, no store, no
`runs/` in the working directory). Every case fails before any training starts, so the table is fast.
"""
from pathlib import Path

import pytest
import torch
import yaml

from cl_sim.cli import main

SYN = dict(n_train=32, n_dev=16, n_test=16, n_signal_words=12, n_filler_words=12)


def _config(tmp: Path, **sections) -> Path:
    tree = {"backbone": {"name": "tiny-bert", "max_length": 32},
            "tasks": [{"name": "a", "family": "a", **SYN}, {"name": "b", "family": "b", **SYN}],
            "training": {"epochs": 1, "batch_size": 16, "threads": 1},
            "output": {"dir": str(tmp / "out")},
            "execution": {"store_dir": str(tmp / "store")}}
    tree.update(sections)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _with(tmp: Path, *overrides: str, **sections) -> list[str]:
    return [str(_config(tmp, **sections)), *overrides]


def _file_task(tmp: Path, train: str | bytes, suffix: str = "csv", dev: str | None = None, **task) -> list[str]:
    """A config with one file task whose train file holds `train` (dev: a good two-class file)."""
    path = tmp / f"train.{suffix}"
    path.write_bytes(train if isinstance(train, bytes) else train.encode())
    good = tmp / "dev.csv"
    good.write_text(dev or "text,label\nred sky,x\nold pear,y\n")
    spec = {"name": "f", "source": "file", "paths": {"train": str(path), "dev": str(good)}, "text_columns": ["text"]}
    return _with(tmp, tasks=[{**spec, **task}])


GOOD_CSV = "text,label\nred apple,x\ngreen pear,y\nblue sky,x\nold stone,y\n"


def _parquet(tmp: Path, cut: bool) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["red", "green", "blue"], "label": ["x", "y", "x"]}), tmp / "whole.parquet")
    data = (tmp / "whole.parquet").read_bytes()
    return data[: len(data) // 2] if cut else data


def _parquet_lists(tmp: Path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["red", "green"], "label": [["x"], ["y", "x"]]}), tmp / "lists.parquet")
    return (tmp / "lists.parquet").read_bytes()


def _model_folder(tmp: Path, config: str | None = None, weights: str = "none") -> list[str]:
    """A backbone folder: a tiny BERT's config (or `config` text), and no, cut or whole weights."""
    from transformers import BertConfig, BertModel

    folder = tmp / "model"
    folder.mkdir()
    bert = BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    if weights == "none":
        (folder / "config.json").write_text(config or bert.to_json_string())
    else:
        BertModel(bert).save_pretrained(folder)
        blob = folder / "model.safetensors"
        blob.write_bytes(blob.read_bytes()[:100])
    return _with(tmp, f"backbone.name={folder}")


def _albert_folder(tmp: Path) -> list[str]:
    from transformers import AlbertConfig, AlbertModel, AutoTokenizer

    from cl_sim.backbone import minilm_path

    folder = tmp / "albert"
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    AlbertModel(AlbertConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=8, num_hidden_layers=2,
                             num_attention_heads=1, intermediate_size=8)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return _with(tmp, f"backbone.name={folder}")


def _hub_offline(tmp: Path, monkeypatch) -> list[str]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return _with(tmp, "backbone.name=no-such-org/no-such-model")


def _jsonl_task(tmp: Path, label) -> list[str]:
    """A jsonl train file whose second row's label is `label` (a list, an object)."""
    import json

    rows = [{"text": "red apple", "label": "x"}, {"text": "green pear", "label": label}, {"text": "blue", "label": "y"}]
    return _file_task(tmp, "".join(json.dumps(r) + "\n" for r in rows), suffix="jsonl")


def _s3_store_on_a_closed_port(tmp: Path, monkeypatch) -> list[str]:
    import socket

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")  # no credential lookup (the EC2 metadata service)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return _with(tmp, f"execution.store_dir=s3://bucket/store?endpoint_override=127.0.0.1:{port}&scheme=http"
                      f"&region=us-east-1")


def _hub_unreachable(tmp: Path, monkeypatch) -> list[str]:
    """No HF_HUB_OFFLINE, a hub endpoint nothing answers on: one line at once, not the hub client's
    retries (the same on a machine with network: the endpoint is a closed local port)."""
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
    return _with(tmp, "backbone.name=no-such-org/no-such-model")


def _output_is_a_file(tmp: Path) -> list[str]:
    (tmp / "taken").write_text("")
    return _with(tmp, f"output.dir={tmp / 'taken'}")


def _bad_yaml(tmp: Path) -> list[str]:
    (tmp / "bad.yaml").write_text("training: {epochs: 1\n")
    return [str(tmp / "bad.yaml")]


# case -> (make the command's arguments from (tmp, monkeypatch), a phrase the one error line must hold)
BAD = {
    # --- configs: keys and types
    "unknown key": (lambda t, m: _with(t, "training.epoch=2"), "unknown config key 'training.epoch'"),
    "unknown key in yaml": (lambda t, m: _with(t, trainer={"epochs": 1}), "unknown config key 'trainer'"),
    "unknown nested key": (lambda t, m: _with(t, "method.fusion.lrr=1"), "unknown config key 'method.fusion.lrr'"),
    "unknown key in a task": (lambda t, m: _with(t, "tasks.0.colour=red"), "unknown config key 'tasks.0.colour'"),
    "wrong type int": (lambda t, m: _with(t, "training.epochs=abc"), "training.epochs: expected int"),
    "wrong type float": (lambda t, m: _with(t, "training.lr=abc"), "training.lr: expected float, got str 'abc'"),
    "wrong type bool": (lambda t, m: _with(t, "execution.use_gpu=maybe"), "execution.use_gpu: expected bool"),
    "float seed": (lambda t, m: _with(t, "training.seed=1.5"), "training.seed: expected int"),
    "override without =": (lambda t, m: _with(t, "training.epochs"), "'training.epochs' is not of the form key=value"),
    "missing config file": (lambda t, m: [str(t / "absent.yaml")], "config file not found"),
    "config not yaml": (lambda t, m: _bad_yaml(t), "not valid YAML"),
    # --- configs: ranges
    "negative max_failures": (lambda t, m: _with(t, "execution.max_failures=-1"), "execution.max_failures: must be >= 0"),
    "zero lr": (lambda t, m: _with(t, "training.lr=0"), "training.lr: must be > 0"),
    "nan lr": (lambda t, m: _with(t, "training.lr=.nan"), "training.lr: must be > 0, got nan"),
    "infinite finetune lr": (lambda t, m: _with(t, "training.finetune_lr=inf"), "training.finetune_lr: must be > 0"),
    "zero epochs": (lambda t, m: _with(t, "training.epochs=0"), "training.epochs: must be > 0"),
    "negative batch size": (lambda t, m: _with(t, "training.batch_size=-4"), "training.batch_size: must be > 0"),
    "zero eval batch size": (lambda t, m: _with(t, "training.eval_batch_size=0"), "training.eval_batch_size: must be > 0"),
    "negative seed": (lambda t, m: _with(t, "training.seed=-1"), "training.seed: must be >= 0"),
    "negative weight decay": (lambda t, m: _with(t, "training.weight_decay=-0.1"), "training.weight_decay: must be >= 0"),
    "zero max_train_examples": (lambda t, m: _with(t, "training.max_train_examples=0"),
                                "training.max_train_examples: must be > 0"),
    "zero reduction factor": (lambda t, m: _with(t, "adapter.reduction_factor=0"), "adapter.reduction_factor: must be > 0"),
    "negative rank": (lambda t, m: _with(t, "adapter.rank=-1"), "adapter.rank: must be > 0"),
    "low-shot fraction 0": (lambda t, m: _with(t, "method.low_shot_fraction=0"), "method.low_shot_fraction: must be in (0, 1]"),
    "low-shot fraction 1.5": (lambda t, m: _with(t, "method.low_shot_fraction=1.5"), "must be in (0, 1], got 1.5"),
    "negative fusion lr": (lambda t, m: _with(t, "method.fusion.lr=-1e-3"), "method.fusion.lr: must be > 0"),
    "zero temperature": (lambda t, m: _with(t, "method.distill.temperature=0"), "method.distill.temperature: must be > 0"),
    "negative dev cap": (lambda t, m: _with(t, "training.dev_examples=-5"),
                         "training.dev_examples: must be >= 0"),
    "negative teacher cache bound": (lambda t, m: _with(t, "method.distill.cache_max_mb=-1"),
                                     "method.distill.cache_max_mb: must be >= 0"),
    "teacher cache not a bool": (lambda t, m: _with(t, "method.distill.cache_teacher=5"),
                                 "method.distill.cache_teacher: expected bool"),
    "negative distill weight": (lambda t, m: _with(t, "method.distill.hidden_weight=-1"),
                                "method.distill.hidden_weight: must be >= 0"),
    "zero workers": (lambda t, m: _with(t, "execution.num_workers=0"), "execution.num_workers: must be > 0"),
    # --- configs: resources bounded by the machine (os.cpu_count(); unknown for a cluster's nodes)
    "threads beyond the machine": (lambda t, m: _with(t, "training.threads=100000"),
                                   "training.threads: 100000 is more than the"),
    "workers beyond the machine": (lambda t, m: _with(t, "execution.num_workers=100000"),
                                   "execution.num_workers: 100000 is more than the"),
    # --- configs: an explicit empty list is not replaced by defaults (only an absent `tasks` key is)
    "empty task list": (lambda t, m: _with(t, tasks=[]), "tasks: an empty list"),
    "empty task list override": (lambda t, m: _with(t, "tasks=[]"), "tasks: an empty list"),
    "zero arrival rate": (lambda t, m: _with(t, "stream.rate=0"), "stream.rate: must be > 0"),
    "dev_from_train 1": (lambda t, m: _with(t, "tasks.0.dev_from_train=1.0"), "tasks[a].dev_from_train: must be in [0, 1)"),
    "one class": (lambda t, m: _with(t, "tasks.0.n_classes=1"), "tasks[a].n_classes: a classification task needs at least 2"),
    "no dev examples": (lambda t, m: _with(t, "tasks.0.n_dev=0"), "tasks[a].n_dev: must be > 0"),
    "max_length 0": (lambda t, m: _with(t, "backbone.max_length=0"), "backbone.max_length: must be > 0"),
    "unknown choice": (lambda t, m: _with(t, "method.fusion.placement=middle"), "method.fusion.placement: 'middle' is not one of"),
    # --- configs: cross-field rules
    "unknown task in ordering": (lambda t, m: _with(t, "stream.ordering=[a, zz]"), "stream.ordering: unknown task 'zz'"),
    "duplicate task": (lambda t, m: _with(t, "tasks.1.name=a"), "tasks: duplicate task name 'a'"),
    "teacher_count too large": (lambda t, m: _with(t, "method.name=i2i", "method.teacher_count=5"),
                                "method.teacher_count: 5 is more than the 1 earlier tasks"),
    "unknown method": (lambda t, m: _with(t, "method.name=nonesuch"), "method.name: unknown method 'nonesuch'"),
    "kt reference without a reference": (lambda t, m: _with(t, "method.kt_reference=sequential_ft"),
                                         "method.kt_reference: 'sequential_ft' is order-dependent"),
    "output name with a path": (lambda t, m: _with(t, "output.name=../elsewhere"), "output.name: must be one folder name"),
    "output dir is a file": (lambda t, m: _output_is_a_file(t), "output.dir: "),
    # --- stores: reachable and writable
    "store on an unreachable endpoint": (_s3_store_on_a_closed_port,
                                         "execution.store_dir: cannot reach or write s3://bucket/store"),
    "store bad uri": (lambda t, m: _with(t, "execution.store_dir=s3://bucket/x?colour=red"),
                      "execution.store_dir: s3://bucket/x?colour=red is not a filesystem URI"),
    "store under a file": (lambda t, m: _output_is_a_file(t)[:1] + [f"execution.store_dir={t / 'taken' / 'store'}"],
                           "/taken is not a folder, so"),
    "store not writable": (lambda t, m: _with(t, "execution.store_dir=/proc/cl_sim/store"),
                           "execution.store_dir: cannot write in /proc"),
    "output not writable": (lambda t, m: _with(t, "output.dir=/proc/cl_sim/out"), "output.dir: cannot write in /proc"),
    # --- data files
    "missing data file": (lambda t, m: _file_task(t, GOOD_CSV) + [f"tasks.0.paths.train={t / 'nope.csv'}"],
                          "train file not found"),
    "missing label column": (lambda t, m: _file_task(t, GOOD_CSV, label_column="gold"), "label column 'gold'"),
    "unknown file suffix": (lambda t, m: _file_task(t, GOOD_CSV, suffix="data"), "cannot infer the format"),
    "empty file": (lambda t, m: _file_task(t, ""), "the train split is empty"),
    "csv cut inside a quote": (lambda t, m: _file_task(t, 'text,label\nred,x\n"blue sky,y\n'), "unexpected end of data"),
    "csv not text": (lambda t, m: _file_task(t, b"\xff\xfe\x00\x81 binary"), "codec can't decode"),
    "tsv cut mid-row": (lambda t, m: _file_task(t, "text\tlabel\nred\tx\nblue", suffix="tsv"),
                        "train.tsv line 3: 1 fields, expected 2"),
    "jsonl cut mid-object": (lambda t, m: _file_task(t, '{"text": "red", "label": "x"}\n{"text": "bl', suffix="jsonl"),
                             "train.jsonl line 2: not valid JSON"),
    "parquet cut in half": (lambda t, m: _file_task(t, _parquet(t, cut=True), suffix="parquet"),
                            "not a readable parquet file"),
    "parquet that is not parquet": (lambda t, m: _file_task(t, b"PAR1 nothing else", suffix="parquet"),
                                    "not a readable parquet file"),
    "single-class train split": (lambda t, m: _file_task(t, "text,label\nred,x\nblue,x\n"),
                                 "every train row has label 'x' (2 rows)"),
    "whitespace-only text": (lambda t, m: _file_task(t, "text,label\nred,x\n   ,y\nblue,y\n"),
                             "train.csv line 3: empty text (1 such row(s) in the train split)"),
    "label a JSON list": (lambda t, m: _jsonl_task(t, ["x", "y"]),
                          "train.jsonl line 2: label in column 'label' is a list, not a single value"),
    "label a JSON object": (lambda t, m: _jsonl_task(t, {"x": 1}),
                            "train.jsonl line 2: label in column 'label' is an object, not a single value"),
    "parquet labels that are lists": (lambda t, m: _file_task(t, _parquet_lists(t), suffix="parquet"),
                                      "train.parquet row 0: label in column 'label' is a list"),
    "dev label unseen in train": (lambda t, m: _file_task(t, GOOD_CSV, dev="text,label\nred,z\n"),
                                  "dev labels not seen in train: ['z']"),
    # --- models
    "backbone neither local nor offline": (_hub_offline, "backbone.name: cannot load 'no-such-org/no-such-model': "
                                                         "it is not in the Hugging Face cache and HF_HUB_OFFLINE is set"),
    "backbone hub unreachable": (_hub_unreachable, "backbone.name: cannot load 'no-such-org/no-such-model': it is not "
                                                   "in the Hugging Face cache and the hub (http://127.0.0.1:"),
    "backbone folder missing": (lambda t, m: _with(t, f"backbone.name={t / 'nope'}"), "backbone.name: no model folder"),
    "backbone folder without config": (lambda t, m: (t / "empty").mkdir() or _with(t, f"backbone.name={t / 'empty'}"),
                                       "has no config.json"),
    "backbone config not json": (lambda t, m: _model_folder(t, config="{not json"), "cannot load the tokenizer"),
    "backbone without weights": (lambda t, m: _model_folder(t), "cannot load the model"),
    "backbone weights cut": (lambda t, m: _model_folder(t, weights="cut"), "cannot load the model"),
    "backbone with shared layers": (lambda t, m: _albert_folder(t), "'albert' is not supported: ALBERT shares"),
    "max_length beyond the positions": (lambda t, m: _with(t, "backbone.max_length=600"),
                                        "backbone.max_length: a 600-token input does not run through 'tiny-bert'"),
}
if not torch.cuda.is_available():
    BAD["gpu without cuda"] = (lambda t, m: _with(t, "execution.use_gpu=true"), "execution.use_gpu: true, but no CUDA")


def _one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err, err
    return lines[0]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_nothing_written_and_validate_agrees_with_run(tmp_path, monkeypatch,
                                                                                    capsys, case):
    make_args, needle = BAD[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a default `runs/` would appear here
    args = make_args(tmp_path, monkeypatch)
    capsys.readouterr()  # what building the case printed (a saved model's progress bar)
    before = sorted(p.name for p in tmp_path.iterdir())
    errors = {}
    for command in ("validate", "run"):
        assert main([command, *args]) == 2
        errors[command] = _one_error_line(capsys)
    assert errors["validate"] == errors["run"]
    assert errors["run"].startswith("cl-sim: error: ") and needle in errors["run"], errors["run"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out/, no store/
    assert not any(work.iterdir())


def test_the_table_is_large_enough():
    assert len(BAD) >= 30


def test_dropped_empty_texts_are_counted_and_the_rest_validates(tmp_path, capsys, caplog):
    args = _file_task(tmp_path, "text,label\nred,x\n   ,y\nblue,y\ngreen,x\n", drop_empty_text=True)
    with caplog.at_level("WARNING", logger="cl_sim.data"):
        assert main(["validate", *args]) == 0
    out, _ = capsys.readouterr()
    assert "task 'f': dropped 1 train row(s) with empty text" in caplog.text
    assert "ok  f: classification, 2 labels, metric accuracy (dev 2, train 3)" in out


def test_a_sweep_checks_its_store_before_starting_ray(tmp_path, monkeypatch, capsys):
    """`cl-sim sweep` runs the same reachability check as validate/run, before any Ray start-up."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = [a for a in _s3_store_on_a_closed_port(tmp_path, monkeypatch) if a.startswith("execution.store_dir=")]
    capsys.readouterr()
    assert main(["sweep", "task_order", "--smoke-test", f"output.dir={tmp_path / 'out'}", *args]) == 2
    assert "execution.store_dir: cannot reach or write s3://bucket/store" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists() and not any(work.iterdir())
