"""`cl-sim validate` reports each task; the console script runs (bad inputs: tests/test_bad_inputs.py)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cl_sim.cli import main

SYN = dict(n_train=32, n_dev=16, n_test=16, n_signal_words=12, n_filler_words=12)


def _config(tmp_path: Path, **sections) -> Path:
    tree = {"backbone": {"name": "tiny-bert", "max_length": 32},
            "tasks": [{"name": "a", "family": "a", **SYN}, {"name": "b", "family": "b", **SYN}],
            "training": {"epochs": 1, "batch_size": 16, "threads": 1},
            "output": {"dir": str(tmp_path / "out")},
            "execution": {"store_dir": str(tmp_path / "store")}}
    tree.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _csv_task(tmp_path: Path, **task) -> dict:
    train = tmp_path / "train.csv"
    train.write_text("text,label\nred apple,x\ngreen pear,y\nblue sky,x\nold stone,y\n")
    dev = tmp_path / "dev.csv"
    dev.write_text("text,label\nred sky,x\nold pear,y\n")
    return {"name": "f", "source": "file", "paths": {"train": str(train), "dev": str(dev)},
            "text_columns": ["text"], **task}


def test_validate_reports_each_task(tmp_path, capsys):
    code = main(["validate", str(_config(tmp_path, tasks=[{"name": "a", **SYN}, _csv_task(tmp_path)]))])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ok  a: classification, 2 labels" in out and "ok  f: classification, 2 labels" in out
    assert "config ok" in out
    assert not (tmp_path / "out").exists()  # validate trains and writes nothing


def test_cl_sim_validate_in_a_subprocess(tmp_path):
    exe = Path(sys.executable).parent / "cl-sim"  # the console script of the interpreter running the tests
    exe = str(exe) if exe.is_file() else shutil.which("cl-sim")
    good = subprocess.run([exe, "validate", str(_config(tmp_path)), "training.epochs=2"],
                          capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr
    assert "config ok: method st_a, 2 tasks" in good.stdout


def test_run_local_switch_trains_in_process_even_against_a_cluster(tmp_path, capsys, monkeypatch):
    import pandas as pd

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # auto would join this (nothing listens there)
    code = main(["run", str(_config(tmp_path)), "--local", "output.name=r"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "local executor" in err and "executor: local" in err  # progress lines: stderr
    assert yaml.safe_load((tmp_path / "out" / "r" / "config.yaml").read_text())["execution"]["executor"] == "local"
    phases = pd.read_parquet(tmp_path / "out" / "r" / "phases.parquet")
    assert set(phases["executor"]) == {"local"} and set(phases["workers"]) == {1}


def test_quiet_prints_results_only_and_normal_prints_a_line_per_phase(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("CL_SIM_VERBOSITY", "1")
    config = str(_config(tmp_path))
    assert main(["run", config, "output.name=normal"]) == 0
    normal = capsys.readouterr()
    assert "done  adapter  a" in normal.err and "examples/s" in normal.err and "[1/2] a:" in normal.err
    assert "done  adapter" not in normal.out and "accuracy matrix" in normal.out  # stdout: results only
    assert main(["--quiet", "run", config, "output.name=quiet"]) == 0  # same phases: reused from the store
    quiet = capsys.readouterr()
    assert "train " not in quiet.out + quiet.err and "[1/2]" not in quiet.out + quiet.err and "it/s" not in quiet.err
    assert "accuracy matrix" in quiet.out and "phases trained 0" in quiet.out  # the results are still there


@pytest.mark.parametrize("command", ["run", "sweep", "validate", "report", "show-config", "store"])
def test_every_command_has_its_own_help(command, capsys):
    assert main([command, "--help"]) == 0  # never "config file not found: --help"
    out = capsys.readouterr().out
    assert out.startswith(f"cl-sim {command}")
    assert "RUN_DIR" in out if command == "report" else "key=value" in out


def test_help_parses_without_importing_ray_or_torch():
    code = ("import sys, time; t = time.perf_counter(); from cl_sim.cli import main\n"
            "main(['sweep', '--help'])\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch', 'transformers', 'pandas'})\n"
            "print('HEAVY', heavy, round(time.perf_counter() - t, 3))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cl-sim sweep CONFIG|NAME" in proc.stdout and "--smoke-test" in proc.stdout and "usage: cl-sim" in proc.stdout
    line = proc.stdout.strip().splitlines()[-1]
    # what keeps help under a second (0.6-0.8 s measured, docs) is importing none of these; the time
    # itself is printed, not asserted (timings are benchmarks' business, not tests')
    assert line.startswith("HEAVY []"), line


def test_show_config_and_validate_read_sweep_files(tmp_path, capsys):
    assert main(["show-config", "experiments/configs/task_order.yaml"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["sweep"]["methods"] == ["st_a", "i2i"] and "backbone:" in out
    assert main(["show-config", "hparam_search", "sweep.search=random"]) == 0  # a shipped config by name
    assert yaml.safe_load(capsys.readouterr().out)["sweep"]["space"]["training.lr"] == {"loguniform": [1e-4, 1e-2]}
    assert main(["validate", "hparam_search", "backbone.name=tiny-bert"]) == 0
    out = capsys.readouterr().out
    assert "sweep ok: hparam_search" in out and "space: training.lr, adapter.reduction_factor" in out


@pytest.mark.parametrize("argv, message", [
    (["sweep", "task_order", "--smoke-tset"], "unknown flag '--smoke-tset' (did you mean '--smoke-test'?)"),
    (["swep", "task_order"], "unknown command 'swep' (did you mean 'sweep'?)"),
    (["sweep", "task_ordr"], "did you mean 'task_order'?"),
    (["show-config", "training.lrr=1"], "unknown config key 'training.lrr' (did you mean 'training.lr'?)"),
    (["show-config", "tasks.0.n_trian=1"], "did you mean 'tasks.0.n_train'?"),
    (["sweep", "hparam_search", "sweep.space.training.lrr={uniform: [0, 1]}"], "did you mean 'training.lr'?"),
])
def test_mistyped_flags_keys_and_names_say_what_was_meant(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def _events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of TensorBoard event files, read with tensorboardX's protos (no tensorboard needed)."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars: dict = {}
    for path in folder.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (n,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + n])
            at += 12 + n + 4
            for v in event.summary.value:
                scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
    return scalars


def test_run_writes_tensorboard_events_with_per_step_loss(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tensorboardX")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["run", str(_config(tmp_path)), "--local", "output.name=tb", "training.epochs=2"]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    scalars = _events(tmp_path / "out" / "tb" / "tensorboard")
    loss = scalars["loss/1-a/adapter"]
    assert [s for s, _ in loss] == list(range(1, len(loss) + 1)) and len(loss) == 4  # 32 examples / 16 x 2 epochs
    assert all(v > 0 for _, v in loss)
    assert len(scalars["dev_score/adapter"]) == 2 and [s for s, _ in scalars["stream/running_avg"]] == [1, 2]
