"""The durable store: entries by key, sha256-verified reads, and the manifest written last."""
import json

import pytest
import torch

import cl_sim.store as store_mod
from cl_sim.errors import StoreError
from cl_sim.store import Store


def _states() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"adapter": {"slot.down.weight": torch.randn(2, 8, generator=g),
                        "slot.down.bias": torch.randn(2, generator=g)},
            "head": {"proj.weight": torch.randn(3, 8, generator=g), "proj.bias": torch.zeros(3)}}


def test_put_has_meta_states(tmp_path):
    store = Store(tmp_path)
    assert not store.has("k") and store.keys() == []
    entry = store.put("k", _states(), meta={"phase": {"kind": "adapter"}, "metrics": {"dev_score": 0.5}})
    assert store.has("k") and store.keys() == ["k"]
    assert entry["groups"] == {"adapter": 18, "head": 27}
    assert entry["bytes"] == (tmp_path / "states" / "k.safetensors").stat().st_size
    meta = Store(tmp_path).meta("k")
    assert meta == entry and meta["phase"] == {"kind": "adapter"} and meta["metrics"]["dev_score"] == 0.5
    got = Store(tmp_path).states("k")  # a new Store: read back from disk
    want = _states()
    assert set(got) == set(want)
    for group in want:
        assert set(got[group]) == set(want[group])
        for name, tensor in want[group].items():
            assert torch.equal(got[group][name], tensor)


def test_put_is_idempotent_per_key(tmp_path):
    store = Store(tmp_path)
    first = store.put("k", _states(), meta={"n": 1})
    second = store.put("k", {"head": {"w": torch.ones(1)}}, meta={"n": 2})
    assert second == first and Store(tmp_path).meta("k")["n"] == 1


def test_unknown_key_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="no entry 'nope'"):
        Store(tmp_path).states("nope")


def test_a_corrupted_byte_is_detected(tmp_path):
    Store(tmp_path).put("k", _states(), meta={})
    path = tmp_path / "states" / "k.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the tensor bytes: the file still parses, only the sha256 can tell
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt") as info:
        Store(tmp_path).states("k")
    assert "k.safetensors" in str(info.value)


def test_a_missing_state_file_is_a_store_error(tmp_path):
    Store(tmp_path).put("k", _states(), meta={})
    (tmp_path / "states" / "k.safetensors").unlink()
    with pytest.raises(StoreError, match="missing"):
        Store(tmp_path).states("k")


def test_a_corrupt_manifest_entry_is_a_store_error(tmp_path):
    Store(tmp_path).put("k", _states(), meta={})
    (tmp_path / "manifest" / "k.json").write_text('{"key": "k", "sha')
    with pytest.raises(StoreError, match="corrupt"):
        Store(tmp_path).meta("k")


def test_manifest_is_written_after_the_tensors(tmp_path, monkeypatch):
    from cl_sim.storage import Files

    calls = []
    real = Files.write
    monkeypatch.setattr(Files, "write", lambda self, rel, data: (calls.append(rel), real(self, rel, data)))
    Store(tmp_path).put("k", _states(), meta={})
    assert calls == ["states/k.safetensors", "manifest/k.json"]
    assert json.loads((tmp_path / "manifest" / "k.json").read_text())["key"] == "k"


def test_a_crash_before_the_manifest_leaves_no_entry(tmp_path, monkeypatch):
    from cl_sim.storage import Files

    real = Files.write

    def crash(self, rel, data):
        if rel.startswith("manifest/"):
            raise KeyboardInterrupt("killed between the tensors and the manifest")
        real(self, rel, data)

    monkeypatch.setattr(Files, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        Store(tmp_path).put("k", _states(), meta={})
    monkeypatch.undo()
    store = Store(tmp_path)
    assert (tmp_path / "states" / "k.safetensors").is_file()  # tensors were written first
    assert not store.has("k") and store.keys() == []
    store.put("k", _states(), meta={"retry": True})  # a rerun completes the entry
    assert store.has("k") and store.meta("k")["retry"] is True
    assert torch.equal(Store(tmp_path).states("k")["head"]["proj.weight"], _states()["head"]["proj.weight"])


def test_no_temporary_files_are_left_behind(tmp_path):
    Store(tmp_path).put("k", _states(), meta={})
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
