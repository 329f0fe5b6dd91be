"""The store actor: object refs plus durable files, claims that make a phase train once."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

ray = pytest.importorskip("ray")

from cl_sim.errors import StoreError  # noqa: E402
from cl_sim.execution.store_actor import NAMESPACE, RayStoreClient, actor_name  # noqa: E402
from cl_sim.store import Store  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=1, include_dashboard=False, namespace="cl_sim")
    yield
    ray.shutdown()


@pytest.fixture
def client(tmp_path):
    c = RayStoreClient.start(tmp_path / "store")
    yield c
    c.close()


def actor_ends(root, timeout: float = 60.0) -> bool:
    """Whether the store's named actor is gone within `timeout` (it ends asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get_actor(actor_name(root), namespace=NAMESPACE)
        except ValueError:
            return True
        time.sleep(0.2)
    return False


def states(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"adapter": {"down": torch.randn(4, 2, generator=g)}, "head": {"w": torch.randn(2, generator=g)}}


def test_put_then_read_from_another_client_and_from_disk(client, tmp_path):
    entry = client.put("adapter-1", states(), {"phase": {"kind": "adapter"}, "metrics": {}})
    assert entry["groups"] == {"adapter": 8, "head": 2}
    other = RayStoreClient.connect(tmp_path / "store")  # what a Train worker does
    assert other.has("adapter-1") and not other.has("adapter-2")
    assert torch.equal(other.states("adapter-1")["adapter"]["down"], states()["adapter"]["down"])
    durable = Store(tmp_path / "store")
    assert durable.meta("adapter-1")["sha256"] == entry["sha256"]
    assert torch.equal(durable.states("adapter-1")["head"]["w"], states()["head"]["w"])


def test_a_new_actor_serves_entries_of_an_earlier_session(tmp_path):
    first = RayStoreClient.start(tmp_path / "store")
    first.put("k", states(1), {"metrics": {}})
    first.close()
    assert actor_ends(tmp_path / "store")  # the name is freed once the actor is gone
    second = RayStoreClient.start(tmp_path / "store")
    try:
        assert second.has("k")
        assert torch.equal(second.states("k")["adapter"]["down"], states(1)["adapter"]["down"])
    finally:
        second.close()


def test_claims_train_a_key_once(client):
    actor = client.actor
    assert ray.get(actor.claim.remote("k", "trial-1")) is True
    waiting = actor.claim.remote("k", "trial-2")  # blocks inside the actor until k is settled
    ready, _ = ray.wait([waiting], timeout=0.5)
    assert not ready
    client.put("k", states(), {"metrics": {}})
    assert ray.get(waiting) is False  # finished by trial-1: reuse it


def test_released_claim_passes_to_a_waiter(client):
    actor = client.actor
    assert ray.get(actor.claim.remote("k", "pool-a")) is True
    waiting = actor.claim.remote("k", "pool-b")
    ray.get(actor.release.remote("k"))  # pool-a's phase failed
    assert ray.get(waiting) is True
    assert ray.get(actor.release_owner.remote("pool-b")) == 1


def test_corrupt_file_raises_store_error_through_ray(tmp_path):
    root = tmp_path / "store"
    Store(root).put("k", states(), {"metrics": {}})
    (root / "states" / "k.safetensors").write_bytes(b"not what the manifest says")
    client = RayStoreClient.start(root)
    try:
        with pytest.raises(StoreError, match="corrupt"):
            client.states("k")
    finally:
        client.close()


def test_scores_and_tasks_round_trip(client):
    from cl_sim.data.synthetic import make_synthetic_task

    client.put_score("e1", 0.75, [[0.5, 0.5]])
    assert client.score("e1") == (0.75, [[0.5, 0.5]]) and client.score("e2") is None
    task = make_synthetic_task("t", "a", 1.0, 16, 8, 8, 2, seed=0)
    client.register_tasks({"t": task})
    client.register_tasks({"t": task})  # a second trial: nothing shipped again
    assert client.task(task.data_hash()).data_hash() == task.data_hash()


def test_a_dead_owners_claim_passes_to_the_waiter_after_its_lease(tmp_path):
    client = RayStoreClient.start(tmp_path / "store", lease_s=1.0)
    actor = client.actor
    try:
        assert ray.get(actor.claim.remote("k", "pool-a")) is True
        waiting = actor.claim.remote("k", "pool-b")
        for _ in range(6):  # pool-a alive: it renews, pool-b keeps waiting past the lease
            assert ray.get(actor.renew.remote("k", "pool-a")) is True
            assert not ray.wait([waiting], timeout=0.4)[0]
        # pool-a dies mid-phase (no more renewals): within a lease pool-b takes the phase over
        assert ray.get(waiting, timeout=5) is True
        assert ray.get(actor.renew.remote("k", "pool-a")) is False  # the claim is pool-b's now
        client.put("k", states(), {"metrics": {}})  # pool-b finishes it
        assert ray.get(actor.claim.remote("k", "pool-c")) is False
    finally:
        client.close()


def test_one_jobs_shutdown_leaves_the_store_to_the_job_still_using_it(tmp_path):
    first = RayStoreClient.start(tmp_path / "store")
    second = RayStoreClient.start(tmp_path / "store")  # another job on the same store
    first.put("k", states(2), {"metrics": {}})
    first.close()  # the first job shuts down
    time.sleep(0.5)
    assert second.has("k") and ray.get(second.actor.claim.remote("j", "pool")) is True  # still serving
    second.close()  # the last user: the actor ends
    assert actor_ends(tmp_path / "store")


def test_every_client_detaches_so_the_actor_ends_with_its_last_user(tmp_path):
    """A Tune trial's executor (not the pool's owner) detaches too: before, trials never did, so the
    detached actor outlived every job and kept every state in the object store."""
    driver = RayStoreClient.start(tmp_path / "store")
    trials = [RayStoreClient.start(tmp_path / "store") for _ in range(3)]
    assert ray.get(driver.actor.users_by_job.remote()) == {ray.get_runtime_context().get_job_id(): 4}
    for t in trials:
        t.close()
        t.close()  # idempotent: a second close does not take another user's count
    assert ray.get(driver.actor.users_by_job.remote()) == {ray.get_runtime_context().get_job_id(): 1}
    driver.close()
    assert actor_ends(tmp_path / "store")


def test_the_actor_name_carries_the_code_version(tmp_path, monkeypatch):
    """A job submitted with other code gets its own actor instead of running the first job's code."""
    from cl_sim import fingerprint

    before = actor_name(tmp_path / "store")
    monkeypatch.setattr(fingerprint, "code_version", lambda: "0123456789abcdef")
    assert actor_name(tmp_path / "store") != before and "0123456789abcdef" in actor_name(tmp_path / "store")


def test_owned_states_are_bounded_and_evicted_entries_reread_from_disk(tmp_path):
    one = sum(t.numel() * t.element_size() for part in states().values() for t in part.values())
    client = RayStoreClient.start(tmp_path / "store", ref_bytes=2 * one)
    try:
        for i in range(5):
            client.put(f"k{i}", states(i), {"metrics": {}})
        held = ray.get(client.actor.stats.remote())
        assert held["owned_refs"] == 2 and held["owned_bytes"] <= 2 * one and held["entries"] == 5
        fresh = RayStoreClient.connect(tmp_path / "store")  # no per-process cache: through the actor
        assert torch.equal(fresh.states("k0")["adapter"]["down"], states(0)["adapter"]["down"])
        assert ray.get(client.actor.stats.remote())["owned_refs"] == 2  # k0 re-owned, the oldest dropped
    finally:
        client.close()


DEAD_DRIVER = """
import os, sys, ray
from cl_sim.execution.store_actor import RayStoreClient
ray.init(address=sys.argv[1], namespace="cl_sim")
RayStoreClient.start(sys.argv[2])
os._exit(0)  # a driver killed before it detaches
"""


def test_a_job_that_dies_attached_is_dropped_by_the_reaper(tmp_path):
    client = RayStoreClient.start(tmp_path / "store", reap_s=0.5)
    try:
        address = ray.get_runtime_context().gcs_address
        subprocess.run([sys.executable, "-c", DEAD_DRIVER, address, str(tmp_path / "store")], check=True,
                       timeout=120, capture_output=True)
        me = ray.get_runtime_context().get_job_id()
        deadline = time.monotonic() + 30
        while ray.get(client.actor.users_by_job.remote()) != {me: 1} and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ray.get(client.actor.users_by_job.remote()) == {me: 1}
    finally:
        client.close()
