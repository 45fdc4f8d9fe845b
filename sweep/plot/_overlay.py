"""The mean-field theory overlay on a phase diagram.

When the rows carry ``theory_chi1`` and one plotted axis is sigma_w, the critical σ_w
(χ₁ = 1, interpolated between grid points) is drawn as a dashed line; when the other axis
is depth and ``theory_xi_c`` is there, ``xi_multiple``·|ξ_c| is drawn as the depth scale.
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
