"""predict: the engine's theory columns for a batch of configs (one per results row)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sweep import precision

from ._fixed_points import mean_field
from ._gain import concrete_depths, log10_backward_gain

PREDICTION_KEYS = (
    "theory_q_star",
    "theory_chi1",
    "theory_c_star",
    "theory_xi_c",
    "theory_xi_q",
    "theory_log10_backward_gain",
    "theory_phase",
)


@precision.x64
def predict(activation: str, sigma_w, sigma_b, depth) -> dict[str, jax.Array]:
    """All mean-field predictions for C configs (inputs broadcast to a shape S, e.g. (C,)).

    Everything except the backward gain describes the fixed point and is depth-free; the
    gain is the finite-depth prediction for each config's own depth. Inputs must be
    concrete (not traced), see log10_backward_gain.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared).
      depth: number of layers L (non-negative integers).

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
    }
    return {key: out[key] for key in PREDICTION_KEYS}
