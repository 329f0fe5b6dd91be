"""The phase pool's queue order, without a cluster: evaluations first (each unblocks a caller that
then queues its next phase), then phases, then stops; each kind in order of arrival."""
import asyncio

import pytest

pytest.importorskip("ray")

from cl_sim.execution.phase_pool import PhasePool  # noqa: E402

Pool = PhasePool.__ray_actor_class__  # the plain class behind the actor


def _pool():
    pool = object.__new__(Pool)  # no store actor, no trainers: only the queue logic
    pool.spec, pool.name = {"slots": 1}, "test"
    pool.queue, pool.jobs, pool.assigned, pool.watchers = asyncio.PriorityQueue(), {}, {}, {}
    pool.ids, pool.stopping = iter(range(100)), False
    pool.stats = {"trained": 0, "reused": 0, "evaluated": 0, "slot_restarts": 0, "phase_s": 0.0, "eval_s": 0.0}
    pool.since = {}
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
