"""Phase boundaries on a panel: 0 contours of a log-ratio metric, measured or predicted.

The measured boundary is the 0 contour of the seed-aggregated metric (solid); the theory's
finite-depth boundary is the 0 contour of ``theory_log10_backward_gain`` (dash-dotted). With an
overlay axis, each of its values gets its own measured boundary in its own colour, so two
inits (or activations, widths) compare in one panel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._style import AXIS_SYMBOLS, _format_value, _short

MEASURED_STYLE = {"colors": "black", "linewidths": 1.8}
PREDICTED_STYLE = {"colors": "0.15", "linewidths": 1.4, "linestyles": "-."}
PREDICTED_LABEL = "theory boundary (finite-depth prediction = 0)"


def grid_of(frame: pd.DataFrame, x: str, y: str, column: str, x_values, y_values) -> np.ndarray:
    """(Y, X) float64 values of ``column`` on the plot's grid, NaN where there is no row."""
    grid = frame.pivot(index=y, columns=x, values=column).reindex(index=y_values, columns=x_values)
    return grid.to_numpy(np.float64)


def zero_contour(ax, xc, yc, z: np.ndarray, big: float, **style) -> bool:
    """Draws the 0 contour of ``z`` (Y, X) at the cell centres; ±inf count as ±``big``,
    NaN is left out. Returns whether there was a sign change to draw."""
    if z.shape[0] < 2 or z.shape[1] < 2:
        return False
    zc = np.ma.masked_invalid(np.clip(z, -big, big))
    if not zc.count() or not zc.min() < 0 < zc.max():
        return False
    ax.contour(xc, yc, zc, levels=[0.0], **style)
    return True


def measured_handle(metric: str, color="black", label: str | None = None):
    """The legend line of a measured boundary."""
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        color=color,
        linewidth=MEASURED_STYLE["linewidths"],
        label=label or f"measured boundary ({_short(metric)} = 0)",
    )


def predicted_handle():
    """The legend line of the theory's finite-depth boundary."""
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        color=PREDICTED_STYLE["colors"],
        linewidth=PREDICTED_STYLE["linewidths"],
        linestyle="-.",
        label=PREDICTED_LABEL,
    )


def overlay_colours(values) -> dict:
    """A distinct colour per overlay value (matplotlib's tab10 cycle), in value order."""
    import matplotlib as mpl

    cycle = mpl.colormaps["tab10"]
    return {v: cycle(i % 10) for i, v in enumerate(values)}


def draw_overlay(ax, frame, x, y, metric, overlay, colours, coordinates, big) -> dict[object, bool]:
    """Draws each overlay value's measured boundary on ``ax`` in its colour.

    Args:
        ax: the panel.
        frame: the panel's aggregated rows, with an ``overlay`` column.
        x, y, metric, overlay: the plotted axes, the metric and the overlay axis.
        colours: overlay value -> colour (overlay_colours).
        coordinates: (x centres, y centres, x values, y values) of the grid.
        big: the stand-in magnitude for ±inf.

    Returns:
        overlay value -> whether its boundary crosses this panel.
    """
    xc, yc, x_values, y_values = coordinates
    drawn = {}
    for value, colour in colours.items():
        rows = frame[frame[overlay] == value]
        z = grid_of(rows, x, y, metric, x_values, y_values)
        drawn[value] = zero_contour(
            ax, xc, yc, z, big, colors=[colour], linewidths=MEASURED_STYLE["linewidths"]
        )
    return drawn


def overlay_handles(metric: str, overlay: str, colours: dict, crossed: dict) -> dict:
    """Legend lines, one per overlay value: "init = gaussian" (with "no boundary" when its
    0 contour crosses no panel)."""
    symbol = AXIS_SYMBOLS.get(overlay, overlay)
    handles = {}
    for value, colour in colours.items():
        label = f"{symbol} = {_format_value(value)}"
        if not crossed.get(value):
            label += f" (no {_short(metric)} = 0 here)"
        handles[f"overlay {value}"] = measured_handle(metric, colour, label)
    return handles
