"""How plots name things: axis and metric labels, symbols, colour maps, value formatting.

Pure Python and numpy; nothing here draws. The labels carry units in brackets, the
symbols are the short forms used in titles (``σ_w = 1.5``), and log-ratio metrics
(``log10_*``) get a diverging colour map centred on 0; booleans, integers and seed spreads
get sequential ones.
"""

from __future__ import annotations

import numpy as np

DIVERGING_CMAP = "RdBu_r"  # blue: vanishing (< 0), red: exploding (> 0)
SEQUENTIAL_CMAP = "viridis"
MAX_LEGEND_LINES = 12

AXIS_LABELS = {
    "depth": "depth L [layers]",
    "sigma_w": "σ_w (weight std × √fan_in)",
    "sigma_b": "σ_b (bias std)",
    "sigma_w2": "σ_w² (weight variance × fan_in)",
    "sigma_b2": "σ_b² (bias variance)",
    "width": "width N [units]",
    "seed": "seed",
    "init": "init",
    "activation": "activation",
    "layer": "layer l",
}
AXIS_SYMBOLS = {
    "depth": "L",
    "sigma_w": "σ_w",
    "sigma_b": "σ_b",
    "sigma_w2": "σ_w²",
    "sigma_b2": "σ_b²",
    "width": "N",
}
METRIC_LABELS = {
    "log10_backward_gain": "backward gain log10(‖∂ℓ/∂a_0‖ / ‖∂ℓ/∂a_L‖) [decades]",
    "log10_forward_gain": "forward gain log10(‖a_L‖ / ‖a_0‖) [decades]",
    "log10_jac_sv_max": "largest Jacobian singular value, log10 [decades]",
    "log10_jac_sv_min": "smallest Jacobian singular value, log10 [decades]",
    "log10_jac_condition": "Jacobian condition number σ_max/σ_min, log10 [decades]",
    "overflow_layer": "first overflowing layer (plain dtype pass) [layer]",
    "underflow_layer": "first underflowing layer (plain dtype pass) [layer]",
    "precision_loss_layer": "first layer losing precision (plain dtype pass) [layer]",
    "trainable": "trainable (fraction of seeds)",
    "train_diverged": "training diverged (fraction of seeds)",
    "theory_log10_backward_gain": "mean-field backward gain Σ_l ½·log10 χ(q^l) [decades]",
    "theory_q_star": "mean-field q* [pre-activation mean square]",
    "theory_chi1": "mean-field χ₁ [per-layer gradient ratio²]",
    "theory_c_star": "mean-field c* [correlation]",
    "theory_xi_c": "mean-field ξ_c [layers]",
    "theory_xi_q": "mean-field ξ_q [layers]",
    "log10_act_norm": "activation RMS ‖a_l‖/√N",
    "log10_grad_norm": "weight gradient ‖∂ℓ/∂W_l‖_F",
}


# Columns that hold True/False (stored as bool, or as float 0/1 with NaN where null).
BOOLEAN_METRICS = ("trainable", "train_diverged")
# Why a metric can be null in every selected row, by column-name prefix (first match).
NULL_REASONS = (
    ("train", "the sweep has no [train] table, so nothing was trained"),
    ("overflow_layer", "no selected config overflowed within its depth"),
    ("underflow_layer", "no selected config underflowed within its depth"),
    ("precision_loss_layer", "no selected config lost precision within its depth"),
    ("log10_jac_", "the sweep skipped the Jacobian ([settings] jacobian = false)"),
    ("theory_", "the mean-field theory does not cover these configs"),
)
# How a seed spread is named in colour-bar labels and titles.
SPREAD_LABELS = {"std": "std over seeds", "iqr": "IQR (75th − 25th percentile) over seeds"}


def null_reason(metric: str) -> str:
    """Why ``metric`` may have no value at all, e.g. "the sweep did not train ..."; "" if
    there is no usual reason."""
    return next((why for prefix, why in NULL_REASONS if metric.startswith(prefix)), "")


def is_diverging(metric: str) -> bool:
    """Whether a metric is a log ratio, drawn centred on 0 (vanishing below, exploding above).

    Args:
        metric: a column name, e.g. "log10_backward_gain" or "theory_chi1".

    Returns:
        True for ``log10_*`` and ``theory_log10_*`` columns.
    """
    return metric.startswith("log10_") or metric.startswith("theory_log10_")


def _short(metric: str) -> str:
    """A metric's name for titles and legends: "log10_backward_gain" -> "backward gain"."""
    return (
        metric.removeprefix("theory_").removeprefix("log10_").replace("_", " ")
        if metric.startswith(("log10_", "theory_"))
        else metric
    )


def _wrap(text: str, width: int) -> str:
    """text broken at spaces into lines of at most ``width`` characters (longer words kept)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _format_value(value) -> str:
    """An axis value as text: floats in %g form (1.0 -> "1"), anything else by str."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def _format_values(values, limit: int = 8) -> str:
    """Up to ``limit`` values joined by commas, then how many there are in all."""
    values = list(values)
    shown = ", ".join(_format_value(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")
