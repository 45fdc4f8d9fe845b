"""Phase diagrams: a heatmap of one metric over two axes, one panel per facet value.

The cells sit around the grid's values (midpoints between them, in log space on an
exactly geometric axis); the colour scale comes from _colour, dead and empty cells from
_cells, the measured and predicted boundaries from _boundaries, and the mean-field lines
from _overlay. With an overlay axis a panel shows that axis's boundaries instead of a
heatmap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from . import _boundaries, _cells
from ._colour import add_colorbar, check_vlim, colour_kind, colour_label, colour_scale
from ._figure import _new_figure, figure_legend, fit_texts
from ._grid import Grid, _format_axes, grid_of_rows
from ._overlay import DEFAULT_XI_MULTIPLE, _draw_theory
from ._select import (
    AGGREGATIONS,
    AXES,
    DEFAULT_FACET,
    PARTNERS,
    PlotError,
    _check_axis,
    _check_facet,
    _check_metric,
    _covered,
    _unique,
    aggregate_seeds,
    check_single_valued,
    facet_panels,
    with_square_axes,
    without_partners,
)
from ._style import AXIS_SYMBOLS, _format_value, _format_values, _short
from ._where import select

COLOR_SCALES = ("shared", "per-panel")
# The theory column that predicts a metric at each row's own depth.
THEORY_OF = {"log10_backward_gain": "theory_log10_backward_gain"}


def _check_request(df, x, y, facet, agg, overlay, color_scale):
    """Checks the axes, facet, aggregation and overlay; returns (facet, overlay)."""
    _check_axis("x", x, df)
    _check_axis("y", y, df)
    if x == y or PARTNERS.get(x) == y:
        raise PlotError(f"x and y are both {x!r} (or its square); give two different axes")
    if agg not in AGGREGATIONS:
        raise PlotError(f"unknown aggregation {agg!r}; accepted: {', '.join(AGGREGATIONS)}")
    if color_scale not in COLOR_SCALES:
        raise PlotError(
            f"unknown colour scale {color_scale!r}; accepted: {', '.join(COLOR_SCALES)}"
        )
    if overlay:
        _check_axis("overlay", overlay, df)
        if overlay in _covered((x, y)):
            raise PlotError(f"cannot overlay {overlay!r}: it is plotted on x or y")
        if facet is not None and tuple(facet) == DEFAULT_FACET:
            facet = [f for f in facet if f not in _covered((overlay,))]
    facet = _check_facet(facet, df, exclude=(x, y))
    if overlay and overlay in _covered(facet):
        raise PlotError(f"cannot both overlay and facet {overlay!r}; drop it from --facet")
    return facet, overlay or None


def _fixed_description(
    fixed: Mapping[str, object], n_seeds: int, agg: str, seed_plotted: bool
) -> str:
    parts = [
        f"{AXIS_SYMBOLS.get(a, a)} = {_format_value(v)}" for a, v in fixed.items() if a != "seed"
    ]
    if not seed_plotted:
        parts.append(
            f"seed = {_format_value(fixed['seed'])}"
            if "seed" in fixed
            else f"{agg} over {n_seeds} seeds"
        )
    return ", ".join(parts)


def _seed_table(rows, by, metric, agg, kind, extra) -> pd.DataFrame:
    """The aggregated cells: ``metric`` by ``agg`` (fraction True for booleans), the
    theory columns ``extra`` by median, and ``_dead``: the drawn value is −inf (for a
    spread: every seed is −inf)."""
    table = aggregate_seeds(rows, by, [metric], "mean" if kind == "boolean" else agg)
    if extra:
        theory = aggregate_seeds(rows, by, extra, "median")
        for column in extra:
            table[column] = theory[column].to_numpy()
    if kind == "spread":
        dead = rows[metric].astype(np.float64) == -np.inf
        table["_dead"] = (
            dead.groupby([rows[b] for b in by], sort=True, dropna=False, observed=True)
            .all()
            .to_numpy()
        )
    else:
        table["_dead"] = table[metric] == -np.inf
    return table


def _same_across(table: pd.DataFrame, overlay: str, keys: list, columns: list) -> bool:
    """Whether ``columns`` take the same values for every overlay value at each ``keys``."""
    for column in columns:
        wide = table.pivot_table(
            index=keys, columns=overlay, values=column, dropna=False, observed=True
        ).to_numpy(np.float64)
        if not np.allclose(wide, wide[:, :1], rtol=1e-9, equal_nan=True):
            return False
    return True


def phase_diagram(
    df: pd.DataFrame,
    x: str = "sigma_w",
    y: str = "depth",
    metric: str = "log10_backward_gain",
    facet: Sequence[str] | None = DEFAULT_FACET,
    agg: str = "median",
    where: Mapping[str, object] | None = None,
    *,
    theory: bool = True,
    xi_multiple: float = DEFAULT_XI_MULTIPLE,
    log_x: bool | None = None,
    log_y: bool | None = None,
    title: str | None = None,
    vlim: tuple[float, float] | None = None,
    color_scale: str = "shared",
    overlay: str | None = None,
):
    """A heatmap of one metric over two axes, one panel per facet value.

    Log-ratio metrics (``log10_*``) use a diverging colormap centred on 0 (blue: vanishing,
    red: exploding) with the measured boundary, the metric's 0 contour, drawn on top.
    Dead cells (−inf, e.g. a ReLU net whose signal died) are hatched and cells with no
    value (NaN) grey, each with a legend entry, never painted as the colour map's end.
    When the rows carry theory columns and one axis is sigma_w (or sigma_w2), the
    mean-field critical σ_w (χ₁ = 1) is drawn as a dashed line and, when the other axis
    is depth, ``xi_multiple``·|ξ_c| as a dotted curve; for log10_backward_gain the 0
    contour of theory_log10_backward_gain, the finite-depth prediction, is dashed too.

    Args:
        df: config rows from ``sweep.load`` (the list columns are not needed); rows
            without sigma_w2/sigma_b2 get them from sigma_w/sigma_b.
        x, y: the plotted axes, any of depth, sigma_w, sigma_w2, sigma_b, sigma_b2, width,
            init, activation, seed, .... Exactly geometric numeric axes get a log scale,
            every other one a linear scale (``log_x``/``log_y`` force it on or off).
        metric: a column with values in the selected rows, e.g. log10_backward_gain,
            log10_forward_gain, log10_jac_sv_max, overflow_layer (sequential colours),
            trainable (the fraction of seeds True, on 0..1), theory_log10_backward_gain.
        facet: axes split into panels (default init and activation); () for one panel.
        agg: over seeds, "median" (default) or "mean", or the spread: "std" or "iqr"
            (75th − 25th percentile), drawn with a sequential colour map from 0.
        where: column -> value or list of values to keep, e.g. {"width": 64}.
        theory: draw the theory overlay when the theory columns are there.
        xi_multiple: the multiple of |ξ_c| drawn as the depth-scale curve.
        log_x, log_y: force a log (True) or linear (False) scale on x or y; None (the
            default) decides from the values' spacing.
        title: the figure title; default names the metric and the fixed axes.
        vlim: (lo, hi) colour limits for every panel; a diverging map keeps 0 white.
        color_scale: "shared" (default: one colour bar for all panels) or "per-panel"
            (each panel its own limits and colour bar).
        overlay: an axis (e.g. "init") whose values are compared in each panel: each
            value's measured boundary (0 contour of a log10_* metric, aggregated over
            seeds) is a line of its own colour with a legend entry, and no heatmap is
            drawn. The theory lines are drawn when they are the same for every value.
            The axis must not be plotted or faceted (it leaves the default facet).

    Returns:
        A matplotlib Figure.

    Raises:
        PlotError: an unknown metric or axis, a metric with no value in the selection,
            a selection with no rows, an unplotted axis left with more than one value, or
            a bad vlim, colour scale or overlay.
    """
    df = with_square_axes(df)
    facet, overlay = _check_request(df, x, y, facet, agg, overlay, color_scale)
    vlim = check_vlim(vlim)
    if vlim is not None and color_scale == "per-panel":
        raise PlotError("give vlim or a per-panel colour scale, not both")
    rows = select(df, where)
    if rows.empty:
        raise PlotError("the selection has no rows; the results directory is empty")
    _check_metric(rows, metric)
    kind = colour_kind(rows, metric, agg)
    if overlay:
        if kind != "diverging":
            raise PlotError(
                f"--overlay draws each value's boundary, the 0 contour of a log10_* metric "
                f"(median or mean over seeds); not {metric} by {agg}"
            )
        levels = _unique(rows[overlay])
        if len(levels) < 2:
            raise PlotError(
                f"--overlay {overlay}: the selection leaves one value "
                f"({_format_values(levels)}); an overlay compares two or more"
            )
    plotted = (x, y, *facet, *([overlay] if overlay else []))
    unplotted = [a for a in AXES if a not in _covered(plotted) and a != "seed"]
    fixed = check_single_valued(rows, unplotted)
    fixed = {a: fixed[a] for a in without_partners(fixed, prefer=where or {})}
    by = [*facet, *([overlay] if overlay else []), y, x]
    theory_columns = [c for c in ("theory_chi1", "theory_xi_c") if c in rows.columns and theory]
    # The finite-depth prediction of the same metric: its 0 contour is the theory's boundary
    # at each depth (for residual nets, which have no chi1, the only one there is).
    predicted = THEORY_OF.get(metric) if theory and kind == "diverging" else None
    predicted = predicted if predicted in rows.columns and rows[predicted].notna().any() else None
    extra = [*theory_columns, *([predicted] if predicted else [])]
    table = _seed_table(rows, by, metric, agg, kind, extra)
    n_seeds = int(table["n_seeds"].max()) if len(table) else 0
    if kind == "spread" and n_seeds < 2:
        raise PlotError(
            f"--agg {agg} is a spread over seeds and needs two or more per cell; there is one"
        )
    if table[metric].isna().all() and not table["_dead"].any():
        raise PlotError(f"metric {metric!r} is NaN in every selected cell; nothing to draw")
    if "seed" not in by:
        seeds = _unique(rows["seed"]) if "seed" in rows.columns else []
        if len(seeds) == 1:
            fixed["seed"] = seeds[0]
    if overlay and extra and not _same_across(table, overlay, [*facet, y, x], extra):
        extra, theory_columns, predicted = [], [], None

    grid = grid_of_rows(rows, x, y, log_x, log_y)
    panels, n_rows, n_cols = facet_panels(table, facet)
    label = colour_label(metric, kind, agg)
    short_label = colour_label(metric, kind, agg, short=True)
    shared = colour_scale(table[metric].to_numpy(np.float64), kind, label, vlim)

    fig = _new_figure(1.6 + 3.4 * n_cols, 1.2 + 2.9 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    handles: dict[str, object] = {}
    used = {(p.row, p.col) for p in panels}
    colours = _boundaries.overlay_colours(_unique(rows[overlay])) if overlay else {}
    crossed: dict = {}
    mesh = None
    for panel in panels:
        ax = axes[panel.row, panel.col]
        if overlay:
            big = 1e3 * max(1.0, _finite_max(table[metric]))
            drawn = _boundaries.draw_overlay(
                ax, panel.frame, x, y, metric, overlay, colours,
                (grid.xc, grid.yc, grid.x_values, grid.y_values), big,
            )  # fmt: skip
            crossed = {v: crossed.get(v, False) or d for v, d in drawn.items()}
            theory_frame = panel.frame[panel.frame[overlay] == next(iter(colours))]
        else:
            scale = (
                colour_scale(panel.frame[metric].to_numpy(np.float64), kind, short_label)
                if color_scale == "per-panel"
                else shared
            )
            mesh = _draw_cells(ax, panel.frame, grid, metric, scale, handles, kind == "diverging")
            if color_scale == "per-panel":
                add_colorbar(fig, mesh, [ax], scale, marks=False)
            theory_frame = panel.frame
        if predicted:
            z = _boundaries.grid_of(theory_frame, x, y, predicted, grid.x_values, grid.y_values)
            big = 1e3 * max(1.0, _finite_max(theory_frame[predicted]))
            if _boundaries.zero_contour(
                ax, grid.xc, grid.yc, z, big, **_boundaries.PREDICTED_STYLE
            ):
                handles.setdefault("predicted", _boundaries.predicted_handle())
        _draw_theory_lines(ax, theory_frame, grid, theory_columns, xi_multiple, handles)
        if panel.title:
            ax.set_title(panel.title, fontsize=10)
    _format_axes(axes, grid, used, n_rows, n_cols)
    if overlay:
        handles = {**_boundaries.overlay_handles(metric, overlay, colours, crossed), **handles}
    elif color_scale == "shared":
        chosen = np.array([[(i, j) in used for j in range(n_cols)] for i in range(n_rows)])
        add_colorbar(fig, mesh, axes[chosen].tolist(), shared, 0.9 if n_rows > 1 else 1.0)
    if handles:
        figure_legend(
            fig,
            list(handles.values()),
            min(3, len(handles)),
            loc="outside lower center",
            fontsize=9,
            frameon=False,
        )
    agg_text = "fraction True" if kind == "boolean" else agg
    what = (
        f"measured boundaries ({_short(metric)} = 0) by {AXIS_SYMBOLS.get(overlay, overlay)}"
        if overlay
        else _short(metric)
    )
    fig.suptitle(
        title
        or f"{what} over {AXIS_SYMBOLS.get(x, x)} and {AXIS_SYMBOLS.get(y, y)}  "
        f"({_fixed_description(fixed, n_seeds, agg_text, 'seed' in by)})",
        fontsize=11,
    )
    return fit_texts(fig)


def _finite_max(values) -> float:
    finite = np.abs(np.asarray(values, np.float64))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else 1.0


def _draw_cells(ax, frame, grid: Grid, metric, scale, handles, boundary: bool):
    """The heatmap of one panel: coloured cells, dead and empty ones apart, the measured
    boundary on top when ``boundary``; returns the QuadMesh."""
    import matplotlib as mpl

    z = _boundaries.grid_of(frame, grid.x, grid.y, metric, grid.x_values, grid.y_values)
    dead = _boundaries.grid_of(frame, grid.x, grid.y, "_dead", grid.x_values, grid.y_values)
    dead = np.nan_to_num(dead) > 0.5
    big = max(abs(scale.vmin), abs(scale.vmax)) * 1e3
    drawn = _cells.drawn_values(np.where(dead, -np.inf, z), big)
    cmap = mpl.colormaps[scale.cmap].with_extremes(bad=_cells.NAN_COLOUR)
    mesh = ax.pcolormesh(
        grid.xe, grid.ye, drawn, cmap=cmap, norm=scale.norm(), shading="flat", rasterized=True
    )
    has_dead = _cells.draw_dead_cells(ax, grid.xe, grid.ye, dead)
    has_nan = bool((np.ma.getmaskarray(drawn) & ~dead).any())
    if boundary and _boundaries.zero_contour(
        ax, grid.xc, grid.yc, z, big, **_boundaries.MEASURED_STYLE
    ):
        handles.setdefault("measured", _boundaries.measured_handle(metric))
    for key, patch in _cells.legend_patches(has_dead, has_nan).items():
        handles.setdefault(key, patch)
    return mesh


def _draw_theory_lines(ax, frame, grid: Grid, columns, xi_multiple, handles) -> None:
    """The mean-field critical line and depth scale (_overlay), kept to the grid's limits."""
    from matplotlib.lines import Line2D

    limits = ((grid.xe[0], grid.xe[-1]), (grid.ye[0], grid.ye[-1]))
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    if not columns:
        return
    logs = (grid.x_log, grid.y_log)
    for line in _draw_theory(ax, frame, grid.x, grid.y, limits, logs, xi_multiple):
        handles.setdefault(
            line.get_label(),
            Line2D(
                [],
                [],
                color=line.get_color(),
                linestyle=line.get_linestyle(),
                linewidth=line.get_linewidth(),
                label=line.get_label(),
            ),
        )
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
