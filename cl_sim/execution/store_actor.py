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

Lifetime: the actor is detached and counts the jobs `attach`ed to it; `detach` by the last one
ends it. So one job's shutdown never kills a store another job still uses, and a job that dies
without detaching leaves an actor the next job attaches to (its state is the durable files).

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


def actor_name(root: str | Path) -> str:
    """One store actor per store folder on a cluster (absolute path: runs started elsewhere agree)."""
    return f"cl_sim_store:{resolve_root(root)}"


@ray.remote(num_cpus=0)
class StoreActor:
    """Owns the object refs of every finished state and writes the durable store.

    Async actor: `claim` waits without blocking the other callers. File writes run on the
    event loop on purpose: they are small and serialising them keeps one writer per key.
    """

    def __init__(self, root: str, lease_s: float = LEASE_S):
        self.store = Store(root, cache_entries=4)  # the object store is the cache; keep few copies here
        self.refs: dict[str, ray.ObjectRef] = {}
        self.claims: dict[str, tuple[str, asyncio.Event]] = {}
        self.expires: dict[str, float] = {}  # key -> monotonic time its claim's lease lapses
        self.lease_s = lease_s
        self.tasks: dict[str, ray.ObjectRef] = {}
        self.users: set[str] = set()

    async def attach(self, user: str) -> int:
        self.users.add(user)
        return len(self.users)

    async def detach(self, user: str) -> int:
        """Forget `user`; the last one out ends the actor (the durable files stay)."""
        self.users.discard(user)
        if not self.users:  # inside the method: no attach can slip in between the count and the exit
            ray.actor.exit_actor()
        return len(self.users)

    async def has(self, key: str) -> bool:
        return key in self.refs or self.store.has(key)

    async def keys(self) -> list[str]:
        return self.store.keys()

    async def meta(self, key: str) -> dict:
        return self.store.meta(key)

    async def get_ref(self, key: str) -> list:
        """[ref] to the states of `key` (wrapped: a bare ref returned by an actor is resolved)."""
        if key not in self.refs:  # finished in an earlier session: verify the file, then own it
            self.refs[key] = ray.put(self.store.states(key))
        return [self.refs[key]]

    async def put(self, key: str, states: States, meta: dict) -> dict:
        """Write the entry (idempotent per key), own its states, and wake whoever waits for it."""
        entry = self.store.put(key, states, meta)
        if key not in self.refs:
            self.refs[key] = ray.put(states)
        self._drop_claim(key)
        return entry

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
                "tasks": len(self.tasks)}


class RayStoreClient:
    """The core `Store`'s read/write interface over the store actor (driver, trials and workers).

    Entries never change once written, so metas and states are cached in this process.
    """

    def __init__(self, actor, root: str | Path, cache_entries: int = 32, user: Optional[str] = None):
        self.actor, self.user = actor, user
        self.root = resolve_root(root) if is_uri(root) else Path(root).resolve()
        self._metas: dict[str, dict] = {}
        self._states: OrderedDict[str, States] = OrderedDict()
        self._cache_entries = cache_entries
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()  # executors run phases from several threads

    @classmethod
    def start(cls, root: str | Path, lease_s: float = LEASE_S) -> "RayStoreClient":
        """Create the store actor for `root`, or attach to the one already running."""
        # A local folder: pinned to this node, where the durable files land. A URI: anywhere.
        here = None
        if not is_uri(root):
            Path(root).mkdir(parents=True, exist_ok=True)
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        actor = StoreActor.options(name=actor_name(root), namespace=NAMESPACE, get_if_exists=True,
                                   lifetime="detached", max_concurrency=1000,
                                   scheduling_strategy=here).remote(resolve_root(root), lease_s)
        user = f"{ray.get_runtime_context().get_job_id()}:{id(actor)}"
        ray.get(actor.attach.remote(user))
        return cls(actor, root, user=user)

    @classmethod
    def connect(cls, root: str | Path) -> "RayStoreClient":
        return cls(ray.get_actor(actor_name(root), namespace=NAMESPACE), root)

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

    def kill(self) -> None:
        """Detach this job; the actor ends when no job uses it any more (the durable files stay)."""
        if self.user is not None:
            try:
                ray.get(self.actor.detach.remote(self.user))
            except ray.exceptions.RayActorError:  # already gone
                pass
