"""Phase diagrams and per-layer trajectories from sweep results, with matplotlib.

Pure pandas and matplotlib (no JAX). Figures are built as ``matplotlib.figure.Figure``
objects on the Agg canvas, never through pyplot's global state, so they work headless,
in scripts and in notebooks (a returned Figure displays itself there). matplotlib is
imported only when a figure is drawn.

    fig = phase_diagram(df, x="sigma_w", y="depth", metric="log10_backward_gain",
                        facet=("init", "activation"), where={"width": 64})
    fig = layer_plot(df, where={"init": "gaussian", "activation": "tanh", "width": 64,
                                "sigma_w": [0.5, 1.0, 1.5]}, facet=())
    save(fig, "phase.png")

Selection rules, shared by both plots:

- ``where`` keeps the rows whose column equals one of the given values (numbers match to
  1e-9 relative, so ``sigma_w=1`` finds 1.0).
- Seeds are aggregated by ``agg`` (median by default, or mean) unless seed is plotted.
- Every other axis that is neither plotted nor faceted must be left with one value by
  ``where``; otherwise a PlotError names the axis and its values.

The private modules, one idea each: _select (where, facets, seed aggregation, request
checks), _grid (heatmap cells), _phase (phase_diagram), _overlay (the mean-field theory
lines), _layers (layer_plot), _style (labels, symbols, colour maps), _figure (the Agg
canvas and saving by extension).
"""

from ._figure import (
    FORMATS as FORMATS,
    _new_figure as _new_figure,  # used by scripts/make_trainability_figure.py
    output_format as output_format,
    save as save,
)
from ._grid import cell_edges as cell_edges, is_geometric as is_geometric
from ._layers import LAYER_METRICS as LAYER_METRICS, layer_plot as layer_plot
from ._overlay import (
    DEFAULT_XI_MULTIPLE as DEFAULT_XI_MULTIPLE,
    critical_sigma_w as critical_sigma_w,
)
from ._phase import phase_diagram as phase_diagram
from ._select import (
    AGGREGATIONS as AGGREGATIONS,
    AXES as AXES,
    DEFAULT_FACET as DEFAULT_FACET,
    Panel as Panel,
    PlotError as PlotError,
    aggregate_seeds as aggregate_seeds,
    check_single_valued as check_single_valued,
    facet_panels as facet_panels,
    metric_columns as metric_columns,
    parse_where as parse_where,
    select as select,
)
from ._style import (
    AXIS_LABELS as AXIS_LABELS,
    AXIS_SYMBOLS as AXIS_SYMBOLS,
    DIVERGING_CMAP as DIVERGING_CMAP,
    MAX_LEGEND_LINES as MAX_LEGEND_LINES,
    METRIC_LABELS as METRIC_LABELS,
    SEQUENTIAL_CMAP as SEQUENTIAL_CMAP,
    is_diverging as is_diverging,
)

__all__ = [
    "AGGREGATIONS",
    "AXES",
    "AXIS_LABELS",
    "AXIS_SYMBOLS",
    "DEFAULT_FACET",
    "DEFAULT_XI_MULTIPLE",
    "DIVERGING_CMAP",
    "FORMATS",
    "LAYER_METRICS",
    "MAX_LEGEND_LINES",
    "METRIC_LABELS",
    "SEQUENTIAL_CMAP",
    "Panel",
    "PlotError",
    "aggregate_seeds",
    "cell_edges",
    "check_single_valued",
    "critical_sigma_w",
    "facet_panels",
    "is_diverging",
    "is_geometric",
    "layer_plot",
    "metric_columns",
    "output_format",
    "parse_where",
    "phase_diagram",
    "save",
    "select",
]
