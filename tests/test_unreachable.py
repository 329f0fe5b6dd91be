"""Stores and model hubs that cannot be reached fail at once, naming what was tried (issue 25)."""
import socket

import pytest

from cl_sim import backbone
from cl_sim.errors import ConfigError
from cl_sim.storage import check_reachable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_hub_check_tells_a_listening_endpoint_from_a_closed_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert backbone._reachable(f"http://127.0.0.1:{server.getsockname()[1]}") is None
    port = _closed_port()
    why = backbone._reachable(f"http://127.0.0.1:{port}")
    assert why is not None and why.startswith(f"127.0.0.1:{port}: ")


def test_an_unreachable_hub_loads_from_the_cache_only_and_fails_in_one_try(monkeypatch, capfd, caplog):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ConfigError, match=r"not in the Hugging Face cache and the hub \(http://127.0.0.1:\d+\) "
                                          r"cannot be reached \(127.0.0.1:\d+: "):
        backbone.load_backbone("no-such-org/no-such-model")
    said = capfd.readouterr().err + caplog.text
    assert "Retry" not in said and "thrown while requesting" not in said  # the hub client's retry warnings


def test_a_local_store_folder_is_probed_without_leaving_anything(tmp_path):
    check_reachable(tmp_path / "new" / "store")  # created by the run, not here
    check_reachable(tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="execution.store_dir: .*file is not a folder"):
        check_reachable(tmp_path / "file" / "store")


def test_an_s3_store_on_a_closed_port_fails_in_one_try(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    uri = f"s3://bucket/store?endpoint_override=127.0.0.1:{_closed_port()}&scheme=http&region=us-east-1"
    with pytest.raises(ConfigError, match=r"execution.store_dir: cannot reach or write s3://bucket/store"):
        check_reachable(uri)
