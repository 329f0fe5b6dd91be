"""Teacher selection for fusion, I2I and AdapterDistillation: `recent`, `random`, `similar`."""
from __future__ import annotations

import hashlib
from typing import Callable, Optional, Sequence

import numpy as np

from cl_sim.methods.base import Prior


def select_teachers(finished: Sequence[Prior], count: Optional[int], rule: str, task: str, seed: int,
                    embed: Optional[Callable[[str], np.ndarray]] = None) -> list[Prior]:
    """Pick at most `count` teachers (None = all) among tasks finished before this phase starts.

    The result keeps arrival order, so an ordered teacher prefix is part of the store key.
    `similar` ranks by cosine similarity of frozen-backbone task embeddings (`embed(name)`).
    """
    pool = [p for p in finished if p.adapter is not None]
    if count is None or count >= len(pool):
        return pool
    if count == 0:
        return []
    if rule == "recent":
        chosen = pool[-count:]
    elif rule == "random":
        digest = hashlib.sha256(f"{seed}|{task}|{','.join(p.task for p in pool)}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        idx = set(rng.choice(len(pool), size=count, replace=False).tolist())
        chosen = [p for i, p in enumerate(pool) if i in idx]
    else:
        target = embed(task)
        sims = [float(np.dot(target, embed(p.task))) for p in pool]
        top = set(np.argsort(-np.asarray(sims), kind="stable")[:count].tolist())
        chosen = [p for i, p in enumerate(pool) if i in top]
    return chosen
