"""The shared adapter store on a Ray cluster: one named actor owns every finished state.

    store = RayStoreClient.start("runs/store")     # driver: create (or find) the actor
    store = RayStoreClient.connect("runs/store")   # Train worker / Tune trial: find it by name
    store.put(key, states, meta)                   # -> object store + safetensors + manifest
    states = store.states(key)                     # read from the object store, not via the driver

Why an actor: an object put by a Ray worker dies with that worker (ray#40731), while objects
the actor puts itself live as long as the actor, so every finished phase stays readable after
the Train worker that computed it is gone. The actor is also the only writer of the durable
core `Store` (safetensors + sha256 manifest, written atomically), so a killed worker or driver
loses no finished phase and a later session re-reads the files (`get_ref` re-puts them).

Claims make concurrent requests for one phase train it once: `claim(key, owner)` answers True
to exactly one caller; every other caller waits inside the actor until that caller `put`s the
key (then gets False: reuse it) or `release`s it (then one of them gets the claim). A claim is a
lease: its owner `renew`s it while it trains (the phase pool does, every `LEASE_S / 3`); when the
owner dies (its pool, node or driver gone) the renewals stop, and after `LEASE_S` a waiter takes
the claim over and trains the phase itself instead of waiting forever.

Lifetime: the actor is detached and counts, per Ray job, the clients `attach`ed to it (a driver,
its Tune trials); every client detaches when it closes, and the last detach ends the actor. A job
that dies without detaching is dropped when the actor sees it dead in Ray's job table (checked
every `REAP_S`), so the actor never outlives its users. One job's shutdown never ends a store
another job still uses. The actor's name holds the code version (`fingerprint.code_version`): a
job submitted with other code gets its own actor (and its own keys) instead of running against
the first job's code. Memory is bounded: the actor owns refs to at most `REF_BYTES` of states
(least recently used first out); an evicted entry is re-read from the durable files on demand.

Task data travels the same way: `put_task` stores each `Task` once, keyed by its data hash, and
workers fetch it with `task(data_hash)` (cached per process).
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cl_sim.data.task import Task
from cl_sim.storage import is_uri
from cl_sim.storage import resolve as resolve_root
from cl_sim.store import States, Store

NAMESPACE = "cl_sim"
LEASE_S = 60.0  # a claim not renewed for this long is taken over by a waiter
REAP_S = 30.0  # how often the actor drops the users of jobs Ray reports dead
REF_BYTES = 2 * 1024**3  # states the actor keeps in the object store (least recently used evicted)


def actor_name(root: str | Path) -> str:
    """One store actor per store folder (absolute path: runs started elsewhere agree) and code version."""
    from cl_sim.fingerprint import code_version

    return f"cl_sim_store:{code_version()}:{resolve_root(root)}"


def _nbytes(states: States) -> int:
    return sum(t.numel() * t.element_size() for part in states.values() for t in part.values())


def _dead_jobs() -> set[str]:
    """Ids of the jobs Ray's job table lists as finished (empty when it cannot be read)."""
    try:
        return {j["JobID"] for j in ray._private.state.jobs() if j.get("IsDead")}
    except Exception:  # a private API: never let a failed check end the actor
        return set()


def this_node() -> NodeAffinitySchedulingStrategy:
    """Schedule on the calling process's node (hard). For the zero-CPU actors a job's driver starts
    (the store actor, the phase pool and its slots' trainer drivers): left to the scheduler they can
    land on an autoscaled worker node, which the autoscaler scales down under them because a zero-CPU
    actor does not keep a node busy; the driver's node stays while its job runs."""
    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


@ray.remote(num_cpus=0)
class StoreActor:
    """Owns the object refs of every finished state and writes the durable store.

    Async actor: `claim` waits without blocking the other callers. File writes run on the
    event loop on purpose: they are small and serialising them keeps one writer per key.
    """

    def __init__(self, root: str, lease_s: float = LEASE_S, ref_bytes: int = REF_BYTES, reap_s: float = REAP_S):
        self.store = Store(root, cache_entries=4)  # the object store is the cache; keep few copies here
        self.refs: OrderedDict[str, tuple[ray.ObjectRef, int]] = OrderedDict()  # key -> (ref, bytes), LRU
        self.ref_bytes = ref_bytes
        self.claims: dict[str, tuple[str, asyncio.Event]] = {}
        self.expires: dict[str, float] = {}  # key -> monotonic time its claim's lease lapses
        self.lease_s = lease_s
        self.tasks: dict[str, ray.ObjectRef] = {}
        self.users: dict[str, int] = {}  # job id -> clients of that job attached
        self.reap_s = reap_s
        self.reaper: Optional[asyncio.Future] = None

    async def attach(self, job: str) -> int:
        self.users[job] = self.users.get(job, 0) + 1
        if self.reaper is None:
            self.reaper = asyncio.ensure_future(self._reap())
        return sum(self.users.values())

    async def detach(self, job: str) -> int:
        """One client of `job` is done; the last client of the last job ends the actor (the
        durable files stay)."""
        if job in self.users:
            self.users[job] -= 1
            if self.users[job] <= 0:
                del self.users[job]
        return self._exit_if_unused()

    def _exit_if_unused(self) -> int:
        if not self.users:  # no await between the count and the exit: no attach slips in
            ray.actor.exit_actor()
        return sum(self.users.values())

    async def _reap(self) -> None:
        """Drop the users of jobs that ended without detaching (a killed driver)."""
        while True:
            await asyncio.sleep(self.reap_s)
            dead = _dead_jobs() & set(self.users)
            if dead:
                for job in dead:
                    del self.users[job]
                self._exit_if_unused()

    async def users_by_job(self) -> dict:
        return dict(self.users)

    async def has(self, key: str) -> bool:
        return key in self.refs or self.store.has(key)

    async def keys(self) -> list[str]:
        return self.store.keys()

    async def meta(self, key: str) -> dict:
        return self.store.meta(key)

    async def get_ref(self, key: str) -> list:
        """[ref] to the states of `key` (wrapped: a bare ref returned by an actor is resolved)."""
        if key not in self.refs:  # evicted, or finished in an earlier session: verify the file, own it
            self._own(key, self.store.states(key))
        self.refs.move_to_end(key)
        return [self.refs[key][0]]

    async def put(self, key: str, states: States, meta: dict) -> dict:
        """Write the entry (idempotent per key), own its states, and wake whoever waits for it."""
        entry = self.store.put(key, states, meta)
        if key not in self.refs:
            self._own(key, states)
        self._drop_claim(key)
        return entry

    def _own(self, key: str, states: States) -> None:
        """Hold `states` in the object store; drop the least recently used refs beyond `ref_bytes`
        (a caller still holding one keeps that object alive until it lets go)."""
        self.refs[key] = (ray.put(states), _nbytes(states))
        total = sum(n for _, n in self.refs.values())
        while total > self.ref_bytes and len(self.refs) > 1:
            _, (_, n) = self.refs.popitem(last=False)
            total -= n

    async def claim(self, key: str, owner: str) -> bool:
        """True: the caller trains `key`. False: it is in the store (possibly after waiting).
        A claim whose lease lapsed (its owner stopped renewing) passes to the waiter."""
        while True:
            if key in self.refs or self.store.has(key):
                return False
            held = self.claims.get(key)
            if held is None or time.monotonic() >= self.expires.get(key, 0.0):
                if held is not None:  # the owner is gone: wake the other waiters, take it over
                    held[1].set()
                self.claims[key] = (owner, asyncio.Event())
                self.expires[key] = time.monotonic() + self.lease_s
                return True
            try:
                await asyncio.wait_for(held[1].wait(), max(0.01, self.expires[key] - time.monotonic()))
            except asyncio.TimeoutError:
                pass  # re-check: renewed (wait again) or lapsed (take it over)

    async def renew(self, key: str, owner: str) -> bool:
        """Extend `owner`'s lease on `key`; False when the claim is no longer its own."""
        held = self.claims.get(key)
        if held is None or held[0] != owner:
            return False
        self.expires[key] = time.monotonic() + self.lease_s
        return True

    async def release(self, key: str) -> None:
        """Give up a claim without a result (the phase failed): a waiter may take it over."""
        self._drop_claim(key)

    async def release_owner(self, owner: str) -> int:
        """Drop every claim of `owner` (a restarted pool releases what its predecessor held)."""
        stale = [k for k, (o, _) in self.claims.items() if o == owner]
        for key in stale:
            self._drop_claim(key)
        return len(stale)

    def _drop_claim(self, key: str) -> None:
        self.expires.pop(key, None)
        held = self.claims.pop(key, None)
        if held is not None:
            held[1].set()

    async def missing_tasks(self, hashes: list[str]) -> list[str]:
        return [h for h in hashes if h not in self.tasks]

    async def put_task(self, task: Task) -> None:
        self.tasks.setdefault(task.data_hash(), ray.put(task))

    async def task(self, data_hash: str) -> list:
        if data_hash not in self.tasks:
            raise KeyError(f"task with data hash {data_hash} was never registered with the store actor")
        return [self.tasks[data_hash]]

    async def score(self, key: str) -> Optional[tuple]:
        return self.store.score(key)

    async def put_score(self, key: str, score: float, attention: Optional[list] = None,
                        refs: Optional[list] = None) -> None:
        self.store.put_score(key, score, attention, refs)

    async def stats(self) -> dict:
        return {"entries": len(self.store.keys()), "owned_refs": len(self.refs), "claims": len(self.claims),
                "tasks": len(self.tasks), "owned_bytes": sum(n for _, n in self.refs.values()),
                "users": sum(self.users.values())}


class RayStoreClient:
    """The core `Store`'s read/write interface over the store actor (driver, trials and workers).

    Entries never change once written, so metas and states are cached in this process.
    """

    def __init__(self, actor, root: str | Path, cache_entries: int = 32, user: Optional[str] = None,
                 name: Optional[str] = None):
        self.actor, self.user = actor, user
        self.name = name or actor_name(root)  # what processes the driver starts look the actor up by
        self.root = resolve_root(root) if is_uri(root) else Path(root).resolve()
        self._metas: dict[str, dict] = {}
        self._states: OrderedDict[str, States] = OrderedDict()
        self._cache_entries = cache_entries
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()  # executors run phases from several threads

    @classmethod
    def start(cls, root: str | Path, lease_s: float = LEASE_S, **actor_args) -> "RayStoreClient":
        """Create the store actor for `root`, or attach to the one already running (this client
        counts as a user of it until `close`)."""
        # Pinned to this node: a local folder's durable files land here, and for a URI too it must be a
        # node that stays (`this_node`)
        if not is_uri(root):
            Path(root).mkdir(parents=True, exist_ok=True)
        here = this_node()
        job, name = ray.get_runtime_context().get_job_id(), actor_name(root)
        for attempt in range(3):
            actor = StoreActor.options(name=name, namespace=NAMESPACE, get_if_exists=True,
                                       lifetime="detached", max_concurrency=1000,
                                       scheduling_strategy=here).remote(resolve_root(root), lease_s, **actor_args)
            try:
                ray.get(actor.attach.remote(job))
                return cls(actor, root, user=job, name=name)
            except ray.exceptions.RayActorError:  # found it as its last user detached: make a new one
                time.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"could not start the store actor for {root}")

    @classmethod
    def connect(cls, root: str | Path, name: Optional[str] = None) -> "RayStoreClient":
        """The running actor of `root`, by the `name` the driver gave it (its code version as the
        driver saw it), else by the name this process computes."""
        name = name or actor_name(root)
        return cls(ray.get_actor(name, namespace=NAMESPACE), root, name=name)

    def has(self, key: str) -> bool:
        return key in self._metas or ray.get(self.actor.has.remote(key))

    def keys(self) -> list[str]:
        return ray.get(self.actor.keys.remote())

    def meta(self, key: str) -> dict:
        if key not in self._metas:
            self._metas[key] = ray.get(self.actor.meta.remote(key))
        return self._metas[key]

    def states(self, key: str) -> States:
        with self._lock:
            if key in self._states:
                self._states.move_to_end(key)
                return self._states[key]
        [ref] = ray.get(self.actor.get_ref.remote(key))
        states = ray.get(ref)
        with self._lock:
            self._states[key] = states
            while len(self._states) > self._cache_entries:
                self._states.popitem(last=False)
        return states

    def put(self, key: str, states: States, meta: dict) -> dict:
        entry = ray.get(self.actor.put.remote(key, states, meta))
        self._metas[key] = entry
        return entry

    def score(self, key: str) -> Optional[tuple[float, Optional[list]]]:
        found = ray.get(self.actor.score.remote(key))
        return None if found is None else (found[0], found[1])

    def put_score(self, key: str, score: float, attention: Optional[list] = None,
                  refs: Optional[list] = None) -> None:
        ray.get(self.actor.put_score.remote(key, score, attention, refs))

    def register_tasks(self, tasks: dict[str, Task]) -> None:
        """Ship each task's data to the cluster once (skips tasks the actor already holds)."""
        by_hash = {t.data_hash(): t for t in tasks.values()}
        missing = ray.get(self.actor.missing_tasks.remote(list(by_hash)))
        ray.get([self.actor.put_task.remote(by_hash[h]) for h in missing])

    def task(self, data_hash: str) -> Task:
        if data_hash not in self._tasks:
            [ref] = ray.get(self.actor.task.remote(data_hash))
            self._tasks[data_hash] = ray.get(ref)
        return self._tasks[data_hash]

    def close(self) -> None:
        """Detach this client (idempotent); the actor ends when no client of any job uses it any
        more (the durable files stay)."""
        user, self.user = self.user, None
        if user is not None:
            try:
                ray.get(self.actor.detach.remote(user))
            except ray.exceptions.RayActorError:  # already gone (ended by the last detach)
                pass
