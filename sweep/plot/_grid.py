"""The cells of a phase-diagram heatmap: where each axis value's cell starts and ends.

Numeric axes spaced geometrically (depth 1, 2, 4, ...) get log-spaced cells and a log
scale; categorical axes (init, activation) get one unit cell per value.
"""

from __future__ import annotations

import math

import numpy as np

from ._select import PlotError


def is_geometric(values) -> bool:
    """Whether numeric axis values are spaced geometrically rather than evenly.

    Two values count as geometric when they are positive and a factor of 10 or more
    apart; three or more when their log-spacing is more even than their spacing.

    Args:
        values: the axis values, in any order, repeats allowed; non-finite ones are
            ignored.

    Returns:
        True when the axis should get a log scale.
    """
    v = np.unique(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    if v.size < 2 or v[0] <= 0:
        return False
    if v.size == 2:
        return v[1] / v[0] >= 10
    steps, log_steps = np.diff(v), np.diff(np.log(v))
    spread = (steps.max() - steps.min()) / steps.mean()
    log_spread = (log_steps.max() - log_steps.min()) / log_steps.mean()
    return log_spread < spread


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
