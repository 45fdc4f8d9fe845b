"""Fixed points and their slopes: q*, chi1, c*, chi_c, chi_q, depth scales, the critical line.

- q* is the root of g(s) = ln(sigma_w^2 E[phi(sqrt(e^s) z)^2] + sigma_b^2) - s in
  s = ln q, bracketed between ln q^1 and ln Q_MIN or ln Q_MAX on the side the iteration
  moves to, and found by safeguarded Newton/bisection to 1e-13 in ln q. Plain iteration
  is not used because it converges arbitrarily slowly near criticality (algebraically
  at sigma_b = 0). The length map is increasing for every registry activation, so the
  iteration from q^1 converges monotonically to the nearest root on that side; the
  solver returns that root whenever it is the only one in the bracket (a map with
  several fixed points on one side could send it to a farther one).
- c* solves C(c) = c for the correlation map built on _moments' kernel. Being a power
  series with non-negative coefficients, C is convex on [0, 1], so Newton from c = 0
  climbs monotonically to c*.
- The critical line is found by bisection in ln sigma_w^2 on chi1 - 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sweep import precision

from ._batch import broadcast_call
from ._moments import Q_MIN, Moments, moments

PHASES = ("ordered", "critical", "chaotic")
# |ln chi1| below this is "critical": the backward signal's norm then changes by less than
# a factor e^0.5 over 1000 layers (|xi_grad| >= 1000 layers).
CRITICAL_LOG_CHI1_TOLERANCE = 1e-3
Q_MAX = 1e12  # q* above this is reported as +inf
_NEWTON_MAX_STEPS = 200


def _q_star_core(m: Moments, sigma_w2, sigma_b2, q1):
    """q* for one config: root of g(s) = ln(M(e^s)) - s on the side q^1 moves to."""

    def g_and_slope(s):
        q = jnp.exp(s)
        mean_sq, slope, _ = m.stats(q)
        image = sigma_w2 * mean_sq + sigma_b2
        return jnp.log(image) - s, q * sigma_w2 * slope / image - 1.0

    s_min, s_max = math.log(Q_MIN), math.log(Q_MAX)
    s1 = jnp.log(jnp.clip(q1, Q_MIN, Q_MAX))
    g1, slope1 = g_and_slope(s1)
    # q^2 / q^1 within 1e-14 of 1 (e.g. relu at sigma_w = sqrt(2) in floating point, where
    # sigma_w^2 / 2 = 1 + 2e-16): the sequence is stationary from the start.
    g1 = jnp.where(jnp.abs(g1) <= 1e-14, 0.0, g1)
    grows = g1 > 0
    far = jnp.where(grows, s_max, s_min)
    g_far, _ = g_and_slope(far)
    no_root = jnp.where(grows, g_far >= 0, g_far <= 0)
    # Bracket: g(positive_end) > 0 > g(negative_end).
    positive_end = jnp.where(grows, s1, far)
    negative_end = jnp.where(grows, far, s1)

    def cond(state):
        positive_end, negative_end, x, gx, slope_x, step, n = state
        return (
            (jnp.abs(step) > 1e-13)
            & (jnp.abs(positive_end - negative_end) > 1e-13)
            & (gx != 0)
            & (n < 120)
        )

    def body(state):
        positive_end, negative_end, x, gx, slope_x, step, n = state
        newton = x - gx / slope_x
        lo, hi = jnp.minimum(positive_end, negative_end), jnp.maximum(positive_end, negative_end)
        inside = jnp.isfinite(newton) & (newton > lo) & (newton < hi)
        x_new = jnp.where(inside, newton, 0.5 * (lo + hi))
        g_new, slope_new = g_and_slope(x_new)
        positive_end = jnp.where(g_new > 0, x_new, positive_end)
        negative_end = jnp.where(g_new < 0, x_new, negative_end)
        return positive_end, negative_end, x_new, g_new, slope_new, x_new - x, n + 1

    start_done = no_root | (g1 == 0)
    init = (
        positive_end,
        negative_end,
        s1,
        jnp.where(start_done, 0.0, g1),
        slope1,
        jnp.float64(1.0),
        0,
    )
    _, _, root, _, _, _, _ = jax.lax.while_loop(cond, body, init)
    q_root = jnp.where(g1 == 0, q1, jnp.exp(root))
    return jnp.where(no_root & (g1 != 0), jnp.where(grows, jnp.inf, 0.0), q_root)


def _correlation_core(m: Moments, sigma_w2, sigma_b2, q_star, mean_sq, mean_dphi_sq, chi1):
    """(c*, chi_c) for one config, given the moments at q*."""
    regular = jnp.isfinite(q_star) & (q_star > 0)
    chaotic = regular & (chi1 > 1.0)
    q = jnp.where(regular, q_star, 1.0)
    kernel_at = m.kernel(q, jnp.where(regular, mean_sq, 1.0), jnp.where(regular, mean_dphi_sq, 1.0))

    def g_and_slope(c):
        value, derivative = kernel_at(c)
        return (sigma_w2 * value + sigma_b2) / q - c, sigma_w2 * derivative / q - 1.0

    def cond(state):
        c, step, n = state
        return (jnp.abs(step) > 1e-15) & (n < _NEWTON_MAX_STEPS)

    def body(state):
        c, _, n = state
        g, slope = g_and_slope(c)
        # C is convex on [0, 1], so from c = 0 Newton climbs monotonically to c*.
        c_new = jnp.clip(jnp.where(slope < 0, c - g / slope, c), c, 1.0)
        return c_new, c_new - c, n + 1

    c0 = jnp.where(chaotic, 0.0, 1.0)
    c_root, _, _ = jax.lax.while_loop(cond, body, (c0, jnp.where(chaotic, 1.0, 0.0), 0))
    chi_c_root = g_and_slope(c_root)[1] + 1.0
    c_star = jnp.where(chaotic, c_root, 1.0)
    chi_c = jnp.where(chaotic, chi_c_root, jnp.where(q_star == jnp.inf, 1.0, chi1))
    return c_star, chi_c


def depth_scale(chi):
    """Signed depth scale -1/ln(chi): +inf at chi = 1, 0 at chi = 0."""
    log_chi = jnp.log(chi)
    return jnp.where(log_chi == 0, jnp.inf, -1.0 / jnp.where(log_chi == 0, 1.0, log_chi))


def phase_code(chi1):
    """Index into PHASES; -1 where chi1 is NaN (NaN inputs)."""
    log_chi1 = jnp.log(chi1)
    code = jnp.where(
        jnp.abs(log_chi1) < CRITICAL_LOG_CHI1_TOLERANCE, 1, jnp.where(log_chi1 < 0, 0, 2)
    )
    return jnp.where(jnp.isnan(chi1), -1, code).astype(jnp.int32)


def all_core(activation, closed_form, sigma_w, sigma_b, q0):
    """q*, chi1, c*, chi_c and chi_q of one config (a dict of scalars)."""
    m = moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b
    q_star = _q_star_core(m, sigma_w2, sigma_b2, sigma_w2 * q0 + sigma_b2)
    mean_sq, slope, mean_dphi_sq = m.stats(q_star, exact_slope=True)
    chi1 = sigma_w2 * mean_dphi_sq
    c_star, chi_c = _correlation_core(m, sigma_w2, sigma_b2, q_star, mean_sq, mean_dphi_sq, chi1)
    chi_q = jnp.where(q_star == jnp.inf, chi1, sigma_w2 * slope)
    return dict(q_star=q_star, chi1=chi1, c_star=c_star, chi_c=chi_c, chi_q=chi_q)


def q_star_only(activation, closed_form, sigma_w, sigma_b, q0):
    """q* and chi1 of one config, without the correlation map (a dict of scalars)."""
    m = moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b
    q_star = _q_star_core(m, sigma_w2, sigma_b2, sigma_w2 * q0 + sigma_b2)
    return dict(q_star=q_star, chi1=sigma_w2 * m.stats(q_star)[2])


class MeanField(NamedTuple):
    """The mean-field fixed point of a config and what follows from it; arrays of shape S.

    Attributes:
      q_star: q*, the limit of the length map from q^1 = sigma_w^2 q0 + sigma_b^2 (0 where
        it collapses, +inf where it diverges).
      chi1: sigma_w^2 E[phi'(sqrt(q*) z)^2], the per-layer backward squared-norm ratio.
      c_star: c*, the stable fixed point of the correlation map, in [0, 1] (1 unless
        chi1 > 1).
      chi_c: slope of the correlation map at c* (chi1 when c* = 1; 1 when q* = inf).
      chi_q: slope of the length map at q*, sigma_w^2 E[phi'^2 + phi phi''] (chi1 when
        q* = inf).
      xi_c: correlation depth scale -1/ln(chi_c) (+inf at criticality; signed).
      xi_q: length depth scale -1/ln(chi_q); negative where q grows (q* = inf).
      xi_grad: gradient depth scale -1/ln(chi1); negative in the chaotic phase.
      phase: int32 index into PHASES (critical when |ln chi1| <
        CRITICAL_LOG_CHI1_TOLERANCE); -1 where an input is NaN.
    """

    q_star: jax.Array
    chi1: jax.Array
    c_star: jax.Array
    chi_c: jax.Array
    chi_q: jax.Array
    xi_c: jax.Array
    xi_q: jax.Array
    xi_grad: jax.Array
    phase: jax.Array


@precision.x64
def mean_field(activation: str, sigma_w, sigma_b, q0=1.0, *, closed_form: bool = True) -> MeanField:
    """Every fixed-point quantity of the mean-field theory, from one solver call.

    Relative accuracy: q* ~1e-13; c* see sweep.theory._moments. Jit- and vmap-able (under
    a trace the configs are mapped in the trace instead of deduplicated).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to a shape S
        (typically (C,), C configs).
      q0: ||x||^2 / N of the input, broadcastable to S.
      closed_form: use the closed-form moments where they exist (linear, relu, erf);
        False forces the generic quadrature path (for testing it).

    Returns:
      MeanField of float64 arrays of shape S (phase: int32).
    """
    out = broadcast_call(all_core, activation, sigma_w, sigma_b, q0, closed_form=closed_form)
    return MeanField(
        q_star=out["q_star"],
        chi1=out["chi1"],
        c_star=out["c_star"],
        chi_c=out["chi_c"],
        chi_q=out["chi_q"],
        xi_c=depth_scale(out["chi_c"]),
        xi_q=depth_scale(out["chi_q"]),
        xi_grad=depth_scale(out["chi1"]),
        phase=phase_code(out["chi1"]),
    )


@precision.x64
def critical_line(activation: str, sigma_b2_values) -> np.ndarray:
    """sigma_w^2 with chi1 = 1 for each sigma_b^2, by bisection in ln sigma_w^2.

    Bisection on [1e-4, 1e4] to ~1e-15 relative (64 halvings of the log bracket); NaN
    where chi1 - 1 does not change sign on the bracket.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b2_values: sigma_b^2 values, shape (B,).

    Returns:
      numpy float64 array of shape (B,).
    """
    sigma_b2 = np.atleast_1d(np.asarray(sigma_b2_values, np.float64))
    return np.asarray(broadcast_call(_critical_sigma_w2_core, activation, sigma_b2, block=8))


def _critical_sigma_w2_core(activation, closed_form, sigma_b2):
    def excess(log_sigma_w2, sigma_b):
        sigma_w = jnp.exp(0.5 * log_sigma_w2)
        return q_star_only(activation, closed_form, sigma_w, sigma_b, 1.0)["chi1"] - 1.0

    sigma_b = jnp.sqrt(sigma_b2)
    lo, hi = jnp.log(1e-4), jnp.log(1e4)
    valid = (excess(lo, sigma_b) < 0) & (excess(hi, sigma_b) > 0)

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        below = excess(mid, sigma_b) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 64, halve, (lo, hi))
    return jnp.where(valid, jnp.exp(0.5 * (lo + hi)), jnp.nan)


@precision.x64
def critical_sigma_w2(activation: str, sigma_b2: float) -> float:
    """sigma_w^2 at which chi1 = 1 for the given sigma_b^2 (NaN if none in [1e-4, 1e4]).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b2: the bias variance sigma_b^2 (squared).

    Returns:
      The critical sigma_w^2 as a Python float.
    """
    return float(critical_line(activation, [sigma_b2])[0])
