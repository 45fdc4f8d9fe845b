"""Heatmap cells the colour map must not paint: dead (−inf) and no value (NaN).

A dead cell (a ReLU network whose signal died: log10 gain −inf) is not "the most
vanishing" colour: it is hatched over light grey. A cell with no value (NaN, or no row
there) is plain grey. Both are masked in the QuadMesh, so its array holds only the values
the colour bar describes, and both get a legend entry when they occur.
"""

from __future__ import annotations

import numpy as np

NAN_COLOUR = "0.82"
DEAD_FACE = "0.93"
DEAD_HATCH = "////"
DEAD_EDGE = "0.35"
DEAD_LABEL = "dead (−inf)"
NAN_LABEL = "no value (NaN)"


def drawn_values(z: np.ndarray, big: float) -> np.ma.MaskedArray:
    """(Y, X) the values a heatmap colours: NaN and −inf masked, +inf as ``big``."""
    z = np.asarray(z, np.float64)
    return np.ma.masked_array(np.where(z == np.inf, big, z), mask=np.isnan(z) | (z == -np.inf))


def _runs(mask_row: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the True runs in a 1-D bool array."""
    padded = np.concatenate([[False], mask_row, [False]]).astype(np.int8)
    flips = np.flatnonzero(np.diff(padded))
    return list(zip(flips[::2], flips[1::2]))


def draw_dead_cells(ax, x_edges: np.ndarray, y_edges: np.ndarray, dead: np.ndarray) -> bool:
    """Hatches the dead cells of ``dead`` (Y, X) bool, one rectangle per run of a row.

    Args:
        ax: the panel.
        x_edges, y_edges: (X + 1,), (Y + 1,) cell edges.
        dead: (Y, X) True where the drawn value is −inf.

    Returns:
        Whether any cell was hatched.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    boxes = [
        Rectangle((x_edges[a], y_edges[i]), x_edges[b] - x_edges[a], y_edges[i + 1] - y_edges[i])
        for i, row in enumerate(np.asarray(dead, bool))
        for a, b in _runs(row)
    ]
    if not boxes:
        return False
    ax.add_collection(
        PatchCollection(
            boxes,
            facecolor=DEAD_FACE,
            edgecolor=DEAD_EDGE,
            hatch=DEAD_HATCH,
            linewidth=0.0,
            zorder=1.5,
        )
    )
    return True


def legend_patches(dead: bool, nan: bool) -> dict[str, object]:
    """Legend handles for the dead and no-value cells that occur, by label."""
    from matplotlib.patches import Patch

    handles = {}
    if dead:
        handles[DEAD_LABEL] = Patch(
            facecolor=DEAD_FACE, edgecolor=DEAD_EDGE, hatch=DEAD_HATCH, label=DEAD_LABEL
        )
    if nan:
        handles[NAN_LABEL] = Patch(facecolor=NAN_COLOUR, edgecolor="0.6", label=NAN_LABEL)
    return handles
