"""Plain data -> typed config: `build` checks a mapping against a dataclass (unknown keys and wrong
types raise one `ConfigError` naming the dotted key), `set_dotted` and `parse_overrides` apply
`key=value` overrides to a tree, `merge` lays one tree over another."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

import yaml

from cl_sim.errors import ConfigError


def _type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # "int, str or null"
        names = ["null" if a is type(None) else _type_name(a) for a in typing.get_args(tp)]
        return ", ".join(names[:-1]) + " or " + names[-1]
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp, value, key: str):
    """Check `value` against annotation `tp`, converting lists to tuples and dicts to dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                if len(args) == 2:
                    raise
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (arg, *_rest) = typing.get_args(tp)
        return tuple(_coerce(arg, v, f"{key}.{i}") for i, v in enumerate(value))  # the form overrides take
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        k_tp, v_tp = typing.get_args(tp)
        return {_coerce(k_tp, k, key): _coerce(v_tp, v, f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def build(cls, data: Any, key: str = ""):
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if isinstance(data, cls):
        return data
    where = key or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        prefix = f"{key}." if key else ""
        close = difflib.get_close_matches(str(unknown[0]), sorted(names), n=1, cutoff=0.6)
        hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'{hint} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{key}.{name}" if key else name)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    """`tree[a][b][c] = value` for `dotted` = `a.b.c`; list items by index (`tasks.0.name`)."""
    parts = dotted.split(".")
    node: Any = tree
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override '{dotted}': no item {part} in {'.'.join(parts[:i])}")
            node = node[int(part)]
            continue
        node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override '{dotted}': '{'.'.join(parts[: i + 1])}' is not a section")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"override '{dotted}': no item {last}")
        node[int(last)] = value
    else:
        node[last] = value


def parse_overrides(overrides: typing.Iterable[str]) -> list[tuple[str, Any]]:
    """`key=value` strings -> (key, YAML-parsed value) pairs."""
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((key.strip(), value))
    return pairs


def merge(a: dict, b: dict) -> dict:
    """`b` laid over `a`: mappings merge key by key, anything else (lists included) replaces."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
