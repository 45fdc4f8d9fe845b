"""Which rows a plot draws: axes, facet panels, seed aggregation and the metrics on offer.

Plain pandas, unit-tested on synthetic frames. The rules, shared by both plots:

- ``where`` (sweep.plot._where) keeps the rows whose column matches one of the given values.
- Seeds are aggregated by ``agg``: median (default) or mean, or their spread, std or iqr,
  unless seed is plotted.
- Every other axis that is neither plotted nor faceted must be left with one value by
  ``where``; otherwise a PlotError names the axis and its values.
- sigma_w2 and sigma_b2 are sigma_w and sigma_b squared: one axis each way of writing it,
  so plotting, faceting or fixing one of a pair also accounts for the other.

The request checks shared by the plots and the CLI (axes, facets, metrics) live here too.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ._style import BOOLEAN_METRICS, _format_value, _format_values, null_reason

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
    "dtype",
    "learning_rate",
    "sigma_w2",
    "sigma_b2",
)  # learning_rate: sweeps that train
# The squared axes and the axes they square (one-to-one: the same axis written two ways).
SQUARES = {"sigma_w2": "sigma_w", "sigma_b2": "sigma_b"}
PARTNERS = {**SQUARES, **{root: square for square, root in SQUARES.items()}}
# Axes that some rows leave null because they do not apply (residual_scale of mlp):
# --where on them keeps those rows, so mlp stays beside the resnets it is compared with.
IGNORED_WHEN_NULL = ("residual_scale",)
AGGREGATIONS = ("median", "mean", "std", "iqr")
SPREADS = ("std", "iqr")  # seed spreads: standard deviation, 75th - 25th percentile
DEFAULT_FACET = ("init", "activation")


class PlotError(ValueError):
    """A plot request that cannot be drawn; the message is one line naming the fix."""


def _squares(values: np.ndarray) -> np.ndarray:
    """values² to 10 significant digits, as sweep writes sigma_w2 (sweep.ranges)."""
    unique, inverse = np.unique(values, return_inverse=True)
    squared = np.array([float(f"{v * v:.10g}") for v in unique], dtype=np.float64)
    return squared[inverse.reshape(-1)] if unique.size else np.asarray(values, np.float64)


def with_square_axes(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with sigma_w2 and sigma_b2 where its rows lack them (results from before
    those columns), derived from sigma_w and sigma_b; ``df`` itself when nothing is missing.
    """
    missing = [
        s
        for s, root in SQUARES.items()
        if root in df.columns and (s not in df.columns or df[s].isna().any())
    ]
    if not missing:
        return df
    df = df.copy()
    for square in missing:
        root = df[SQUARES[square]].to_numpy(np.float64)
        derived = _squares(root)
        df[square] = (
            derived
            if square not in df.columns
            else df[square].fillna(pd.Series(derived, index=df.index))
        )
    return df


def without_partners(axes: Iterable[str], prefer: Iterable[str] = ()) -> list[str]:
    """``axes`` with one axis of each sigma_w/sigma_w2 (sigma_b/sigma_b2) pair: the one in
    ``prefer`` (e.g. the keys of ``where``), else the unsquared one."""
    axes, prefer = list(axes), set(prefer)
    kept = []
    for axis in axes:
        partner = PARTNERS.get(axis)
        if partner in axes:
            keep = (
                axis
                if axis in prefer
                else partner
                if partner in prefer
                else SQUARES.get(axis, axis)
            )
            if keep != axis:
                continue
        kept.append(axis)
    return kept


def _covered(axes: Iterable[str]) -> set[str]:
    """The axes and their partners: what plotting or faceting ``axes`` accounts for."""
    axes = set(axes)
    return axes | {PARTNERS[a] for a in axes if a in PARTNERS}


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
    a group whose values are all NaN stays NaN. ±inf take part in the median and mean;
    the spreads (std, iqr) are over the finite values only. Booleans count as 0 and 1, so
    their mean is the fraction True.

    Args:
        df: config rows.
        by: the plotted and faceted axes, e.g. ("init", "activation", "depth", "sigma_w").
        columns: the numeric or boolean columns to aggregate, e.g. ("log10_backward_gain",).
        agg: "median", "mean", "std" (sample standard deviation) or "iqr" (75th minus
            25th percentile, linearly interpolated); a spread of fewer than two finite
            values is NaN.

    Returns:
        A DataFrame with the ``by`` columns, the aggregated ``columns`` (float64) and
        ``n_seeds`` (rows per group), sorted by ``by``.

    Raises:
        PlotError: an unknown aggregation.
    """
    if agg not in AGGREGATIONS:
        raise PlotError(f"unknown aggregation {agg!r}; accepted: {', '.join(AGGREGATIONS)}")
    by = list(dict.fromkeys(by))
    columns = list(columns)
    numbers = df[columns].astype(np.float64)
    if agg in SPREADS:
        numbers = numbers.where(np.isfinite(numbers))
    grouped_numbers = pd.concat([df[by], numbers], axis=1).groupby(
        by, sort=True, dropna=False, observed=True
    )[columns]
    if agg == "iqr":  # like std, no spread from fewer than two values
        values = grouped_numbers.quantile(0.75) - grouped_numbers.quantile(0.25)
        values = values.where(grouped_numbers.count() >= 2)
    else:
        values = grouped_numbers.agg(agg)
    values = values.astype(np.float64)
    values["n_seeds"] = df.groupby(by, sort=True, dropna=False, observed=True).size()
    values["n_seeds"] = values["n_seeds"].astype(np.int64)
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


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def is_boolean(df: pd.DataFrame, metric: str) -> bool:
    """Whether a column holds True/False: a bool dtype, or a known boolean column that
    came back as float 0/1 with NaN for null (BOOLEAN_METRICS)."""
    return pd.api.types.is_bool_dtype(df[metric]) or metric in BOOLEAN_METRICS


def is_integer(df: pd.DataFrame, metric: str) -> bool:
    """Whether a column counts something (a layer index): an integer dtype, or a nullable
    integer column that came back as float with NaN (``*_layer``, ``*_steps_*``)."""
    return (_is_numeric(df[metric]) and pd.api.types.is_integer_dtype(df[metric])) or (
        metric.endswith("_layer") or "_steps_" in metric
    )


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The scalar columns a phase diagram can colour by: numeric or boolean, not an axis,
    with at least one non-null value in ``df``.

    Args:
        df: config rows (the selected ones: a column null in all of them is not offered).

    Returns:
        The column names, in the frame's order.
    """
    return [
        c
        for c in df.columns
        if c not in AXES
        and (_is_numeric(df[c]) or pd.api.types.is_bool_dtype(df[c]))
        and df[c].notna().any()
    ]


def _check_metric(df: pd.DataFrame, metric: str) -> None:
    """Raises PlotError unless ``metric`` is a column with values in the selected rows."""
    offered = metric_columns(df)
    if metric in offered:
        return
    accepted = f"accepted: {', '.join(offered)}"
    if metric in df.columns and metric not in AXES and df[metric].isna().all():
        why = null_reason(metric)
        raise PlotError(
            f"metric {metric!r} is null in every selected row"
            + (f" ({why})" if why else "")
            + f"; {accepted}"
        )
    raise PlotError(f"unknown metric {metric!r}; {accepted}")


def _check_axis(name: str, axis: str, df: pd.DataFrame) -> None:
    if axis not in AXES or axis not in df.columns:
        raise PlotError(f"unknown {name} axis {axis!r}; accepted: {', '.join(AXES)}")


def _check_facet(facet, df, exclude=()) -> list[str]:
    """The facet axes without empty names, checked to be known, not excluded (nor the
    square or root of an excluded one), distinct."""
    facet = [f for f in (facet or ()) if f]
    covered = _covered(exclude)
    for f in facet:
        _check_axis("facet", f, df)
        if f in covered:
            accepted = ", ".join(a for a in AXES if a not in covered)
            same = f" ({f} is {PARTNERS[f]} written another way)" if f not in exclude else ""
            raise PlotError(
                f"cannot facet on {f!r} here (it is plotted, or seed in a layer plot){same}; "
                f"accepted: {accepted}"
            )
    canonical = [SQUARES.get(f, f) for f in facet]
    if len(set(canonical)) != len(canonical):
        raise PlotError(f"facet {','.join(facet)} repeats an axis")
    return facet
