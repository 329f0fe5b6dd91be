"""The phase pool's queue order, without a cluster: evaluations first (each unblocks a caller that
then queues its next phase), then phases, then stops; each kind in order of arrival."""
import asyncio

import pytest

pytest.importorskip("ray")

from cl_sim.execution.phase_pool import PhasePool  # noqa: E402

Pool = PhasePool.__ray_actor_class__  # the plain class behind the actor


class FakeStore:
    """The store actor's claim interface, in memory, recording every call."""

    def __init__(self, grant: bool = True):
        self.grant, self.calls = grant, []
        for name in ("has", "claim", "renew", "release"):
            setattr(self, name, _Method(self, name))


class _Method:
    def __init__(self, store, name):
        self.store, self.name = store, name

    def remote(self, *args):
        self.store.calls.append((self.name, args[0]))
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        fut.set_result(False if self.name == "has" else self.store.grant)
        return fut


def _pool(store=None):
    pool = object.__new__(Pool)  # no store actor, no trainers: only the queue logic
    pool.spec, pool.name = {"slots": 1}, "test"
    pool.store = store or FakeStore()
    pool.queue, pool.jobs, pool.assigned, pool.watchers = asyncio.PriorityQueue(), {}, {}, {}
    pool.ids, pool.stopping = iter(range(100)), False
    pool.stats = {"trained": 0, "reused": 0, "evaluated": 0, "slot_restarts": 0, "phase_s": 0.0, "eval_s": 0.0}
    pool.since, pool.renewals, pool.inflight = {}, {}, {}
    pool._launch = lambda: pool.watchers.setdefault(0, asyncio.get_running_loop().create_future())
    return pool


def test_evaluations_jump_the_queue_and_stop_goes_last():
    async def scenario():
        pool = _pool()
        order = [{"op": "phase", "key": "p1"}, {"op": "stop"}, {"op": "eval", "key": "e1"},
                 {"op": "phase", "key": "p2"}, {"op": "eval", "key": "e2"}]
        waiting = [asyncio.ensure_future(pool._submit(dict(j))) for j in order]
        await asyncio.sleep(0)
        served = []
        for _ in order:
            job = await pool.next_job(0, timeout=1.0)
            served.append(job.get("key", job["op"]))
            if job["op"] != "stop":
                await asyncio.sleep(0.05 if job["op"] == "phase" else 0.0)  # a slot's time on the job
                await pool.finish(0, job["id"], {"ok": job["key"]})
        await asyncio.gather(*waiting)
        assert await pool.next_job(0, timeout=0.01) is None  # nothing left
        assert pool.stats["phase_s"] >= 0.1 > pool.stats["eval_s"]  # the busy clock counts per kind of job
        return served

    assert asyncio.run(scenario()) == ["e1", "e2", "p1", "p2", "stop"]


def test_a_queued_phase_holds_no_claim_and_a_running_one_renews_only_while_it_runs():
    """Claims at dispatch: a pool whose trainers wait for resources holds no claim that another
    job's running pool would wait on (two pools of different shapes cannot deadlock)."""
    async def scenario():
        store = FakeStore()
        pool = _pool(store)
        first = asyncio.ensure_future(pool.run({"kind": "adapter"}, "p1", "d"))
        second = asyncio.ensure_future(pool.run({"kind": "adapter"}, "p1", "d"))  # same key, another trial
        await asyncio.sleep(0.01)
        assert [c for c in store.calls if c[0] == "claim"] == []  # queued: nothing claimed
        assert pool.queue.qsize() == 1  # one job for both callers
        job = await pool.next_job(0, timeout=1.0)
        assert ("claim", "p1") in store.calls and 0 in pool.renewals  # running: claimed, lease renewed
        await pool.finish(0, job["id"], None, RuntimeError("worker lost"))
        assert 0 not in pool.renewals and ("release", "p1") in store.calls  # failed: claim given back
        for caller in (first, second):
            with pytest.raises(RuntimeError, match="worker lost"):
                await caller

    asyncio.run(scenario())


def test_a_phase_another_pool_finished_while_queued_is_not_run():
    async def scenario():
        pool = _pool(FakeStore(grant=False))  # the claim answers False: the key is in the store now
        waiting = asyncio.ensure_future(pool.run({"kind": "adapter"}, "p1", "d"))
        await asyncio.sleep(0.01)
        assert await pool.next_job(0, timeout=1.0) is None and not pool.renewals
        assert (await waiting)["trained"] is False

    asyncio.run(scenario())
