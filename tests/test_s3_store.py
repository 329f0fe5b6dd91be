"""The store and the Train checkpoints on object storage (issue 10): a real S3 API server
(`moto[server]`, started here) behind a `s3://` URI, through the local and the Ray executor."""
from __future__ import annotations

import socket

import pytest
import torch

moto_server = pytest.importorskip("moto.server")

from cl_sim.cli import main  # noqa: E402
from cl_sim.store import Store  # noqa: E402


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", "test")  # moto accepts any; Ray workers inherit the environment
    mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield lambda prefix: (f"s3://bucket/{prefix}?endpoint_override=127.0.0.1:{port}&scheme=http"
                          f"&region=us-east-1&allow_bucket_creation=true")
    server.stop()
    mp.undo()


def test_store_round_trip_keeps_its_checks_on_s3(s3):
    uri = s3("unit/store")
    store = Store(uri)
    store.put("adapter-k", {"adapter": {"w": torch.arange(4.0)}}, {"metrics": {}})
    fresh = Store(uri)  # another process, no cache: everything comes back from the bucket
    assert fresh.keys() == ["adapter-k"] and fresh.meta("adapter-k")["bytes"] > 0
    assert torch.equal(fresh.states("adapter-k")["adapter"]["w"], torch.arange(4.0))
    fresh.files.write("states/adapter-k.safetensors", b"not the tensors")  # a damaged object
    with pytest.raises(Exception, match="corrupt"):
        Store(uri).states("adapter-k")


def test_cl_sim_run_with_an_s3_store_reuses_it_on_a_rerun(s3, tmp_path, capsys):
    uri = s3("run/store")
    args = ["run", "backbone.name=tiny-bert", "backbone.max_length=32", "training.epochs=1", "training.threads=1",
            "tasks=[{name: a, family: a, n_train: 32, n_dev: 16, n_test: 16}]", f"execution.store_dir={uri}",
            f"output.dir={tmp_path}"]
    assert main(args + ["output.name=first"]) == 0
    assert "phases trained 1" in capsys.readouterr().out
    assert main(args + ["output.name=second"]) == 0
    assert "phases trained 0, reused from store" in capsys.readouterr().out
    assert len(Store(uri).keys()) == 1


def test_store_ls_verify_gc_work_on_s3(s3, capsys, monkeypatch):
    from cl_sim import fingerprint as fp

    uri = s3("admin/store")
    store = Store(uri)
    store.put("adapter-k", {"adapter": {"w": torch.arange(4.0)}}, {"metrics": {}, **_stamp()})
    store.files.write("states/adapter-orphan.safetensors", b"x")
    assert main(["store", "ls", "--store", uri]) == 0
    assert "adapter-k" in capsys.readouterr().out
    assert main(["store", "verify", "--store", uri]) == 0
    store.files.write("states/adapter-k.safetensors", b"damaged")
    assert main(["store", "verify", "--store", uri]) == 1
    assert "adapter-k: adapter-k.safetensors sha256" in capsys.readouterr().out
    assert main(["store", "gc", "--store", uri, "--delete"]) == 0
    out = capsys.readouterr().out
    assert "states/adapter-orphan.safetensors  (no manifest entry)" in out and "manifest/adapter-k" not in out
    monkeypatch.setattr(fp, "code_version", lambda root=fp.PACKAGE: "next-version")
    assert main(["store", "gc", "--store", uri, "--delete"]) == 0
    assert Store(uri).keys() == [] and Store(uri).files.names("states", ".safetensors") == []


def _stamp() -> dict:
    from cl_sim import fingerprint as fp

    return {"fingerprint": "fp-x", "fingerprint_parts": {"code": fp.code_version(), "versions": fp.dependency_versions()}}


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ray_train_phases_write_store_and_checkpoints_to_s3(s3, tmp_path):
    ray = pytest.importorskip("ray")
    from pyarrow import fs

    from cl_sim.config import load_config
    from cl_sim.execution.ray_train import make_executor
    from cl_sim.simulate import run_stream
    from cl_sim.tasks import load_tasks

    uri = s3("ray/store")
    cfg = load_config(None, ["backbone.name=tiny-bert", "training.epochs=2", "training.threads=1",
                             "tasks=[{name: a, family: a, n_train: 32, n_dev: 16, n_test: 16}]",
                             "execution.executor=ray", "execution.slots=1", "execution.cpus_per_worker=1",
                             "execution.checkpoint_every_s=0", f"execution.store_dir={uri}"])
    tasks = load_tasks(cfg)
    filesystem, base = fs.FileSystem.from_uri(uri)

    def checkpoint_files():
        found = filesystem.get_file_info(fs.FileSelector(f"{base}/checkpoints", recursive=True,
                                                         allow_not_found=True))
        return [i for i in found if i.base_name == "phase.pt"]

    ray.init(num_cpus=2, include_dashboard=False, namespace="cl_sim")
    try:
        executor = make_executor(cfg, Store(uri), tasks, log=lambda m: None)
        rec = run_stream(cfg, tasks, executor, ("a",), log=lambda m: None)
        assert checkpoint_files()  # while the slot runs, Ray Train's epoch checkpoints are in the bucket
        executor.shutdown(stop_ray=False)
        assert not checkpoint_files()  # a stopped slot removes its Train run from the bucket
        again = make_executor(cfg, Store(uri), tasks, log=lambda m: None)  # a new store actor, same bucket
        rerun = run_stream(cfg, tasks, again, ("a",), log=lambda m: None)
        assert again.trained == 0 and rerun.R[0, 0] == rec.R[0, 0]
        again.shutdown(stop_ray=False)
    finally:
        ray.shutdown()
    [key] = Store(uri).keys()
    assert Store(uri).meta(key)["execution"]["executor"] == "ray"


def test_remove_train_run_locally_and_on_a_filesystem(tmp_path):
    from pyarrow import fs

    from cl_sim.storage import remove_train_run

    (tmp_path / "ckpt" / "run-1" / "checkpoint_0").mkdir(parents=True)
    (tmp_path / "ckpt" / "run-1" / "checkpoint_0" / "state.pt").write_bytes(b"x")
    (tmp_path / "ckpt" / "run-2").mkdir()
    remove_train_run(str(tmp_path / "ckpt"), None, "run-1")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["run-2"]
    remove_train_run(str(tmp_path / "ckpt"), fs.LocalFileSystem(), "run-2")  # the object-store branch
    assert not any((tmp_path / "ckpt").iterdir())
    assert remove_train_run(str(tmp_path / "ckpt"), fs.LocalFileSystem(), "gone")  # already gone: fine
    assert remove_train_run(str(tmp_path / "ckpt"), None, "gone")


def test_remove_train_run_logs_what_it_cannot_remove(tmp_path, caplog):
    from cl_sim.storage import remove_train_run

    class ReadOnly:  # a filesystem that lists the run but refuses to delete it (no delete permission)
        def get_file_info(self, path):
            from pyarrow import fs

            return fs.FileInfo(path, fs.FileType.Directory)

        def delete_dir(self, path):
            raise OSError("AccessDenied")

    with caplog.at_level("WARNING", logger="cl_sim.storage"):
        assert not remove_train_run("bucket/checkpoints", ReadOnly(), "run-1")
    assert "bucket/checkpoints/run-1" in caplog.text and "AccessDenied" in caplog.text


def test_validate_checks_the_store_is_reachable_and_writable_and_leaves_no_probe(s3, tmp_path, capsys):
    from pyarrow import fs

    from cl_sim.errors import ConfigError
    from cl_sim.storage import check_reachable

    uri = s3("probe/store")
    Store(uri).files.write("keep.txt", b"x")  # the bucket exists, the store folder too
    check_reachable(uri)  # writes and deletes one probe object
    filesystem, base = fs.FileSystem.from_uri(uri)
    left = [i.base_name for i in filesystem.get_file_info(fs.FileSelector(base, recursive=True))]
    assert left == ["keep.txt"]
    missing = uri.replace("s3://bucket/", "s3://no-such-bucket/").replace("&allow_bucket_creation=true", "")
    with pytest.raises(ConfigError, match="execution.store_dir: bucket 'no-such-bucket' does not exist"):
        check_reachable(missing)
    check_reachable(missing + "&allow_bucket_creation=true")  # the run's first write creates it
    assert filesystem.get_file_info("no-such-bucket").type == fs.FileType.NotFound  # validate did not
    args = ["validate", "backbone.name=tiny-bert", "tasks=[{name: a, family: a, n_train: 32, n_dev: 16, n_test: 16}]",
            f"output.dir={tmp_path}"]
    assert main(args + [f"execution.store_dir={uri}"]) == 0
    assert main(args + [f"execution.store_dir={missing}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"cl-sim: error: execution.store_dir: bucket 'no-such-bucket' does not exist (create it, or add "
        f"allow_bucket_creation=true to the URI)"]
