"""The mean-field theory overlay on a phase diagram.

When the rows carry ``theory_chi1`` and one plotted axis is sigma_w (or sigma_w2), the
critical σ_w (χ₁ = 1, interpolated between grid points; σ_w*² on a sigma_w2 axis) is drawn
as a dashed line; when the other axis is depth and ``theory_xi_c`` is there,
``xi_multiple``·|ξ_c| is drawn as the depth scale.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DEFAULT_XI_MULTIPLE = 6.0  # Schoenholz et al. 2017: trainable while depth < ~6 xi_c


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


def critical_sigma_w(
    frame: pd.DataFrame, along: str | None = None, axis: str = "sigma_w"
) -> pd.Series:
    """The measured-theory critical σ_w (χ₁ = 1) from the ``theory_chi1`` column.

    Args:
        frame: rows of one panel with ``axis`` and ``theory_chi1`` (any other axes
            already fixed or aggregated).
        along: the other plotted axis (e.g. "depth" or "sigma_b"), or None.
        axis: "sigma_w", or "sigma_w2" for the critical σ_w² (the same crossing: ln σ_w²
            is 2 ln σ_w, so the interpolation agrees).

    Returns:
        A Series indexed by the values of ``along`` (a single entry indexed by None when
        ``along`` is None) holding the critical σ_w (σ_w²), NaN where χ₁ does not cross 1.
    """
    if "theory_chi1" not in frame.columns:
        return pd.Series(dtype=np.float64)
    groups = [(None, frame)] if along is None else frame.groupby(along, sort=True)
    out = {}
    for key, group in groups:
        per_sigma = group.groupby(axis, sort=True)["theory_chi1"].median()
        out[key] = _crossing(per_sigma.index.to_numpy(np.float64), per_sigma.to_numpy(np.float64))
    return pd.Series(out, dtype=np.float64)


def _halo() -> list:
    """A faint white edge, so the black theory lines read on dark colours too."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=3.0, foreground="white", alpha=0.6)]


def _draw_theory(ax, frame: pd.DataFrame, x: str, y: str, limits, logs, xi_multiple: float) -> list:
    """Draws the critical σ_w line and the ξ_c curve on ax; returns legend handles."""
    handles = []
    sw_axis = next((a for a in ("sigma_w", "sigma_w2") if a in (x, y)), None)
    if sw_axis is None or "theory_chi1" not in frame.columns or frame["theory_chi1"].isna().all():
        return handles
    squared = sw_axis == "sigma_w2"
    on_x = x == sw_axis
    other = y if on_x else x
    if not pd.api.types.is_numeric_dtype(frame[other]):
        return handles
    (x_lo, x_hi), (y_lo, y_hi) = limits
    crit = critical_sigma_w(frame, other, sw_axis).dropna()
    if len(crit):
        along = crit.index.to_numpy(np.float64)
        sw = crit.to_numpy(np.float64)
        other_lo, other_hi = (y_lo, y_hi) if on_x else (x_lo, x_hi)
        if along.size == 1 or np.allclose(sw, sw[0], rtol=1e-9):
            along, sw = np.array([other_lo, other_hi]), np.array([sw[0], sw[0]])
        else:
            along = np.concatenate([[other_lo], along, [other_hi]])
            sw = np.concatenate([[sw[0]], sw, [sw[-1]]])
        xs, ys = (sw, along) if on_x else (along, sw)
        (line,) = ax.plot(
            xs,
            ys,
            color="black",
            linestyle="--",
            linewidth=1.4,
            label=f"theory: critical {'σ_w²' if squared else 'σ_w'} (χ₁ = 1)",
            path_effects=_halo(),
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
            lo, hi = (x_lo, x_hi) if on_x else (y_lo, y_hi)
            log = logs[0] if on_x else logs[1]
            where = (math.log(sw[0] / lo) / math.log(hi / lo)) if log else (sw[0] - lo) / (hi - lo)
            text = f"σ_w*² = {sw[0]:.4g}" if squared else f"σ_w* = {sw[0]:.4g}"
            if on_x:
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
        xi = frame.groupby(sw_axis, sort=True)["theory_xi_c"].median()
        sw = xi.index.to_numpy(np.float64)
        depth_scale = xi_multiple * np.abs(xi.to_numpy(np.float64))
        top = (y_hi if on_x else x_hi) * 10.0
        depth_scale = np.where(np.isinf(depth_scale), top, depth_scale)
        lo = y_lo if on_x else x_lo
        visible = np.isfinite(depth_scale) & (depth_scale < top / 10.0) & (depth_scale > lo)
        if visible.any():
            xs, ys = (sw, depth_scale) if on_x else (depth_scale, sw)
            label = (
                f"theory: {xi_multiple:g}·|ξ_c| (correlation depth scale)"
                if xi_multiple != 1
                else "theory: |ξ_c| (correlation depth scale)"
            )
            (line,) = ax.plot(
                xs, ys, color="0.1", linestyle=":", linewidth=1.8, label=label, path_effects=_halo()
            )
            handles.append(line)
    return handles
