"""Which rows a plot draws: ``where`` filters, facet panels and seed aggregation.

Plain pandas, unit-tested on synthetic frames. The rules, shared by both plots:

- ``where`` keeps the rows whose column equals one of the given values (numbers match to
  1e-9 relative, so ``sigma_w=1`` finds 1.0).
- Seeds are aggregated by ``agg`` (median by default, or mean) unless seed is plotted.
- Every other axis that is neither plotted nor faceted must be left with one value by
  ``where``; otherwise a PlotError names the axis and its values.

The request checks shared by the plots and the CLI (axes, facets, metrics) live here too.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ._style import _format_value, _format_values

AXES = (
    "depth",
    "sigma_w",
    "sigma_b",
    "width",
    "init",
    "activation",
    "seed",
    "architecture",
    "residual_scale",
    "learning_rate",
)  # learning_rate: sweeps that train
# Axes that some rows leave null because they do not apply (residual_scale of mlp):
# --where on them keeps those rows, so mlp stays beside the resnets it is compared with.
IGNORED_WHEN_NULL = ("residual_scale",)
AGGREGATIONS = ("median", "mean")
DEFAULT_FACET = ("init", "activation")


class PlotError(ValueError):
    """A plot request that cannot be drawn; the message is one line naming the fix."""


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


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _match(series: pd.Series, key: str, wanted) -> pd.Series:
    wanted = (
        list(wanted) if isinstance(wanted, (list, tuple, set, np.ndarray, pd.Series)) else [wanted]
    )
    if _is_numeric(series):
        numbers = []
        for value in wanted:
            try:
                numbers.append(float(value))
            except (TypeError, ValueError):
                example = _format_value(series.iloc[0]) if len(series) else 1
                raise PlotError(
                    f"--where {key}={value}: {key} takes numbers, e.g. {key}={example}"
                ) from None
        column = series.to_numpy(dtype=np.float64)
        mask = np.zeros(len(series), dtype=bool)
        for number in numbers:
            mask |= np.isclose(column, number, rtol=1e-9, atol=1e-12) | (column == number)
        return pd.Series(mask, index=series.index)
    return series.astype(str).isin([str(v) for v in wanted])


def select(df: pd.DataFrame, where: Mapping[str, object] | None) -> pd.DataFrame:
    """The rows matching every ``where`` entry (a value or a list of values per column).

    Args:
        df: config rows (or the per-layer table).
        where: column -> value or list of values to keep, e.g. {"width": 64}; None or
            empty keeps every row.

    Returns:
        The matching rows of ``df`` (``df`` itself when there is nothing to filter).

    Raises:
        PlotError: an unknown column, a non-numeric value for a numeric column, or a
            filter that leaves no rows (naming the values that were available).
    """
    if not where:
        return df
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
                f"--where {key}={','.join(str(v) for v in shown)} selects no rows; "
                f"{key} has {_format_values(_unique(df[key]))}"
            )
        df = kept
    return df


def _unique(series: pd.Series) -> list:
    values = series.dropna().unique()
    try:
        return sorted(values)
    except TypeError:
        return list(values)


def check_single_valued(df: pd.DataFrame, axes: Iterable[str]) -> dict[str, object]:
    """The value of each axis in ``axes``; each must hold exactly one value in ``df``.

    Args:
        df: the selected rows.
        axes: the axes that are neither plotted nor faceted; those not in ``df`` are
            skipped.

    Returns:
        axis -> its one value, for the axes present in ``df``.

    Raises:
        PlotError: naming the first axis with more than one value, its values, and how to
            fix it (``--where`` or ``--facet``).
    """
    fixed = {}
    for axis in axes:
        if axis not in df.columns:
            continue
        values = _unique(df[axis])
        if len(values) > 1:
            raise PlotError(
                f"{axis} has {len(values)} values ({_format_values(values)}) but is not plotted; "
                f"pick one with --where {axis}={_format_value(values[0])} or add it to --facet"
            )
        if values:
            fixed[axis] = values[0]
    return fixed


def aggregate_seeds(
    df: pd.DataFrame, by: Sequence[str], columns: Sequence[str], agg: str = "median"
) -> pd.DataFrame:
    """One row per distinct ``by`` tuple, with ``columns`` aggregated over the other rows.

    The other rows are the seeds once every other axis is fixed. NaN values are skipped;
    a group whose values are all NaN stays NaN. ±inf take part in the median and mean.

    Args:
        df: config rows.
        by: the plotted and faceted axes, e.g. ("init", "activation", "depth", "sigma_w").
        columns: the numeric columns to aggregate, e.g. ("log10_backward_gain",).
        agg: "median" or "mean".

    Returns:
        A DataFrame with the ``by`` columns, the aggregated ``columns`` and ``n_seeds``
        (rows per group), sorted by ``by``.

    Raises:
        PlotError: an unknown aggregation.
    """
    if agg not in AGGREGATIONS:
        raise PlotError(f"unknown aggregation {agg!r}; accepted: {', '.join(AGGREGATIONS)}")
    by = list(dict.fromkeys(by))
    grouped = df.groupby(by, sort=True, dropna=False, observed=True)
    values = (
        grouped[list(columns)].agg(agg)
        if columns
        else grouped.size().to_frame("n_seeds").iloc[:, :0]
    )
    values = values.astype(np.float64)
    values["n_seeds"] = grouped.size().astype(np.int64)
    return values.reset_index()


@dataclasses.dataclass(frozen=True)
class Panel:
    """One facet panel: its grid position, title and rows.

    Attributes:
        row, col: the panel's position in the figure's grid of axes.
        title: e.g. "init = gaussian, activation = relu"; "" without a facet.
        values: facet axis -> this panel's value of it.
        frame: the panel's rows.
    """

    row: int
    col: int
    title: str
    values: dict
    frame: pd.DataFrame


def facet_panels(
    df: pd.DataFrame, facet: Sequence[str], wrap: int = 4
) -> tuple[list[Panel], int, int]:
    """Splits rows into panels, one per value combination of the ``facet`` axes.

    Layout: no facet -> one panel; one facet axis -> one panel per value, wrapped at
    ``wrap`` columns; two or more -> rows are the first axis's values and columns the
    combinations of the others. Combinations with no rows get no panel.

    Args:
        df: the rows to split.
        facet: the facet axes, in order; () for one panel.
        wrap: the most columns a single facet axis gets before wrapping to a new row.

    Returns:
        (panels, n_rows, n_cols).
    """
    facet = list(facet)
    if not facet:
        return [Panel(0, 0, "", {}, df)], 1, 1
    levels = [_unique(df[a]) for a in facet]
    groups = {
        k if isinstance(k, tuple) else (k,): g
        for k, g in df.groupby(facet, sort=False, observed=True)
    }
    panels = []
    if len(facet) == 1:
        n_cols = min(len(levels[0]), wrap) or 1
        n_rows = max(1, math.ceil(len(levels[0]) / n_cols))
        positions = {(v,): divmod(i, n_cols) for i, v in enumerate(levels[0])}
    else:
        col_keys = list(itertools.product(*levels[1:]))
        n_rows, n_cols = len(levels[0]), len(col_keys)
        positions = {
            (r, *c): (i, j) for i, r in enumerate(levels[0]) for j, c in enumerate(col_keys)
        }
    for key, (i, j) in positions.items():
        frame = groups.get(key)
        if frame is None:
            continue
        values = dict(zip(facet, key))
        title = ", ".join(f"{a} = {_format_value(v)}" for a, v in values.items())
        panels.append(Panel(i, j, title, values, frame))
    return panels, n_rows, n_cols


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The scalar numeric columns a phase diagram can colour by (not the axes).

    Args:
        df: config rows.

    Returns:
        The column names, in the frame's order.
    """
    return [c for c in df.columns if c not in AXES and df[c].dtype != object and _is_numeric(df[c])]


def _check_axis(name: str, axis: str, df: pd.DataFrame) -> None:
    if axis not in AXES or axis not in df.columns:
        raise PlotError(f"unknown {name} axis {axis!r}; accepted: {', '.join(AXES)}")


def _check_facet(facet, df, exclude=()) -> list[str]:
    """The facet axes without empty names, checked to be known, not excluded, distinct."""
    facet = [f for f in (facet or ()) if f]
    for f in facet:
        _check_axis("facet", f, df)
        if f in exclude:
            accepted = ", ".join(a for a in AXES if a not in exclude)
            raise PlotError(
                f"cannot facet on {f!r} here (it is plotted, or seed in a layer plot); "
                f"accepted: {accepted}"
            )
    if len(set(facet)) != len(facet):
        raise PlotError(f"facet {','.join(facet)} repeats an axis")
    return facet
