"""Per-layer trajectories: activation and gradient norms against layer, one line per config.

The y values are log10 norms from the engine's exact log-space pass, drawn on a linear
axis labelled as powers of ten, so depth 10,000 draws as easily as depth 10.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ._figure import _new_figure, fit_texts
from ._select import (
    AGGREGATIONS,
    AXES,
    SPREADS,
    PlotError,
    _check_facet,
    _covered,
    _unique,
    aggregate_seeds,
    facet_panels,
    with_square_axes,
    without_partners,
)
from ._style import AXIS_LABELS, AXIS_SYMBOLS, MAX_LEGEND_LINES, METRIC_LABELS, _format_value
from ._where import select

LAYER_METRICS = ("log10_act_norm", "log10_grad_norm")


def layer_plot(
    df: pd.DataFrame,
    where: Mapping[str, object] | None = None,
    facet: Sequence[str] | None = (),
    agg: str = "median",
    metrics: Sequence[str] = LAYER_METRICS,
    title: str | None = None,
):
    """Activation and gradient norms against layer, one line per selected config.

    The lecture's "activation magnitude vs layer" figure on a log axis: the y values are
    log10 norms from the engine's exact log-space pass, labelled as powers of ten, so
    depth 10,000 draws as easily as depth 10.

    Selection: ``where`` picks configs; depth defaults to the deepest one selected (every
    shallower network is a prefix of it) unless ``where`` names depth. One further axis
    may vary: it becomes the line colour. Seeds are aggregated by ``agg``.

    Args:
        df: config rows from ``sweep.load`` (with the list columns) or the per-layer table
            from ``sweep.load(DIR, layers=True)``.
        where: column -> value or list of values, e.g. {"sigma_w": [0.5, 1.0, 1.5]}.
        facet: axes split into panel rows, e.g. ("activation",).
        agg: "median" (default) or "mean" over seeds (a spread, std or iqr, is refused:
            the axis is labelled in powers of ten).
        metrics: panel columns, from log10_act_norm (layers 0..L) and log10_grad_norm
            (layers 1..L).
        title: the figure title; default names the fixed axes and the seeds.

    Returns:
        A matplotlib Figure.

    Raises:
        PlotError: an unknown axis or metric, an empty selection, or more than one axis
            left varying.
    """
    from .. import layers as layers_module

    metrics = list(metrics)
    for m in metrics:
        if m not in LAYER_METRICS:
            raise PlotError(f"unknown layer metric {m!r}; accepted: {', '.join(LAYER_METRICS)}")
    if agg not in AGGREGATIONS:
        raise PlotError(f"unknown aggregation {agg!r}; accepted: {', '.join(AGGREGATIONS)}")
    if agg in SPREADS:
        accepted = ", ".join(a for a in AGGREGATIONS if a not in SPREADS)
        raise PlotError(f"a layer plot aggregates seeds by {accepted}, not {agg}")
    df = with_square_axes(df)
    facet = _check_facet(facet, df, exclude=("seed",))
    rows = select(df, where)
    if rows.empty:
        raise PlotError("the selection has no rows; the results directory is empty")
    if "depth" not in (where or {}) and "depth" not in facet:
        rows = rows[rows["depth"] == rows["depth"].max()]
    varying = without_partners(
        [
            a
            for a in AXES
            if a not in _covered((*facet, "seed")) and a in rows.columns and rows[a].nunique() > 1
        ],
        prefer=where or {},
    )
    if len(varying) > 1:
        example = _format_value(_unique(rows[varying[1]])[0])
        raise PlotError(
            f"{', '.join(varying)} vary, but a layer plot colours lines by one axis: "
            f"fix all but one with --where (e.g. --where {varying[1]}={example}) "
            "or add them to --facet"
        )
    hue = varying[0] if varying else None
    fixed = {
        a: _unique(rows[a])[0]
        for a in without_partners(AXES, prefer=where or {})
        if a not in _covered((*facet, "seed", *varying))
        and a in rows.columns
        and rows[a].notna().any()
    }
    long = with_square_axes(rows if "layer" in rows.columns else layers_module.long_table(rows))
    by = [*facet, *([hue] if hue else []), "layer"]
    table = aggregate_seeds(long, by, metrics, agg)
    seeds = _unique(rows["seed"])
    if len(seeds) == 1:
        fixed["seed"] = seeds[0]

    panels, _, _ = facet_panels(table, facet, wrap=1)
    n_rows, n_cols = len(panels), len(metrics)
    import matplotlib as mpl
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    hue_values = _unique(table[hue]) if hue else [None]
    cmap = mpl.colormaps["viridis"]
    numeric_hue = hue is not None and not isinstance(hue_values[0], str)
    colours = {v: cmap(0.9 * i / max(len(hue_values) - 1, 1)) for i, v in enumerate(hue_values)}
    use_colorbar = numeric_hue and len(hue_values) > MAX_LEGEND_LINES

    fig = _new_figure(
        1.4 + 4.2 * n_cols + (0.8 if use_colorbar else 1.6 if hue else 0.0), 1.0 + 2.8 * n_rows
    )
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True)
    power_of_ten = FuncFormatter(lambda v, _: f"$10^{{{v:g}}}$")
    for i, panel in enumerate(panels):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for value in hue_values:
                line = panel.frame if hue is None else panel.frame[panel.frame[hue] == value]
                line = line.dropna(subset=[metric])
                label = _format_value(value) if hue else None
                ax.plot(
                    line["layer"],
                    line[metric],
                    color=colours[value] if hue else "C0",
                    linewidth=1.4,
                    label=label,
                )
            ax.axhline(0.0, color="0.6", linewidth=0.8, linestyle=":")
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
            ax.yaxis.set_major_formatter(power_of_ten)
            ax.grid(True, which="major", alpha=0.25)
            ax.tick_params(labelsize=8, labelbottom=True)
            ax.set_ylabel(METRIC_LABELS[metric] + " (log scale)", fontsize=9)
            if i == n_rows - 1:
                ax.set_xlabel(AXIS_LABELS["layer"])
            heading = {"log10_act_norm": "activations", "log10_grad_norm": "gradients"}[metric]
            ax.set_title(f"{heading}, {panel.title}" if panel.title else heading, fontsize=10)
    if use_colorbar:
        mappable = mpl.cm.ScalarMappable(
            norm=mpl.colors.Normalize(min(hue_values), max(hue_values)),
            cmap=mpl.colors.ListedColormap([colours[v] for v in hue_values]),
        )
        bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), aspect=30)
        bar.set_label(AXIS_LABELS.get(hue, hue))
    elif hue:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="outside right upper",
            fontsize=9,
            frameon=False,
            title=AXIS_SYMBOLS.get(hue, hue),
            title_fontsize=10,
        )
    description = ", ".join(
        f"{AXIS_SYMBOLS.get(a, a)} = {_format_value(v)}" for a, v in fixed.items() if a != "seed"
    )
    seed_text = (
        f"seed = {_format_value(fixed['seed'])}"
        if "seed" in fixed
        else f"{agg} over {len(seeds)} seeds"
    )
    fig.suptitle(title or f"norms against layer  ({description}, {seed_text})", fontsize=11)
    return fit_texts(fig)
