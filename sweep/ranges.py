"""Range tables of a spec, {start, stop, num | step[, log]}, expanded into values (no JAX)."""

from __future__ import annotations

import math

import numpy as np

from .errors import SpecError

RANGE_KEYS = ("start", "stop", "num", "step", "log")
MAX_AXIS_LENGTH = 10**6
INTEGER_AXES = ("depth", "width", "seed")


def finite_float(value) -> float | None:
    """value as a finite float, or None when it is not a number or no float holds it
    (TOML integers are unbounded: 10**400 is an int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def short(value) -> str:
    """repr(value), cut to 40 characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def canonical_float(x: float) -> float:
    """x to 12 significant digits, as every float axis value and learning rate is kept."""
    # 12 significant digits: a range's floating-point noise never changes a config id.
    return float(f"{x:.12g}")


def canonical_squares(values) -> np.ndarray:
    """(K,) the squares of float axis values (sigma_w2 from sigma_w) to 10 significant
    digits: a 12-digit value's square is exact to ~1e-11 relative, so a sigma_w2 written in
    a spec reads back as written (sigma_w2 = 2 -> sigma_w 1.41421356237 -> 2.0)."""
    return np.asarray([float(f"{x * x:.10g}") for x in np.asarray(values, float)], float)


def expand_range(key: str, table: dict, label: str | None = None) -> list:
    """The values of axis `key` (or [train] learning_rate) given as a range table."""
    label = label or f"axes.{key}"
    unknown = set(table) - set(RANGE_KEYS)
    if unknown:
        raise SpecError(
            f"{label}: unknown range key {sorted(unknown)[0]!r}; accepted: start, stop, num or "
            "step, log"
        )
    if "start" not in table or "stop" not in table or ("num" in table) == ("step" in table):
        raise SpecError(f"{label}: a range needs start, stop and exactly one of num or step")
    start, stop, log = table["start"], table["stop"], table.get("log", False)
    for name in ("start", "stop"):
        value = table[name]
        if finite_float(value) is None:
            raise SpecError(f"{label}.{name}: {short(value)} is not a finite number")
    if not isinstance(log, bool):
        raise SpecError(f"{label}.log: {log!r} must be true or false")
    if log and (start <= 0 or stop <= 0):
        raise SpecError(f"{label}: log = true needs start and stop > 0, got {start!r} and {stop!r}")
    if "num" in table:
        num = table["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise SpecError(f"{label}.num: {num!r} must be an integer >= 1")
        if num > MAX_AXIS_LENGTH:
            raise SpecError(
                f"{label}.num: {num} values is more than {MAX_AXIS_LENGTH:,}; split the sweep"
            )
        values = np.geomspace(start, stop, num) if log else np.linspace(start, stop, num)
    else:
        step = table["step"]
        if finite_float(step) is None or not step > 0:
            raise SpecError(
                f"{label}.step: {step!r} must be a number > 0 (a factor > 1 with log = true)"
            )
        if log:
            if step <= 1:
                raise SpecError(
                    f"{label}.step: with log = true the step is a factor and must be > 1, got "
                    f"{step!r}"
                )
            ratio = math.log(stop) - math.log(start)
            count = range_count(label, ratio / math.log(step))
            values = start * step ** np.arange(count)
        else:
            count = range_count(label, (stop - start) / step)
            values = start + step * np.arange(count)
    if key in INTEGER_AXES and log:  # geometric integers: the nearest ones, once each
        return list(dict.fromkeys(int(round(v)) for v in values))
    if key in INTEGER_AXES:
        return [int(round(v)) if abs(v - round(v)) < 1e-9 else float(v) for v in values]
    return [float(v) for v in values]


def range_count(label: str, steps: float) -> int:
    """How many values a step range holds; refuses more than MAX_AXIS_LENGTH."""
    if not math.isfinite(steps) or steps + 1 > MAX_AXIS_LENGTH:
        raise SpecError(
            f"{label}: the range has more than {MAX_AXIS_LENGTH:,} values; use a larger step"
        )
    return max(int(math.floor(steps + 1e-9)) + 1, 0)
