"""Search spaces as plain data: `sweep.space` maps any config key to a distribution, checked
against the config before anything runs. `execution/ray_tune.py` maps each `Dim` onto Tune's own
primitive (`tune.loguniform`, `tune.choice`, `tune.grid_search`, ...); this module imports no Ray.

    sweep:
      space:
        training.lr: {loguniform: [1.0e-4, 1.0e-2]}
        adapter.reduction_factor: {choice: [8, 16, 32]}
        adapter.kind: {grid: [pfeiffer, houlsby]}

Ordering search (`sweep.orderings: search`) encodes an ordering of n tasks as n random keys, one
`uniform(0, 1)` parameter per task (`order.<task>`); the ordering is the tasks sorted by key. Any
searcher that samples floats (random, Optuna's TPE) then searches permutations of 8+ tasks
without enumerating them, and a key's name says which task it places.
"""
from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from cl_sim.errors import ConfigError

# kind -> number of arguments (None = a list of values)
KINDS = {"uniform": 2, "quniform": 3, "loguniform": 2, "qloguniform": 3, "randn": 2,
         "randint": 2, "qrandint": 3, "lograndint": 2, "choice": None, "grid": None}
INT_KINDS = ("randint", "qrandint", "lograndint")
ORDER_PREFIX = "order."
# set by the sweep's own axes, not by a space
AXIS_KEYS = {"stream.ordering": "sweep.orderings", "training.seed": "sweep.seeds", "method.name": "sweep.methods"}


@dataclass(frozen=True)
class Dim:
    """One searched config key: `kind` (a `KINDS` name) and its arguments (bounds or values)."""

    key: str
    kind: str
    args: tuple

    def example(self) -> Any:
        """A value this dimension can take (to check the key against the config)."""
        if self.kind in ("choice", "grid"):
            return self.args[0]
        if self.kind in INT_KINDS:
            return int(self.args[0])
        return float(self.args[0])


def flat_keys(tree: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config tree, list items by index (`tasks.0.n_train`)."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)) and tree and isinstance(tree[0], dict):
        items = ((str(i), v) for i, v in enumerate(tree))
    else:
        return [prefix[:-1]] if prefix else []
    return [k for name, v in items for k in ([f"{prefix}{name}"] + flat_keys(v, f"{prefix}{name}."))]


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """' (did you mean 'x'?)' for the closest known word, else ''."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_dim(key: str, spec: Any) -> Dim:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"sweep.space.{key}: expected one of {{{', '.join(KINDS)}}}: [...], got {spec!r}")
    (kind, args), = spec.items()
    if kind not in KINDS:
        raise ConfigError(f"sweep.space.{key}: unknown distribution '{kind}'{did_you_mean(kind, KINDS)} "
                          f"(known: {', '.join(KINDS)})")
    if not isinstance(args, (list, tuple)) or not args:
        raise ConfigError(f"sweep.space.{key}.{kind}: expected a list, got {args!r}")
    want = KINDS[kind]
    if want is not None:
        args = [_number(a) for a in args]
        if len(args) != want or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ConfigError(f"sweep.space.{key}.{kind}: expected {want} numbers, got {list(args)!r}")
        if kind != "randn" and not args[0] < args[1]:
            raise ConfigError(f"sweep.space.{key}.{kind}: lower bound must be below the upper, got {list(args)!r}")
        if kind.startswith(("log", "qlog")) and args[0] <= 0:
            raise ConfigError(f"sweep.space.{key}.{kind}: bounds must be > 0, got {list(args)!r}")
    return Dim(key, kind, tuple(args))


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as a string."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_space(space: dict, base: dict, check: Optional[Callable[[dict], None]] = None) -> dict[str, Dim]:
    """`sweep.space` -> {key: Dim}, each key checked against `base` (a `Config.to_dict()`): it must
    exist and, given `check` (a config tree -> raises ConfigError; the config loader passes its own),
    take the dimension's values (every value of a choice/grid, the bounds of a range)."""
    keys = flat_keys(base)
    dims = {}
    for key, spec in (space or {}).items():
        if key in AXIS_KEYS:
            raise ConfigError(f"sweep.space.{key}: set by {AXIS_KEYS[key]}, not by a search space")
        if key not in keys:
            raise ConfigError(f"sweep.space: unknown config key '{key}'{did_you_mean(key, keys)}")
        dim = parse_dim(key, spec)
        values = dim.args if dim.kind in ("choice", "grid") else [dim.example()]
        if dim.kind not in ("choice", "grid", "randn"):
            values = [int(a) if dim.kind in INT_KINDS else float(a) for a in dim.args[:2]]
        for value in values if check is not None else ():
            tree = copy.deepcopy(base)
            set_key(tree, key, value)
            try:
                check(tree)
            except ConfigError as exc:
                raise ConfigError(f"sweep.space.{key}: value {value!r}: {exc}") from None
        dims[key] = dim
    return dims


def set_key(tree: dict, key: str, value: Any) -> None:
    """Set dotted `key` (list items by index) in a config tree in place."""
    *path, last = key.split(".")
    node: Any = tree
    for part in path:
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def order_keys(tasks: Sequence[str]) -> list[str]:
    return [f"{ORDER_PREFIX}{t}" for t in tasks]


def ordering_from_keys(params: dict) -> tuple[str, ...]:
    """The ordering random keys encode: tasks sorted by their key (ties by name)."""
    keyed = [(v, k[len(ORDER_PREFIX):]) for k, v in params.items() if k.startswith(ORDER_PREFIX)]
    return tuple(name for _, name in sorted(keyed))


def short_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return str(value)
