"""Value checks the config dataclasses run in `__post_init__` (`cl_sim.config` and the option
dataclasses that live with their methods): each raises one `ConfigError` naming the dotted key."""
from __future__ import annotations

import math
from typing import Any

from cl_sim.errors import ConfigError


def choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")


def positive(key: str, value: float, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):  # YAML reads .nan and .inf
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def fraction(key: str, value: float, low_open: bool = True, high_open: bool = False) -> None:
    """value in (0, 1] by default; the flags open or close either end."""
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (low_ok and high_ok):  # NaN fails both
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ConfigError(f"{key}: must be in {interval}, got {value!r}")
