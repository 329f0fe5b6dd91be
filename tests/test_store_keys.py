"""Store keys follow the code and the weights (issue 9): what must change a key, what must not,
and entries from another code version ignored and reported, never reused or deleted."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cl_sim import fingerprint as fp
from cl_sim.backbone import build_tiny, load_tokenizer
from cl_sim.cli import main
from cl_sim.config import load_config
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.execution.local import LocalExecutor
from cl_sim.methods.base import MethodContext
from cl_sim.phases import cached_backbone
from cl_sim.store import Store
from cl_sim.store_admin import foreign_note

TINY_TASK = dict(n_train=32, n_dev=16, n_test=16, n_signal_words=12, n_filler_words=12)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_caches():
    fp.clear_caches()
    yield
    fp.clear_caches()
    cached_backbone.cache_clear()


def _phase(backbone: str = "tiny-bert"):
    cfg = load_config(None, [f"backbone.name={backbone}", "training.epochs=1", "training.batch_size=16",
                             "backbone.max_length=32"])
    task = make_synthetic_task("t", "a", **TINY_TASK)
    return MethodContext(cfg, task, run=lambda p: p.key()).phase("adapter"), task


def test_code_version_changes_the_key(monkeypatch):
    phase, _ = _phase()
    before = phase.key()
    monkeypatch.setattr(fp, "code_version", lambda root=fp.PACKAGE: "edited-losses")
    fp.fingerprint.cache_clear()
    assert phase.key() != before
    assert phase.config_hash() == _phase()[0].config_hash()  # the configuration itself is unchanged


def test_editing_a_result_module_changes_the_code_version(tmp_path):
    version = fp.code_version.__wrapped__  # uncached: the copy changes between calls
    copy = tmp_path / "cl_sim"
    shutil.copytree(fp.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert version(copy) == fp.code_version()  # another folder, same code: same version
    losses = copy / "losses.py"
    losses.write_text(losses.read_text() + "\n# a one-line change\n")
    assert version(copy) != fp.code_version()
    (copy / "cli.py").write_text("# the CLI does not shape results\n")
    losses.write_text((fp.PACKAGE / "losses.py").read_text().replace("\n", "\r\n"))  # CRLF checkout
    assert version(copy) == fp.code_version()


def test_dependency_version_changes_the_key(monkeypatch):
    phase, _ = _phase()
    before = phase.key()
    real = fp._version
    monkeypatch.setattr(fp, "_version", lambda d: "99.0" if d == "transformers" else real(d))
    fp.fingerprint.cache_clear()
    assert phase.key() != before


def _save_backbone(folder: Path, seed: int) -> None:
    build_tiny("bert", vocab_size=len(load_tokenizer("tiny-bert")), seed=seed).save_pretrained(folder)
    load_tokenizer("tiny-bert").save_pretrained(folder)


def test_backbone_weights_change_the_key_but_its_path_does_not(tmp_path):
    a, b = tmp_path / "a" / "bert", tmp_path / "b" / "bert"
    _save_backbone(a, seed=0)
    shutil.copytree(a, b)
    assert fp.backbone_digest(str(a)) == fp.backbone_digest(str(b))  # same weights, other folder
    before = fp.backbone_digest(str(a))
    _save_backbone(a, seed=1)  # the folder's weights change in place
    fp.clear_caches()
    cached_backbone.cache_clear()
    assert fp.backbone_digest(str(a)) != before


def test_key_is_the_same_in_another_process():
    phase, _ = _phase()
    code = ("from tests.test_store_keys import _phase; print(_phase()[0].key())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == phase.key()


def test_entry_from_another_code_version_is_ignored_and_reported(tmp_path, monkeypatch):
    phase, task = _phase()
    store = Store(tmp_path / "store")
    old = LocalExecutor(store, {"t": task}, threads=1)
    old_key = old.run(phase)
    assert foreign_note(store, "tiny-bert") is None
    monkeypatch.setattr(fp, "code_version", lambda root=fp.PACKAGE: "next-version")
    fp.fingerprint.cache_clear()
    assert "store: 1 entries from another code version" in foreign_note(store, "tiny-bert")
    new = LocalExecutor(store, {"t": task}, threads=1)
    assert new.run(phase) != old_key and new.trained == 1 and new.reused == 0  # retrained, not reused
    assert store.has(old_key)  # reported, never deleted


def _cli_store(tmp_path: Path) -> Path:
    phase, task = _phase()
    root = tmp_path / "store"
    LocalExecutor(Store(root), {"t": task}, threads=1).run(phase)
    return root


@pytest.mark.parametrize("target", ["states", "manifest"])
def test_verify_catches_a_flipped_byte(tmp_path, capsys, target):
    root = _cli_store(tmp_path)
    assert main(["store", "verify", "--store", str(root)]) == 0
    path = next((root / target).iterdir())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["store", "verify", "--store", str(root)]) == 1
    out = capsys.readouterr().out
    assert "1 problems" in out and path.stem.split(".")[0] in out


def test_gc_dry_run_lists_other_versions_and_delete_removes_them(tmp_path, capsys, monkeypatch):
    root = _cli_store(tmp_path)
    (root / "states" / "adapter-orphan.safetensors").write_bytes(b"x")
    assert main(["store", "gc", "--store", str(root)]) == 0
    assert "another code version" not in capsys.readouterr().out  # current entries are kept
    monkeypatch.setattr(fp, "code_version", lambda root=fp.PACKAGE: "next-version")
    before = sorted(p.name for p in root.rglob("*"))
    assert main(["store", "gc", "--store", str(root)]) == 0
    out = capsys.readouterr().out
    assert "would remove  manifest/adapter-" in out and "another code version" in out
    assert "adapter-orphan.safetensors  (no manifest entry)" in out
    assert sorted(p.name for p in root.rglob("*")) == before  # dry run: nothing removed
    assert main(["store", "gc", "--store", str(root), "--delete"]) == 0
    assert not list((root / "manifest").iterdir()) and not list((root / "states").iterdir())
    assert main(["store", "ls", "--store", str(root)]) == 0
    assert "0 entries" in capsys.readouterr().out


def test_store_command_on_a_folder_that_is_no_store(tmp_path, capsys):
    assert main(["store", "ls", "--store", str(tmp_path / "nothing")]) == 2
    assert "is not a cl_sim store" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def _imports(rel: str, seen: set) -> set:
    """cl_sim modules `rel` imports (module level or not), transitively, package-relative."""
    if rel in seen:
        return seen
    seen.add(rel)
    for node in ast.walk(ast.parse((fp.PACKAGE / rel).read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cl_sim"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("cl_sim")]
        for name in names:
            parts = "/".join(name.split(".")[1:])
            for cand in (f"{parts}.py", f"{parts}/__init__.py"):
                if (fp.PACKAGE / cand).is_file():
                    _imports(cand, seen)
    return seen


def test_every_module_a_phase_or_evaluation_runs_is_hashed_or_declared_keyed_elsewhere():
    hashed = {p.relative_to(fp.PACKAGE).as_posix() for pattern in fp.RESULT_MODULES for p in fp.PACKAGE.glob(pattern)}
    used = _imports("train.py", set())
    assert "teacher_cache.py" in used and "teacher_cache.py" in hashed
    elsewhere = {p.relative_to(fp.PACKAGE).as_posix() for pattern in fp.KEYED_ELSEWHERE for p in fp.PACKAGE.glob(pattern)}
    unlisted = used - hashed - elsewhere
    assert not unlisted, f"add to fingerprint.RESULT_MODULES (or KEYED_ELSEWHERE, with the reason): {sorted(unlisted)}"


def test_a_torch_build_tag_is_not_a_code_difference(monkeypatch):
    """The CPU head runs `2.13.0+cpu`, GPU nodes `2.13.0` (or `+cu128`): one fingerprint for both,
    so GPU-trained entries are neither "from another code version" nor deleted by `store gc`."""
    import importlib.metadata

    real = importlib.metadata.version
    prints = set()
    for build in ("2.13.0+cpu", "2.13.0", "2.13.0+cu128"):
        monkeypatch.setattr(importlib.metadata, "version", lambda d, b=build: b if d == "torch" else real(d))
        fp.clear_caches()
        prints.add(fp.fingerprint("tiny-bert"))
        assert fp.dependency_versions()["torch"] == "2.13.0"
    assert len(prints) == 1


def test_entries_record_where_they_ran_and_ls_shows_it(tmp_path, capsys):
    import torch

    root = _cli_store(tmp_path)
    [key] = Store(root).keys()
    ran = Store(root).meta(key)["execution"]
    assert (ran["device"], ran["workers"], ran["torch"]) == ("cpu", 1, torch.__version__)
    assert main(["store", "ls", "--store", str(root)]) == 0
    assert f"local 1x cpu (torch {torch.__version__})" in capsys.readouterr().out
