"""The cells of a phase-diagram heatmap: where each axis value's cell starts and ends.

Numeric axes that are exactly geometric (depth 1, 2, 4, ...) get log-spaced cells and a
log scale, every other numeric axis a linear one; categorical axes (init, activation) get
one unit cell per value. A Grid holds both plotted axes' coordinates, and _format_axes
gives each panel its scales, ticks and labels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._select import PlotError, _unique
from ._style import AXIS_LABELS, _format_value


def is_geometric(values) -> bool:
    """Whether numeric axis values form a geometric grid, the ones that get a log scale.

    Geometric means three or more positive values with one common ratio (to 1e-6
    relative: float rounding, not "roughly"), e.g. depth 1, 2, 4, 8 or 1, 10, 100; or an
    integer axis that is exactly a log range rounded to integers once each, as a spec's
    ``{start = 1, stop = 1000, num = 20, log = true}`` expands. Evenly spaced values
    (σ_w 1.35, 1.36, ..., 1.5) and two values alone are never geometric.

    Args:
        values: the axis values, in any order, repeats allowed; non-finite ones are
            ignored.

    Returns:
        True when the axis should get a log scale.
    """
    v = np.unique(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    if v.size < 3 or v[0] <= 0:
        return False
    ratios = v[1:] / v[:-1]
    if np.allclose(ratios, ratios[0], rtol=1e-6, atol=0):
        return True
    return _is_rounded_log_range(v)


def _is_rounded_log_range(v: np.ndarray) -> bool:
    """Whether sorted positive integers are geomspace(v[0], v[-1], n) rounded and made
    unique, for some n up to 4·len(v) + 16 (sweep.ranges.expand_range on a log range)."""
    steps = np.diff(v)
    if not np.all(v == np.round(v)) or np.allclose(steps, steps[0]):
        return False
    for n in range(v.size, 4 * v.size + 17):
        candidate = np.unique(np.round(np.geomspace(v[0], v[-1], n)))
        if candidate.size == v.size and np.array_equal(candidate, v):
            return True
        if candidate.size > v.size:
            break
    return False


def cell_edges(centres: np.ndarray, geometric: bool) -> np.ndarray:
    """Edges of the heatmap cells around sorted centres.

    The inner edges are the midpoints between neighbours (in log space if geometric) and
    the outer ones mirror them. A single centre c gets c ± 0.5, or c ± |c|/2 when
    0 < |c| < 1, or c ×/÷ 2 when geometric.

    Args:
        centres: the sorted cell centres, e.g. the sigma_w values of a sweep.
        geometric: place the edges in log space (positive centres only).

    Returns:
        ``len(centres) + 1`` edges, ascending.
    """
    c = np.asarray(centres, dtype=np.float64)
    t = np.log(c) if geometric else c
    if t.size == 1:
        half = 0.5 if not geometric else math.log(2.0)
        if not geometric and c[0] != 0:
            half = 0.5 * abs(c[0]) if abs(c[0]) < 1 else 0.5
        edges = np.array([t[0] - half, t[0] + half])
    else:
        mids = 0.5 * (t[:-1] + t[1:])
        edges = np.concatenate([[t[0] - (mids[0] - t[0])], mids, [t[-1] + (t[-1] - mids[-1])]])
    return np.exp(edges) if geometric else edges


def _axis_coordinates(values: list, axis: str, log: bool | None):
    """(centres, edges, log scale?, tick labels or None) for one heatmap axis."""
    if values and isinstance(values[0], str):
        centres = np.arange(len(values), dtype=np.float64)
        return centres, np.arange(len(values) + 1) - 0.5, False, [str(v) for v in values]
    centres = np.asarray(values, dtype=np.float64)
    geometric = is_geometric(centres) if log is None else bool(log)
    if geometric and (centres <= 0).any():
        raise PlotError(f"{axis} has values <= 0 and cannot use a log axis")
    return centres, cell_edges(centres, geometric), geometric, None


class Grid(NamedTuple):
    """The plotted axes' coordinates: values, cell centres and edges, scales, tick labels."""

    x: str
    y: str
    x_values: list
    y_values: list
    xc: np.ndarray  # (X,) cell centres
    yc: np.ndarray  # (Y,)
    xe: np.ndarray  # (X + 1,) cell edges
    ye: np.ndarray  # (Y + 1,)
    x_log: bool
    y_log: bool
    x_ticks: list | None  # category names, or None for numbers
    y_ticks: list | None


def grid_of_rows(rows, x: str, y: str, log_x: bool | None, log_y: bool | None) -> Grid:
    """The Grid of two plotted axes over the selected rows (log scales decided by
    is_geometric unless ``log_x``/``log_y`` force them)."""
    x_values, y_values = _unique(rows[x]), _unique(rows[y])
    xc, xe, x_log, x_ticks = _axis_coordinates(x_values, x, log_x)
    yc, ye, y_log, y_ticks = _axis_coordinates(y_values, y, log_y)
    return Grid(x, y, x_values, y_values, xc, yc, xe, ye, x_log, y_log, x_ticks, y_ticks)


def _numeric_ticks(axis, set_scale, log: bool, centres: np.ndarray) -> None:
    """Ticks of a numeric axis: a short grid (at most 6 values, or 12 on a log scale) is
    ticked at its own values (every other one past 6), in plain numbers; a longer one
    by matplotlib's locator (decades on a log scale), with no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    if log:
        set_scale("log")
        axis.set_minor_formatter(NullFormatter())
    if centres.size <= (12 if log else 6):
        axis.set_major_locator(FixedLocator(centres[:: 1 if centres.size <= 6 else 2]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: _format_value(float(v))))


def _format_axes(axes, grid: Grid, used, n_rows: int, n_cols: int) -> None:
    """Scales, ticks and labels of every panel; unused grid positions hidden."""
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i, j]
            if (i, j) not in used:
                ax.set_visible(False)
                continue
            for axis, set_scale, log, ticks, centres in (
                (ax.xaxis, ax.set_xscale, grid.x_log, grid.x_ticks, grid.xc),
                (ax.yaxis, ax.set_yscale, grid.y_log, grid.y_ticks, grid.yc),
            ):
                if ticks is None:
                    _numeric_ticks(axis, set_scale, log, centres)
            if grid.x_ticks is not None:
                ax.set_xticks(grid.xc, grid.x_ticks)
            if grid.y_ticks is not None:
                ax.set_yticks(grid.yc, grid.y_ticks)
            ax.tick_params(labelbottom=True, labelleft=True, labelsize=8)
            if i == n_rows - 1 or (i + 1, j) not in used:
                ax.set_xlabel(AXIS_LABELS.get(grid.x, grid.x))
            if j == 0:
                ax.set_ylabel(AXIS_LABELS.get(grid.y, grid.y))
