"""``where`` filters: which rows a plot keeps, and how a typed number finds a stored one.

A number matches a stored value that equals it (to 1e-9 relative, so ``sigma_w=1`` finds
1.0), or else the one stored value that agrees with it to the significant digits typed:
``sigma_w=1.32288`` (6 digits, as error messages print values) finds 1.3228756555, and
``sigma_w=1.3`` finds it too when no other stored value rounds to 1.3. Two candidates are
an error naming both; none is an error naming the nearest stored value in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from ._select import (
    AXES,
    IGNORED_WHEN_NULL,
    SQUARES,
    PlotError,
    _is_numeric,
    _unique,
    with_square_axes,
)
from ._style import _format_value, _format_values


def parse_where(items: Iterable[str]) -> dict[str, list[str]]:
    """Parses ``--where`` items into a column -> values mapping.

    ``["width=64", "sigma_w=0.5,1.5"]`` -> ``{"width": ["64"], "sigma_w": ["0.5", "1.5"]}``;
    a key given twice collects the values of both.

    Args:
        items: strings of the form ``key=value`` or ``key=v1,v2``.

    Returns:
        key -> its values, as strings, in the order given.

    Raises:
        PlotError: an item is not ``key=value[,value...]``.
    """
    where: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not parts:
            raise PlotError(f"--where {item!r}: expected key=value or key=v1,v2, e.g. width=64")
        where.setdefault(key, []).extend(parts)
    return where


def _scalar_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype != object or c in AXES]


def _typed_text(value) -> str:
    """A wanted value as the user wrote it: strings as given, floats by their shortest repr."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def significant_digits(text: str) -> int:
    """The significant digits of a typed number: "1.32288" -> 6, "0.0010" -> 2, "150" -> 3,
    "2e-3" -> 1."""
    mantissa = text.strip().lower().lstrip("+-").split("e")[0]
    return max(len(mantissa.replace(".", "").lstrip("0")), 1)


def _full(value: float) -> str:
    """A stored value at full precision: 1.3228756555 stays 1.3228756555; 64.0 is 64."""
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def _matching_values(stored: np.ndarray, key: str, text: str, available) -> np.ndarray:
    """The stored values a typed number stands for (one, or several equal to it)."""
    try:
        number = float(text)
    except ValueError:
        example = _format_value(available[0]) if len(available) else 1
        raise PlotError(
            f"--where {key}={text}: {key} takes numbers, e.g. {key}={example}"
        ) from None
    exact = stored[np.isclose(stored, number, rtol=1e-9, atol=1e-12) | (stored == number)]
    if exact.size or not np.isfinite(number):
        found = exact
    else:
        digits = significant_digits(text)
        rounded = f"{number:.{digits - 1}e}"
        found = np.array(
            [v for v in stored if np.isfinite(v) and f"{v:.{digits - 1}e}" == rounded], np.float64
        )
        if found.size > 1:
            raise PlotError(
                f"--where {key}={text} matches {found.size} values of {key} to the "
                f"{digits} significant digit{'s' if digits > 1 else ''} given "
                f"({', '.join(_full(v) for v in found)}); give more digits"
            )
    if not found.size:
        finite = stored[np.isfinite(stored)]
        nearest = (
            f"; the nearest is {_full(finite[np.argmin(np.abs(finite - number))])}"
            if finite.size and np.isfinite(number)
            else ""
        )
        raise PlotError(
            f"--where {key}={text} selects no rows; {key} has "
            f"{_format_values(available) or 'no values'}{nearest}"
        )
    return found


def _match(series: pd.Series, key: str, wanted) -> pd.Series:
    """(rows,) bool: the rows whose value is one of ``wanted`` (numbers as described above)."""
    wanted = (
        list(wanted) if isinstance(wanted, (list, tuple, set, np.ndarray, pd.Series)) else [wanted]
    )
    if not _is_numeric(series):
        return series.astype(str).isin([_typed_text(v) for v in wanted])
    column = series.to_numpy(dtype=np.float64)
    stored = np.unique(column[~np.isnan(column)])
    available = _unique(series)
    mask = np.zeros(len(series), dtype=bool)
    for value in wanted:
        mask |= np.isin(column, _matching_values(stored, key, _typed_text(value), available))
    return pd.Series(mask, index=series.index)


def select(df: pd.DataFrame, where: Mapping[str, object] | None) -> pd.DataFrame:
    """The rows matching every ``where`` entry (a value or a list of values per column).

    Args:
        df: config rows (or the per-layer table).
        where: column -> value or list of values to keep, e.g. {"width": 64} or
            {"sigma_w": "1.32288"}; None or empty keeps every row. Every value given must
            match (see the module docstring for numbers).

    Returns:
        The matching rows of ``df`` (``df`` itself when there is nothing to filter).

    Raises:
        PlotError: an unknown column, a non-numeric value for a numeric column, a value
            that matches no stored one (naming the values there and the nearest), or one
            that matches several to the digits given.
    """
    if not where:
        return df
    if any(key in SQUARES for key in where):
        df = with_square_axes(df)
    for key, wanted in where.items():
        if key not in df.columns or key not in _scalar_columns(df):
            accepted = ", ".join(a for a in AXES if a in df.columns)
            raise PlotError(
                f"--where {key}=...: unknown column {key!r}; "
                f"accepted: {accepted} or another scalar column"
            )
        if len(df) == 0:
            break
        match = _match(df[key], key, wanted)
        if key in IGNORED_WHEN_NULL:  # a non-residual architecture has no residual scale
            match |= df[key].isna()
        kept = df[match]
        if kept.empty:
            shown = wanted if isinstance(wanted, (list, tuple)) else [wanted]
            raise PlotError(
                f"--where {key}={','.join(_typed_text(v) for v in shown)} selects no rows; "
                f"{key} has {_format_values(_unique(df[key]))}"
            )
        df = kept
    return df
