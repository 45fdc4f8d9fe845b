"""Phase diagrams: a heatmap of one metric over two axes, one panel per facet value.

The cells sit around the grid's values (midpoints between them, in log space on a
geometric axis); log-ratio metrics get a diverging colour scale centred on 0 with the
measured boundary (the metric's 0 contour) on top, and the theory overlay (_overlay) is
drawn where the theory columns are there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ._figure import _new_figure
from ._grid import _axis_coordinates
from ._overlay import DEFAULT_XI_MULTIPLE, _draw_theory
from ._select import (
    AGGREGATIONS,
    AXES,
    DEFAULT_FACET,
    PlotError,
    _check_axis,
    _check_facet,
    _unique,
    aggregate_seeds,
    check_single_valued,
    facet_panels,
    metric_columns,
    select,
)
from ._style import (
    AXIS_LABELS,
    AXIS_SYMBOLS,
    DIVERGING_CMAP,
    METRIC_LABELS,
    SEQUENTIAL_CMAP,
    _format_value,
    _short,
    is_diverging,
)


def _check_request(df, x, y, metric, facet, agg) -> list[str]:
    """Checks a phase diagram's axes, facet, metric and aggregation; returns the facet."""
    _check_axis("x", x, df)
    _check_axis("y", y, df)
    if x == y:
        raise PlotError(f"x and y are both {x!r}; give two different axes")
    facet = _check_facet(facet, df, exclude=(x, y))
    metrics = metric_columns(df)
    if metric not in metrics:
        raise PlotError(f"unknown metric {metric!r}; accepted: {', '.join(metrics)}")
    if agg not in AGGREGATIONS:
        raise PlotError(f"unknown aggregation {agg!r}; accepted: {', '.join(AGGREGATIONS)}")
    return facet


def _symmetric_limit(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    if not finite.size:
        return 1.0
    limit = float(np.percentile(finite, 99))
    return limit if limit > 0 else (float(finite.max()) or 1.0)


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


# The theory column that predicts a metric at each row's own depth.
THEORY_OF = {"log10_backward_gain": "theory_log10_backward_gain"}


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
):
    """A heatmap of one metric over two axes, one panel per facet value.

    Log-ratio metrics (``log10_*``) use a diverging colormap centred on 0 (blue: vanishing,
    red: exploding) with the measured boundary, the metric's 0 contour, drawn on top.
    When the rows carry theory columns and one axis is sigma_w, the mean-field critical
    σ_w (χ₁ = 1) is drawn as a dashed line and, when the other axis is depth,
    ``xi_multiple``·|ξ_c| as a dotted curve.

    Args:
        df: config rows from ``sweep.load`` (the list columns are not needed).
        x, y: the plotted axes, any of depth, sigma_w, sigma_b, width, init, activation,
            seed. Numeric axes spaced geometrically get a log scale (``log_x``/``log_y``
            force it on or off).
        metric: a numeric column, e.g. log10_backward_gain, log10_forward_gain,
            log10_jac_sv_max, log10_jac_sv_min, overflow_layer, theory_log10_backward_gain.
        facet: axes split into panels (default init and activation); () for one panel.
        agg: "median" (default) or "mean" over seeds.
        where: column -> value or list of values to keep, e.g. {"width": 64}.
        theory: draw the theory overlay when the theory columns are there.
        xi_multiple: the multiple of |ξ_c| drawn as the depth-scale curve.
        log_x, log_y: force a log (True) or linear (False) scale on x or y; None (the
            default) decides from the values' spacing.
        title: the figure title; default names the metric and the fixed axes.

    Returns:
        A matplotlib Figure.

    Raises:
        PlotError: an unknown metric or axis, a selection with no rows, or an unplotted
            axis left with more than one value.
    """
    facet = _check_request(df, x, y, metric, facet, agg)
    rows = select(df, where)
    if rows.empty:
        raise PlotError("the selection has no rows; the results directory is empty")
    fixed = check_single_valued(rows, [a for a in AXES if a not in (x, y, *facet, "seed")])
    by = [*facet, y, x]
    theory_columns = [c for c in ("theory_chi1", "theory_xi_c") if c in rows.columns and theory]
    # The finite-depth prediction of the same metric: its 0 contour is the theory's boundary
    # at each depth (for residual nets, which have no chi1, the only one there is).
    predicted = THEORY_OF.get(metric) if theory else None
    predicted = predicted if predicted in rows.columns and rows[predicted].notna().any() else None
    extra = [predicted] if predicted else []
    table = aggregate_seeds(rows, by, [metric, *theory_columns, *extra], agg)
    if table[metric].isna().all():
        raise PlotError(f"metric {metric!r} is NaN in every selected row; nothing to draw")
    if "seed" not in by:
        seeds = _unique(rows["seed"]) if "seed" in rows.columns else []
        if len(seeds) == 1:
            fixed["seed"] = seeds[0]

    x_values, y_values = _unique(rows[x]), _unique(rows[y])
    xc, xe, x_log, x_ticks = _axis_coordinates(x_values, x, log_x)
    yc, ye, y_log, y_ticks = _axis_coordinates(y_values, y, log_y)
    panels, n_rows, n_cols = facet_panels(table, facet)

    diverging = is_diverging(metric)
    values = table[metric].to_numpy(np.float64)
    if diverging:
        vmax = _symmetric_limit(values)
        vmin = -vmax
        cmap_name = DIVERGING_CMAP
    else:
        finite = values[np.isfinite(values)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        vmax = vmax if vmax > vmin else vmin + 1.0
        cmap_name = SEQUENTIAL_CMAP
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    cmap = mpl.colormaps[cmap_name].with_extremes(bad="0.8")
    norm = mpl.colors.Normalize(vmin=vmin, vmax=vmax)
    extend = {
        (False, False): "neither",
        (True, False): "min",
        (False, True): "max",
        (True, True): "both",
    }[(bool((values < vmin).any()), bool((values > vmax).any()))]

    fig = _new_figure(1.6 + 3.4 * n_cols, 1.2 + 2.9 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    handles: dict[str, object] = {}
    used = set()
    mesh = None
    for panel in panels:
        ax = axes[panel.row, panel.col]
        used.add((panel.row, panel.col))
        grid = panel.frame.pivot(index=y, columns=x, values=metric).reindex(
            index=y_values, columns=x_values
        )
        z = grid.to_numpy(np.float64)
        big = max(abs(vmin), abs(vmax)) * 1e3
        z_drawn = np.ma.masked_invalid(np.nan_to_num(z, nan=np.nan, posinf=big, neginf=-big))
        mesh = ax.pcolormesh(xe, ye, z_drawn, cmap=cmap, norm=norm, shading="flat", rasterized=True)
        if diverging and z.shape[0] >= 2 and z.shape[1] >= 2:
            finite_z = z_drawn.compressed()
            if finite_z.size and finite_z.min() < 0 < finite_z.max():
                ax.contour(xc, yc, z_drawn, levels=[0.0], colors="black", linewidths=1.8)
                handles.setdefault(
                    "measured",
                    Line2D(
                        [],
                        [],
                        color="black",
                        linewidth=1.8,
                        label=f"measured boundary ({_short(metric)} = 0)",
                    ),
                )
        if predicted and z.shape[0] >= 2 and z.shape[1] >= 2:
            theory_grid = panel.frame.pivot(index=y, columns=x, values=predicted)
            zt = theory_grid.reindex(index=y_values, columns=x_values).to_numpy(np.float64)
            zt = np.ma.masked_invalid(np.clip(zt, -big, big))
            if zt.count() and zt.min() < 0 < zt.max():
                ax.contour(xc, yc, zt, levels=[0.0], colors="0.15", linewidths=1.4, linestyles="--")
                handles.setdefault(
                    "predicted",
                    Line2D(
                        [],
                        [],
                        color="0.15",
                        linewidth=1.4,
                        linestyle="--",
                        label="theory boundary (finite-depth prediction = 0)",
                    ),
                )
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        if theory_columns:
            for line in _draw_theory(
                ax,
                panel.frame,
                x,
                y,
                ((xe[0], xe[-1]), (ye[0], ye[-1])),
                (x_log, y_log),
                xi_multiple,
            ):
                handles.setdefault(line.get_label(), _legend_copy(line, Line2D))
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
        if panel.title:
            ax.set_title(panel.title, fontsize=10)
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i, j]
            if (i, j) not in used:
                ax.set_visible(False)
                continue
            if x_log:
                ax.set_xscale("log")
            if y_log:
                ax.set_yscale("log")
            if x_ticks is not None:
                ax.set_xticks(xc, x_ticks)
            if y_ticks is not None:
                ax.set_yticks(yc, y_ticks)
            ax.tick_params(labelbottom=True, labelleft=True, labelsize=8)
            if i == n_rows - 1 or (i + 1, j) not in used:
                ax.set_xlabel(AXIS_LABELS.get(x, x))
            if j == 0:
                ax.set_ylabel(AXIS_LABELS.get(y, y))

    bar = fig.colorbar(
        mesh,
        ax=axes[
            np.array([[(i, j) in used for j in range(n_cols)] for i in range(n_rows)])
        ].tolist(),
        extend=extend,
        shrink=0.9 if n_rows > 1 else 1.0,
        aspect=30,
    )
    bar.set_label(METRIC_LABELS.get(metric, metric))
    if diverging:
        # Past the extension triangles (5% of the bar each) when the bar is extended.
        top = 1.07 if extend in ("max", "both") else 1.01
        bottom = -0.07 if extend in ("min", "both") else -0.01
        bar.ax.text(
            0.5,
            top,
            "exploding",
            transform=bar.ax.transAxes,
            ha="center",
            va="bottom",
            fontsize=8,
            color=mpl.colormaps[cmap_name](0.95),
        )
        bar.ax.text(
            0.5,
            bottom,
            "vanishing",
            transform=bar.ax.transAxes,
            ha="center",
            va="top",
            fontsize=8,
            color=mpl.colormaps[cmap_name](0.05),
        )
    if handles:
        fig.legend(
            handles=list(handles.values()),
            loc="outside lower center",
            ncols=min(3, len(handles)),
            fontsize=9,
            frameon=False,
        )
    n_seeds = int(table["n_seeds"].max()) if len(table) else 0
    fig.suptitle(
        title
        or f"{_short(metric)} over {AXIS_SYMBOLS.get(x, x)} and {AXIS_SYMBOLS.get(y, y)}  "
        f"({_fixed_description(fixed, n_seeds, agg, 'seed' in by)})",
        fontsize=11,
    )
    return fig


def _legend_copy(line, line_cls):
    return line_cls(
        [],
        [],
        color=line.get_color(),
        linestyle=line.get_linestyle(),
        linewidth=line.get_linewidth(),
        label=line.get_label(),
    )
