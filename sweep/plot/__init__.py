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

- ``where`` keeps the rows whose column equals one of the given values. A number matches
  the stored value equal to it (to 1e-9 relative, so ``sigma_w=1`` finds 1.0), or else the
  one stored value that agrees with it to the significant digits typed (``1.32288``, as
  messages print it, finds 1.3228756555); several candidates or none are an error that
  names them, or the nearest value.
- Seeds are aggregated by ``agg``: median (default) or mean, or the spread std or iqr
  (phase diagrams), unless seed is plotted. Booleans (trainable) draw as the fraction True.
- Every other axis that is neither plotted nor faceted must be left with one value by
  ``where``; otherwise a PlotError names the axis and its values.
- sigma_w2 and sigma_b2 (σ_w², σ_b²) are sigma_w and sigma_b written another way: either
  of a pair may be plotted, faceted or filtered on, and accounts for the other. Rows from
  before those columns get them from sigma_w and sigma_b.

The private modules, one idea each: _select (axes, facets, seed aggregation, metrics on
offer, request checks), _where (where filters and number matching), _grid (heatmap cell
edges, log or linear), _colour (colour maps, limits, colour bars), _cells (dead and empty
cells), _boundaries (0 contours, overlays), _phase (phase_diagram), _overlay (the
mean-field theory lines), _layers (layer_plot), _style (labels, symbols), _figure (the Agg
canvas, fitting texts inside it, file names and saving by extension).
"""

from ._colour import parse_vlim as parse_vlim
from ._figure import (
    FORMATS as FORMATS,
    _new_figure as _new_figure,  # used by scripts/make_trainability_figure.py
    default_filename as default_filename,
    fit_texts as fit_texts,
    output_format as output_format,
    save as save,
)
from ._grid import cell_edges as cell_edges, is_geometric as is_geometric
from ._layers import LAYER_METRICS as LAYER_METRICS, layer_plot as layer_plot
from ._overlay import (
    DEFAULT_XI_MULTIPLE as DEFAULT_XI_MULTIPLE,
    critical_sigma_w as critical_sigma_w,
)
from ._phase import COLOR_SCALES as COLOR_SCALES, phase_diagram as phase_diagram
from ._select import (
    AGGREGATIONS as AGGREGATIONS,
    AXES as AXES,
    DEFAULT_FACET as DEFAULT_FACET,
    SPREADS as SPREADS,
    Panel as Panel,
    PlotError as PlotError,
    aggregate_seeds as aggregate_seeds,
    check_single_valued as check_single_valued,
    facet_panels as facet_panels,
    metric_columns as metric_columns,
    with_square_axes as with_square_axes,
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
from ._where import parse_where as parse_where, select as select

__all__ = [
    "AGGREGATIONS",
    "AXES",
    "AXIS_LABELS",
    "AXIS_SYMBOLS",
    "COLOR_SCALES",
    "DEFAULT_FACET",
    "DEFAULT_XI_MULTIPLE",
    "DIVERGING_CMAP",
    "FORMATS",
    "LAYER_METRICS",
    "MAX_LEGEND_LINES",
    "METRIC_LABELS",
    "SEQUENTIAL_CMAP",
    "SPREADS",
    "Panel",
    "PlotError",
    "aggregate_seeds",
    "cell_edges",
    "check_single_valued",
    "critical_sigma_w",
    "default_filename",
    "facet_panels",
    "fit_texts",
    "is_diverging",
    "is_geometric",
    "layer_plot",
    "metric_columns",
    "output_format",
    "parse_vlim",
    "parse_where",
    "phase_diagram",
    "save",
    "select",
    "with_square_axes",
]
