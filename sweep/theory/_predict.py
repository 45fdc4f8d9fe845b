"""predict: the engine's theory columns for a batch of configs (one per results row)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sweep import precision

from ._architectures import trajectory
from ._fixed_points import mean_field, phase_code
from ._gain import concrete_depths, log10_backward_gain
from ._moments import moments

PREDICTION_KEYS = (
    "theory_q_star",
    "theory_chi1",
    "theory_c_star",
    "theory_xi_c",
    "theory_xi_q",
    "theory_log10_backward_gain",
    "theory_phase",
    "theory_q_depth",
)
# The columns each architecture defines; the others are null in its rows (README).
DEFINED = {
    "mlp": PREDICTION_KEYS,
    "resnet": ("theory_log10_backward_gain", "theory_q_depth"),
    "resnet_prenorm": ("theory_log10_backward_gain", "theory_q_depth"),
    "mlp_layernorm": (
        "theory_q_star",
        "theory_chi1",
        "theory_log10_backward_gain",
        "theory_phase",
        "theory_q_depth",
    ),
}


@precision.x64
def predict(
    activation: str, sigma_w, sigma_b, depth, architecture: str = "mlp", residual_scale=1.0
) -> dict[str, jax.Array]:
    """All mean-field predictions for C configs (inputs broadcast to a shape S, e.g. (C,)).

    Everything except the backward gain describes the fixed point and is depth-free; the
    gain is the finite-depth prediction for each config's own depth. Inputs must be
    concrete (not traced), see log10_backward_gain.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared).
      depth: number of layers L (non-negative integers).
      architecture, residual_scale: the network (sweep.theory._architectures); for
        anything but mlp only the keys of DEFINED[architecture] mean something, and the
        others are NaN.

    Returns:
      Dict of arrays of shape S: theory_q_star, theory_chi1, theory_c_star, theory_xi_c,
      theory_xi_q, theory_log10_backward_gain (float64) and theory_phase (int32 index into
      PHASES: critical when |ln chi1| < CRITICAL_LOG_CHI1_TOLERANCE). The depth-free
      columns are mean_field's fields of the same names (q0 = 1).
      theory_log10_backward_gain is the predicted decades of growth of the backward
      signal's norm over the L layers, sum_{l=1}^{L} 1/2 log10 chi(q^l) along the length
      map's trajectory from q^0 = 1 (log10_backward_gain). That is exactly
      L * 1/2 log10(chi1) where chi does not depend on q (linear, relu),
      L * 1/2 log10(chi1) plus an L-independent transient where q^l converges
      geometrically, and off by a term growing like log L where it converges
      algebraically (tanh at sigma_b = 0, sigma_w = 1: -1/2 log10 L + O(1) although
      chi1 = 1).
    """
    sigma_w, sigma_b, depth = concrete_depths(sigma_w, sigma_b, depth)
    alpha = np.broadcast_to(np.asarray(residual_scale, np.float64), np.shape(sigma_w))
    along = trajectory(
        architecture, activation, *(np.ravel(v) for v in (sigma_w, sigma_b, alpha, depth))
    )
    along = {k: v.reshape(np.shape(sigma_w)) for k, v in along.items()}
    if architecture != "mlp":
        return _predict_other(architecture, activation, sigma_w, sigma_b, along)
    fixed_point = mean_field(activation, sigma_w, sigma_b, 1.0)
    gain = log10_backward_gain(
        activation, sigma_w, sigma_b, depth, q_star=np.asarray(fixed_point.q_star)
    )
    out = {
        "theory_q_star": fixed_point.q_star,
        "theory_chi1": fixed_point.chi1,
        "theory_c_star": fixed_point.c_star,
        "theory_xi_c": fixed_point.xi_c,
        "theory_xi_q": fixed_point.xi_q,
        "theory_log10_backward_gain": jnp.asarray(gain),
        "theory_phase": fixed_point.phase,
        "theory_q_depth": jnp.asarray(along["theory_q_depth"]),
    }
    return {key: out[key] for key in PREDICTION_KEYS}


def _predict_other(architecture, activation, sigma_w, sigma_b, along) -> dict:
    nan = jnp.full(np.shape(sigma_w), jnp.nan)
    out = {key: nan for key in PREDICTION_KEYS} | {
        key: jnp.asarray(value) for key, value in along.items()
    }
    out["theory_phase"] = jnp.full(np.shape(sigma_w), -1, jnp.int32)
    if architecture == "mlp_layernorm":  # a fixed point from layer 2 on: q* and chi1
        mean_sq, _, mean_dphi_sq = moments(activation).stats(jnp.float64(1.0))
        sigma_w2 = jnp.asarray(sigma_w) ** 2
        q_star = sigma_w2 * mean_sq + jnp.asarray(sigma_b) ** 2
        chi1 = sigma_w2 * mean_dphi_sq / q_star
        out |= {"theory_q_star": q_star, "theory_chi1": chi1, "theory_phase": phase_code(chi1)}
    return {key: out[key] for key in PREDICTION_KEYS}
