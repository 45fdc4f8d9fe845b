"""Phase diagrams and per-layer trajectories from sweep results, with matplotlib.

Pure pandas and matplotlib (no JAX). Figures are built as ``matplotlib.figure.Figure``
objects on the Agg canvas, never through pyplot's global state, so they work headless,
in scripts and in notebooks (a returned Figure displays itself there).

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
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

AXES = (
    "depth",
    "sigma_w",
    "sigma_b",
    "width",
    "init",
    "activation",
    "seed",
    "learning_rate",
)  # learning_rate: sweeps that train
AGGREGATIONS = ("median", "mean")
FORMATS = (".png", ".svg", ".pdf")
LAYER_METRICS = ("log10_act_norm", "log10_grad_norm")
DEFAULT_FACET = ("init", "activation")
DEFAULT_XI_MULTIPLE = 6.0  # Schoenholz et al. 2017: trainable while depth < ~6 xi_c
DIVERGING_CMAP = "RdBu_r"  # blue: vanishing (< 0), red: exploding (> 0)
SEQUENTIAL_CMAP = "viridis"
MAX_LEGEND_LINES = 12

AXIS_LABELS = {
    "depth": "depth L [layers]",
    "sigma_w": "σ_w (weight std × √fan_in)",
    "sigma_b": "σ_b (bias std)",
    "width": "width N [units]",
    "seed": "seed",
    "init": "init",
    "activation": "activation",
    "layer": "layer l",
}
AXIS_SYMBOLS = {"depth": "L", "sigma_w": "σ_w", "sigma_b": "σ_b", "width": "N"}
METRIC_LABELS = {
    "log10_backward_gain": "backward gain log10(‖∂ℓ/∂a_0‖ / ‖∂ℓ/∂a_L‖) [decades]",
    "log10_forward_gain": "forward gain log10(‖a_L‖ / ‖a_0‖) [decades]",
    "log10_jac_sv_max": "largest Jacobian singular value, log10 [decades]",
    "log10_jac_sv_min": "smallest Jacobian singular value, log10 [decades]",
    "overflow_layer": "first overflowing layer (plain dtype pass) [layer]",
    "underflow_layer": "first underflowing layer (plain dtype pass) [layer]",
    "theory_log10_backward_gain": "mean-field backward gain Σ_l ½·log10 χ(q^l) [decades]",
    "theory_q_star": "mean-field q* [pre-activation mean square]",
    "theory_chi1": "mean-field χ₁ [per-layer gradient ratio²]",
    "theory_c_star": "mean-field c* [correlation]",
    "theory_xi_c": "mean-field ξ_c [layers]",
    "theory_xi_q": "mean-field ξ_q [layers]",
    "log10_act_norm": "activation RMS ‖a_l‖/√N",
    "log10_grad_norm": "weight gradient ‖∂ℓ/∂W_l‖_F",
}


class PlotError(ValueError):
    """A plot request that cannot be drawn; the message is one line naming the fix."""


# ---------------------------------------------------------------------------------------
# Selection, facets and aggregation (plain pandas; unit-tested on synthetic frames).


def parse_where(items: Iterable[str]) -> dict[str, list[str]]:
    """``["width=64", "sigma_w=0.5,1.5"]`` -> ``{"width": ["64"], "sigma_w": ["0.5", "1.5"]}``.

    Raises:
        PlotError: an item is not ``key=value[,value...]``.
    """
    where: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not parts:
            raise PlotError(f"--where {item!r}: expected key=value or key=v1,v2, e.g. width=64")
        where.setdefault(key, []).extend(parts)
    return where


def _format_value(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def _format_values(values, limit: int = 8) -> str:
    values = list(values)
    shown = ", ".join(_format_value(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")


def _scalar_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype != object or c in AXES]


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _match(series: pd.Series, key: str, wanted) -> pd.Series:
    wanted = (
        list(wanted) if isinstance(wanted, (list, tuple, set, np.ndarray, pd.Series)) else [wanted]
    )
    if _is_numeric(series):
        numbers = []
        for value in wanted:
            try:
                numbers.append(float(value))
            except (TypeError, ValueError):
                raise PlotError(
                    f"--where {key}={value}: {key} takes numbers, e.g. {key}={_format_value(series.iloc[0]) if len(series) else 1}"
                ) from None
        column = series.to_numpy(dtype=np.float64)
        mask = np.zeros(len(series), dtype=bool)
        for number in numbers:
            mask |= np.isclose(column, number, rtol=1e-9, atol=1e-12) | (column == number)
        return pd.Series(mask, index=series.index)
    return series.astype(str).isin([str(v) for v in wanted])


def select(df: pd.DataFrame, where: Mapping[str, object] | None) -> pd.DataFrame:
    """The rows matching every ``where`` entry (a value or a list of values per column).

    Raises:
        PlotError: an unknown column, a non-numeric value for a numeric column, or a
            filter that leaves no rows (naming the values that were available).
    """
    if not where:
        return df
    for key, wanted in where.items():
        if key not in df.columns or key not in _scalar_columns(df):
            raise PlotError(
                f"--where {key}=...: unknown column {key!r}; accepted: {', '.join(a for a in AXES if a in df.columns)} or another scalar column"
            )
        if len(df) == 0:
            break
        kept = df[_match(df[key], key, wanted)]
        if kept.empty:
            shown = wanted if isinstance(wanted, (list, tuple)) else [wanted]
            raise PlotError(
                f"--where {key}={','.join(str(v) for v in shown)} selects no rows; {key} has {_format_values(_unique(df[key]))}"
            )
        df = kept
    return df


def _unique(series: pd.Series) -> list:
    values = series.dropna().unique()
    try:
        return sorted(values)
    except TypeError:
        return list(values)


def check_single_valued(df: pd.DataFrame, axes: Iterable[str]) -> dict[str, object]:
    """The value of each axis in ``axes``; each must hold exactly one value in ``df``.

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
    a group whose values are all NaN stays NaN. ±inf take part in the median and mean.

    Args:
        df: config rows.
        by: the plotted and faceted axes, e.g. ("init", "activation", "depth", "sigma_w").
        columns: the numeric columns to aggregate, e.g. ("log10_backward_gain",).
        agg: "median" or "mean".

    Returns:
        A DataFrame with the ``by`` columns, the aggregated ``columns`` and ``n_seeds``
        (rows per group), sorted by ``by``.
    """
    if agg not in AGGREGATIONS:
        raise PlotError(f"unknown aggregation {agg!r}; accepted: {', '.join(AGGREGATIONS)}")
    by = list(dict.fromkeys(by))
    grouped = df.groupby(by, sort=True, dropna=False, observed=True)
    values = (
        grouped[list(columns)].agg(agg)
        if columns
        else grouped.size().to_frame("n_seeds").iloc[:, :0]
    )
    values = values.astype(np.float64)
    values["n_seeds"] = grouped.size().astype(np.int64)
    return values.reset_index()


@dataclasses.dataclass(frozen=True)
class Panel:
    """One facet panel: its grid position, title and rows."""

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


def is_geometric(values) -> bool:
    """Whether numeric axis values are spaced geometrically rather than evenly.

    Two values count as geometric when they are positive and a factor of 10 or more
    apart; three or more when their log-spacing is more even than their spacing.
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
    """Edges of the heatmap cells around sorted centres (midpoints, in log space if geometric)."""
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


# ---------------------------------------------------------------------------------------
# Validation shared by the plots and the CLI.


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The scalar numeric columns a phase diagram can colour by (not the axes)."""
    return [c for c in df.columns if c not in AXES and df[c].dtype != object and _is_numeric(df[c])]


def _check_axis(name: str, axis: str, df: pd.DataFrame) -> None:
    if axis not in AXES or axis not in df.columns:
        raise PlotError(f"unknown {name} axis {axis!r}; accepted: {', '.join(AXES)}")


def _check_request(df, x, y, metric, facet, agg) -> list[str]:
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


def _check_facet(facet, df, exclude=()) -> list[str]:
    facet = [f for f in (facet or ()) if f]
    for f in facet:
        _check_axis("facet", f, df)
        if f in exclude:
            raise PlotError(
                f"cannot facet on {f!r} here (it is plotted, or seed in a layer plot); accepted: {', '.join(a for a in AXES if a not in exclude)}"
            )
    if len(set(facet)) != len(facet):
        raise PlotError(f"facet {','.join(facet)} repeats an axis")
    return facet


def is_diverging(metric: str) -> bool:
    """Log-ratio metrics (log10_*) are centred on 0: vanishing below, exploding above."""
    return metric.startswith("log10_") or metric.startswith("theory_log10_")


def output_format(path: str) -> str:
    """The image format of an output path (png, svg or pdf).

    Raises:
        PlotError: any other extension.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise PlotError(
            f"--out {path}: unknown image format {ext or '(none)'!r}; accepted: {', '.join(FORMATS)}"
        )
    return ext[1:]


def save(fig, path: str, dpi: int = 150) -> str:
    """Writes a figure as PNG, SVG or PDF (by extension), creating the folder; returns path."""
    fmt = output_format(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=dpi)
    return path


# ---------------------------------------------------------------------------------------
# Theory overlay.


def _crossing(sigma_w: np.ndarray, chi1: np.ndarray) -> float:
    """σ_w where chi1 first crosses 1, interpolating ln chi1 linearly in ln σ_w (NaN if none)."""
    ok = np.isfinite(chi1) & (chi1 > 0) & (sigma_w > 0)
    s, c = sigma_w[ok], np.log(chi1[ok])
    exact = np.flatnonzero(c == 0)
    if exact.size:
        return float(s[exact[0]])
    flips = np.flatnonzero(np.sign(c[:-1]) != np.sign(c[1:]))
    if not flips.size:
        return math.nan
    i = flips[0]
    t0, t1 = math.log(s[i]), math.log(s[i + 1])
    return float(math.exp(t0 + (t1 - t0) * (-c[i]) / (c[i + 1] - c[i])))


def critical_sigma_w(frame: pd.DataFrame, along: str | None = None) -> pd.Series:
    """The measured-theory critical σ_w (χ₁ = 1) from the ``theory_chi1`` column.

    Args:
        frame: rows of one panel with ``sigma_w`` and ``theory_chi1`` (any other axes
            already fixed or aggregated).
        along: the other plotted axis (e.g. "depth" or "sigma_b"), or None.

    Returns:
        A Series indexed by the values of ``along`` (a single entry indexed by None when
        ``along`` is None) holding the critical σ_w, NaN where χ₁ does not cross 1.
    """
    if "theory_chi1" not in frame.columns:
        return pd.Series(dtype=np.float64)
    groups = [(None, frame)] if along is None else frame.groupby(along, sort=True)
    out = {}
    for key, group in groups:
        per_sigma = group.groupby("sigma_w", sort=True)["theory_chi1"].median()
        out[key] = _crossing(per_sigma.index.to_numpy(np.float64), per_sigma.to_numpy(np.float64))
    return pd.Series(out, dtype=np.float64)


def _draw_theory(ax, frame: pd.DataFrame, x: str, y: str, limits, logs, xi_multiple: float) -> list:
    """Draws the critical σ_w line and the ξ_c curve on ax; returns legend handles."""
    handles = []
    if (
        "sigma_w" not in (x, y)
        or "theory_chi1" not in frame.columns
        or frame["theory_chi1"].isna().all()
    ):
        return handles
    other = y if x == "sigma_w" else x
    if other in ("init", "activation"):
        return handles
    (x_lo, x_hi), (y_lo, y_hi) = limits
    crit = critical_sigma_w(frame, other).dropna()
    if len(crit):
        along = crit.index.to_numpy(np.float64)
        sw = crit.to_numpy(np.float64)
        other_lo, other_hi = (y_lo, y_hi) if x == "sigma_w" else (x_lo, x_hi)
        if along.size == 1 or np.allclose(sw, sw[0], rtol=1e-9):
            along, sw = np.array([other_lo, other_hi]), np.array([sw[0], sw[0]])
        else:
            along = np.concatenate([[other_lo], along, [other_hi]])
            sw = np.concatenate([[sw[0]], sw, [sw[-1]]])
        xs, ys = (sw, along) if x == "sigma_w" else (along, sw)
        (line,) = ax.plot(
            xs,
            ys,
            color="black",
            linestyle="--",
            linewidth=1.4,
            label="theory: critical σ_w (χ₁ = 1)",
        )
        handles.append(line)
        if np.allclose(sw, sw[0], rtol=1e-9):
            # Label the straight line with its value, on the side with more room.
            box = {
                "boxstyle": "round,pad=0.15",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.75,
            }
            lo, hi = (x_lo, x_hi) if x == "sigma_w" else (y_lo, y_hi)
            log = logs[0] if x == "sigma_w" else logs[1]
            where = (math.log(sw[0] / lo) / math.log(hi / lo)) if log else (sw[0] - lo) / (hi - lo)
            text = f"σ_w* = {sw[0]:.4g}"
            if x == "sigma_w":
                ha = "right" if where > 0.6 else "left"
                ax.annotate(
                    text,
                    (sw[0], 0.03),
                    xycoords=ax.get_xaxis_transform(),
                    xytext=(-3 if ha == "right" else 3, 0),
                    textcoords="offset points",
                    ha=ha,
                    va="bottom",
                    fontsize=7.5,
                    bbox=box,
                )
            else:
                va = "top" if where > 0.6 else "bottom"
                ax.annotate(
                    text,
                    (0.03, sw[0]),
                    xycoords=ax.get_yaxis_transform(),
                    xytext=(0, -3 if va == "top" else 3),
                    textcoords="offset points",
                    ha="left",
                    va=va,
                    fontsize=7.5,
                    bbox=box,
                )
    if other == "depth" and "theory_xi_c" in frame.columns:
        xi = frame.groupby("sigma_w", sort=True)["theory_xi_c"].median()
        sw = xi.index.to_numpy(np.float64)
        depth_scale = xi_multiple * np.abs(xi.to_numpy(np.float64))
        top = (y_hi if x == "sigma_w" else x_hi) * 10.0
        depth_scale = np.where(np.isinf(depth_scale), top, depth_scale)
        lo = y_lo if x == "sigma_w" else x_lo
        visible = np.isfinite(depth_scale) & (depth_scale < top / 10.0) & (depth_scale > lo)
        if visible.any():
            xs, ys = (sw, depth_scale) if x == "sigma_w" else (depth_scale, sw)
            label = (
                f"theory: {xi_multiple:g}·|ξ_c| (correlation depth scale)"
                if xi_multiple != 1
                else "theory: |ξ_c| (correlation depth scale)"
            )
            (line,) = ax.plot(xs, ys, color="0.1", linestyle=":", linewidth=1.8, label=label)
            handles.append(line)
    return handles


# ---------------------------------------------------------------------------------------
# Figures.


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


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
    ``xi_multiple``·|ξ_c| as a solid curve.

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
    table = aggregate_seeds(rows, by, [metric, *theory_columns], agg)
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
        or f"{_short(metric)} over {AXIS_SYMBOLS.get(x, x)} and {AXIS_SYMBOLS.get(y, y)}  ({_fixed_description(fixed, n_seeds, agg, 'seed' in by)})",
        fontsize=11,
    )
    return fig


def _short(metric: str) -> str:
    return (
        metric.removeprefix("theory_").removeprefix("log10_").replace("_", " ")
        if metric.startswith(("log10_", "theory_"))
        else metric
    )


def _legend_copy(line, line_cls):
    return line_cls(
        [],
        [],
        color=line.get_color(),
        linestyle=line.get_linestyle(),
        linewidth=line.get_linewidth(),
        label=line.get_label(),
    )


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
        agg: "median" (default) or "mean" over seeds.
        metrics: panel columns, from log10_act_norm (layers 0..L) and log10_grad_norm
            (layers 1..L).

    Returns:
        A matplotlib Figure.

    Raises:
        PlotError: an unknown axis or metric, an empty selection, or more than one axis
            left varying.
    """
    from . import layers as layers_module

    metrics = list(metrics)
    for m in metrics:
        if m not in LAYER_METRICS:
            raise PlotError(f"unknown layer metric {m!r}; accepted: {', '.join(LAYER_METRICS)}")
    if agg not in AGGREGATIONS:
        raise PlotError(f"unknown aggregation {agg!r}; accepted: {', '.join(AGGREGATIONS)}")
    facet = _check_facet(facet, df, exclude=("seed",))
    rows = select(df, where)
    if rows.empty:
        raise PlotError("the selection has no rows; the results directory is empty")
    if "depth" not in (where or {}) and "depth" not in facet:
        rows = rows[rows["depth"] == rows["depth"].max()]
    varying = [
        a for a in AXES if a not in (*facet, "seed") and a in rows.columns and rows[a].nunique() > 1
    ]
    if len(varying) > 1:
        raise PlotError(
            f"{', '.join(varying)} vary, but a layer plot colours lines by one axis: "
            f"fix all but one with --where (e.g. --where {varying[1]}={_format_value(_unique(rows[varying[1]])[0])}) or add them to --facet"
        )
    hue = varying[0] if varying else None
    fixed = {
        a: _unique(rows[a])[0]
        for a in AXES
        if a not in (*facet, "seed", *(varying)) and a in rows.columns and rows[a].notna().any()
    }
    long = rows if "layer" in rows.columns else layers_module.long_table(rows)
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
    return fig
