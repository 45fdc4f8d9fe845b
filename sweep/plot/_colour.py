"""A phase diagram's colour scale: which colour map, which limits, and its colour bar.

What is drawn decides the map: a log ratio (``log10_*``, median or mean over seeds) is
diverging and centred on 0 (blue: vanishing, red: exploding); a seed spread (std, iqr)
is sequential from 0; a boolean is the fraction True, sequential on 0..1; any other
number (a layer index such as overflow_layer, a theory value) is sequential from its
smallest to its largest value. The limits come from the values (symmetric, at the 99th
percentile of |value|, for diverging maps) or from ``vlim``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ._select import SPREADS, PlotError, is_boolean, is_integer
from ._style import (
    DIVERGING_CMAP,
    METRIC_LABELS,
    SEQUENTIAL_CMAP,
    SPREAD_LABELS,
    _short,
    is_diverging,
)


@dataclasses.dataclass(frozen=True)
class ColourScale:
    """How one panel (or all of them) maps values to colours.

    Attributes:
        kind: "diverging", "spread", "boolean", "integer" or "sequential".
        cmap: a matplotlib colour map name.
        vmin, vmax: the ends of the colour bar.
        extend: "neither", "min", "max" or "both": values drawn beyond the ends.
        label: the colour bar's label.
    """

    kind: str
    cmap: str
    vmin: float
    vmax: float
    extend: str
    label: str

    def norm(self):
        """A matplotlib norm; diverging scales keep 0 at the centre colour."""
        import matplotlib as mpl

        if self.kind == "diverging" and self.vmin < 0 < self.vmax and self.vmin != -self.vmax:
            return mpl.colors.TwoSlopeNorm(vcenter=0.0, vmin=self.vmin, vmax=self.vmax)
        return mpl.colors.Normalize(vmin=self.vmin, vmax=self.vmax)


def colour_kind(df: pd.DataFrame, metric: str, agg: str) -> str:
    """What the drawn values are: "spread", "boolean", "diverging", "integer", "sequential"."""
    if agg in SPREADS:
        return "spread"
    if is_boolean(df, metric):
        return "boolean"
    if is_diverging(metric):
        return "diverging"
    return "integer" if is_integer(df, metric) else "sequential"


def colour_label(metric: str, kind: str, agg: str, short: bool = False) -> str:
    """The colour bar's label, e.g. "std over seeds of backward gain ... [decades]"; with
    ``short`` (one bar per panel) the metric's short name and unit, "backward gain
    [decades]"."""
    label = METRIC_LABELS.get(metric, metric)
    if short:
        unit = label[label.rfind("[") :] if label.endswith("]") else ""
        name = agg if kind == "spread" else _short(metric)
        return f"{name} {unit}".strip()
    if kind == "spread":
        return f"{SPREAD_LABELS[agg]} of {label}"
    if kind == "boolean" and metric not in METRIC_LABELS:
        return f"{metric} (fraction of seeds True)"
    return label


def _symmetric_limit(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    if not finite.size:
        return 1.0
    limit = float(np.percentile(finite, 99))
    return limit if limit > 0 else (float(finite.max()) or 1.0)


def check_vlim(vlim) -> tuple[float, float] | None:
    """``vlim`` as (lo, hi) floats, checked: finite, lo < hi; None stays None."""
    if vlim is None:
        return None
    try:
        lo, hi = (float(v) for v in vlim)
    except (TypeError, ValueError):
        raise PlotError(f"vlim {vlim!r}: expected two numbers (lo, hi), e.g. -20,20") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise PlotError(f"vlim {lo:g},{hi:g}: needs finite limits with lo < hi, e.g. -20,20")
    return lo, hi


def parse_vlim(text: str) -> tuple[float, float]:
    """``--vlim`` text as (lo, hi): "-20,20" -> (-20.0, 20.0); one number V is -V,V.

    Raises:
        PlotError: not one or two numbers, or not lo < hi.
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1 and numbers[0] > 0:
        numbers = [-numbers[0], numbers[0]]
    if len(numbers) != 2:
        raise PlotError(
            f"--vlim {text}: expected LO,HI (e.g. --vlim=-20,20) or one number V > 0 for -V,V"
        )
    return check_vlim(numbers)


def colour_scale(values: np.ndarray, kind: str, label: str, vlim=None) -> ColourScale:
    """The colour scale for ``values`` (the cells one colour bar covers).

    Args:
        values: the aggregated cell values; NaN and -inf (drawn apart, as no value and
            dead) do not set the limits, +inf counts as beyond the top.
        kind: from colour_kind.
        label: the colour bar label.
        vlim: (lo, hi) to use instead of limits from the values.

    Returns:
        A ColourScale.
    """
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    if vlim is not None:
        lo, hi = vlim
    elif kind == "diverging":
        hi = _symmetric_limit(values)
        lo = -hi
    elif kind == "boolean":
        lo, hi = 0.0, 1.0
    elif kind == "spread":
        lo = 0.0
        hi = float(np.percentile(finite, 99)) if finite.size else 1.0
        hi = hi if hi > 0 else (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
    drawn = values[~np.isnan(values) & (values != -np.inf)]
    extend = {
        (False, False): "neither",
        (True, False): "min",
        (False, True): "max",
        (True, True): "both",
    }[(bool((drawn < lo).any()), bool((drawn > hi).any()))]
    cmap = DIVERGING_CMAP if kind == "diverging" else SEQUENTIAL_CMAP
    return ColourScale(kind, cmap, float(lo), float(hi), extend, label)


def add_colorbar(
    fig, mappable, axes: list, scale: ColourScale, shrink: float = 1.0, marks: bool = True
):
    """Draws ``scale``'s colour bar beside ``axes``; a diverging one is marked "exploding"
    at the top and "vanishing" at the bottom (unless not `marks`: a panel's own bar, whose
    marks would run into the next panel's title); an integer one gets integer ticks."""
    import matplotlib as mpl
    from matplotlib.ticker import MaxNLocator

    bar = fig.colorbar(mappable, ax=axes, extend=scale.extend, shrink=shrink, aspect=30)
    bar.set_label(scale.label)
    if scale.kind == "integer":
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    if scale.kind == "diverging" and marks:
        # Past the extension triangles (5% of the bar each) when the bar is extended.
        top = 1.07 if scale.extend in ("max", "both") else 1.01
        bottom = -0.07 if scale.extend in ("min", "both") else -0.01
        cmap = mpl.colormaps[scale.cmap]
        for y, va, text, colour in (
            (top, "bottom", "exploding", 0.95),
            (bottom, "top", "vanishing", 0.05),
        ):
            bar.ax.text(
                0.5,
                y,
                text,
                transform=bar.ax.transAxes,
                ha="center",
                va=va,
                fontsize=8,
                color=cmap(colour),
            )
    return bar
