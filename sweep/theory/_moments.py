"""The moment catalogue: Gaussian moments of each activation, by quadrature or closed form.

For one activation phi and variance q, `moments(activation)` gives

- stats(q, exact_slope=False) -> (E[phi^2], d/dq E[phi^2] = E[phi'^2 + phi phi''],
  E[phi'^2]) in one pass; exact_slope makes the slope accurate as q -> 0 (costs phi'').
  Moments at q = 0 are the q -> 0+ limits (e.g. E[relu'(sqrt(q) z)^2] = 1/2, not
  relu'(0)^2), at q = inf the limits at u = +-1e150.
- kernel(q, mean_sq, mean_dphi_sq) -> function c -> (E[phi(u1) phi(u2)], d/dc of it =
  q E[phi'(u1) phi'(u2)]) for (u1, u2) ~ N(0, q [[1, c], [c, 1]]).

The kernel uses Mehler's expansion E[phi(u1) phi(u2)] = sum_k a_k^2 c^k with
a_k = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!): the 2-D Gaussian expectation through N_MEHLER
1-D projections. They come from a fixed 120-node folded rule as one matrix product, or,
for activations with kinks away from u = 0 (ADAPTIVE_MEHLER: hard_tanh; add new ones
there), from the q-adaptive panel rule. The terms beyond N_MEHLER are modelled as
R c^kappa with R and kappa fixed so that the map's value and slope at c = 1 are exact
(C(1) = 1, C'(1) = chi1), so the phase boundary is exact. For smooth phi c* is then
accurate to ~1e-10 for q* <= 5 (the tanh critical line up to sigma_b^2 ~ 2) and to ~1e-6
for q* <= 30 even next to the transition (deeper in the chaotic phase c* is far from 1
and the truncation is harmless). For phi with a kink at 0 (selu, elu, leaky_relu) a_k^2
decays only algebraically: near c = 1 the map's slope is good to ~1e-3 (relu and linear
use their closed forms).

Closed forms replace quadrature for linear (E[phi^2] = q, E[phi'^2] = 1), relu (q/2, 1/2,
arc-cosine kernel) and erf (Williams 1997: E[erf(u)^2] = (2/pi) arcsin(2q/(1+2q)),
E[erf'(u)^2] = (4/pi)/sqrt(1+4q), E[erf(u1) erf(u2)] = (2/pi) arcsin(2qc/(1+2q))).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from sweep import activations, precision

from ._quadrature import (
    DEFAULT_ORDER,
    LIMIT_ARGUMENT,
    MEHLER_EVEN,
    MEHLER_ODD,
    MEHLER_Z,
    N_MEHLER,
    panel_nodes,
)

Q_MIN = 1e-200  # q* below this is reported as 0; moments at q = 0 are taken here
# Activations with kinks off the origin get their Hermite coefficients from the adaptive
# panel rule (breakpoints on the kinks) by recurrence: exact, but ~5x slower.
ADAPTIVE_MEHLER = frozenset({"hard_tanh"})


@dataclasses.dataclass(frozen=True)
class Moments:
    """Gaussian moments of one activation at variance q (see the module docstring)."""

    stats: Callable
    kernel: Callable


def _mehler_kernel(a_even, a_odd, q, mean_sq, mean_dphi_sq):
    """Correlation kernel from Hermite coefficients, with the tail fixed at c = 1."""
    a2 = jnp.stack([a_even**2, a_odd**2], axis=-1).reshape(-1)  # a_0^2, a_1^2, ...
    ks = jnp.arange(N_MEHLER, dtype=jnp.float64)
    # Tail beyond N_MEHLER: R c^kappa with value and slope at c = 1 exact.
    tail = jnp.maximum(mean_sq - jnp.sum(a2), 0.0)
    tail_slope = q * mean_dphi_sq - jnp.sum(ks * a2)
    significant = tail > 1e-12 * mean_sq
    kappa = jnp.where(
        significant, jnp.maximum(tail_slope / jnp.where(significant, tail, 1.0), N_MEHLER), N_MEHLER
    )
    value_coefficients = a2[::-1]  # highest power first, for Horner
    derivative_coefficients = (ks[1:] * a2[1:])[::-1]

    def kernel_at(c):
        value = jnp.polyval(value_coefficients, c, unroll=16) + tail * jnp.power(c, kappa)
        derivative = jnp.polyval(derivative_coefficients, c, unroll=16) + tail * kappa * jnp.power(
            c, kappa - 1.0
        )
        return value, derivative

    return kernel_at


def _quadrature_moments(fn: Callable, adaptive_mehler: bool, order: int = DEFAULT_ORDER) -> Moments:
    def phi_and_dphi(u):
        return jax.jvp(fn, (u,), (jnp.ones_like(u),))

    def dphi(u):
        return phi_and_dphi(u)[1]

    def stats(q, exact_slope=False):
        q = jnp.asarray(q, jnp.float64)
        valid = q >= 0  # NaN and negative q give NaN
        # q = 0 is evaluated at Q_MIN: the q -> 0+ limits, e.g. E[relu'^2] = 1/2.
        q_safe = jnp.where(valid & (q < jnp.inf), jnp.maximum(q, Q_MIN), 1.0)
        z, weights = panel_nodes(q_safe, order)
        u = jnp.sqrt(q_safe)[..., None] * z
        value_p, slope_p = phi_and_dphi(u)
        value_m, slope_m = phi_and_dphi(-u)
        mean_sq = jnp.sum(weights * (value_p**2 + value_m**2), axis=-1)
        mean_dphi_sq = jnp.sum(weights * (slope_p**2 + slope_m**2), axis=-1)
        # d/dq E[phi(sqrt q z)^2] = E[phi(u) phi'(u) u] / q (Gaussian integration by parts):
        # right for hard_tanh's kinks too, but it cancels catastrophically as q -> 0 when
        # phi(0) != 0, so exact_slope switches to E[phi'^2 + phi phi''] below q = 1e-4
        # (where the delta functions of phi'' at |u| = 1 carry weight < exp(-5000)).
        slope = jnp.sum(weights * (value_p * slope_p - value_m * slope_m) * u, axis=-1) / q_safe
        if exact_slope:
            curvature_p = jax.jvp(dphi, (u,), (jnp.ones_like(u),))[1]
            curvature_m = jax.jvp(dphi, (-u,), (jnp.ones_like(u),))[1]
            direct = mean_dphi_sq + jnp.sum(
                weights * (value_p * curvature_p + value_m * curvature_m), axis=-1
            )
            slope = jnp.where(q_safe < 1e-4, direct, slope)
        big = jnp.array([LIMIT_ARGUMENT, -LIMIT_ARGUMENT])
        value_inf, slope_inf = phi_and_dphi(big)
        limit_dphi_sq = 0.5 * jnp.sum(slope_inf**2)
        at_infinity = (0.5 * jnp.sum(value_inf**2), limit_dphi_sq, limit_dphi_sq)
        return tuple(
            jnp.where(q == jnp.inf, limit, jnp.where(valid, value, jnp.nan))
            for value, limit in zip((mean_sq, slope, mean_dphi_sq), at_infinity)
        )

    def kernel(q, mean_sq, mean_dphi_sq):
        if adaptive_mehler:
            z, weights = panel_nodes(q, order)
            u = jnp.sqrt(q) * z
            plus, minus = fn(u), fn(-u)
            even, odd = weights * (plus + minus), weights * (plus - minus)

            def step(carry, k):
                h_prev, h = carry
                a_even = jnp.sum(even * h)
                h_odd = (z * h - jnp.sqrt(k) * h_prev) / jnp.sqrt(k + 1.0)
                a_odd = jnp.sum(odd * h_odd)
                h_next = (z * h_odd - jnp.sqrt(k + 1.0) * h) / jnp.sqrt(k + 2.0)
                return (h_odd, h_next), (a_even, a_odd)

            ks = jnp.arange(0, N_MEHLER, 2, dtype=jnp.float64)
            _, (a_even, a_odd) = jax.lax.scan(step, (jnp.zeros_like(z), jnp.ones_like(z)), ks)
        else:
            u = jnp.sqrt(q) * MEHLER_Z
            plus, minus = fn(u), fn(-u)
            a_even = jnp.asarray(MEHLER_EVEN) @ (plus + minus)
            a_odd = jnp.asarray(MEHLER_ODD) @ (plus - minus)
        return _mehler_kernel(a_even, a_odd, q, mean_sq, mean_dphi_sq)

    return Moments(stats, kernel)


def _constant_stats(mean_sq_per_q: float, mean_dphi_sq: float) -> Callable:
    """stats() of a positively homogeneous phi: E[phi^2] = k q, E[phi'^2] = k."""

    def stats(q, exact_slope=False):
        q = jnp.asarray(q, jnp.float64)
        return mean_sq_per_q * q, jnp.full_like(q, mean_sq_per_q), jnp.full_like(q, mean_dphi_sq)

    return stats


def _linear_kernel(q, mean_sq, mean_dphi_sq):
    return lambda c: (q * c, q + 0.0 * c)


def _relu_kernel(q, mean_sq, mean_dphi_sq):
    """Arc-cosine kernel (Cho & Saul 2009)."""

    def kernel_at(c):
        angle_term = jnp.pi - jnp.arccos(jnp.clip(c, -1.0, 1.0))
        value = q / (2 * jnp.pi) * (jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0)) + angle_term * c)
        return value, q * angle_term / (2 * jnp.pi)

    return kernel_at


def _erf_stats(q, exact_slope=False):
    """Williams 1997: E[erf(u)^2] = (2/pi) arcsin(2q/(1+2q)), E[erf'(u)^2] = (4/pi)/sqrt(1+4q)."""
    q = jnp.asarray(q, jnp.float64)
    finite_q = jnp.where(q == jnp.inf, 1.0, q)
    mean_sq = jnp.where(
        q == jnp.inf, 1.0, 2 / jnp.pi * jnp.arcsin(2 * finite_q / (1 + 2 * finite_q))
    )
    slope = 4 / jnp.pi / ((1 + 2 * q) * jnp.sqrt(1 + 4 * q))
    mean_dphi_sq = 4 / jnp.pi / jnp.sqrt(1 + 4 * q)
    return mean_sq, slope, mean_dphi_sq


def _erf_kernel(q, mean_sq, mean_dphi_sq):
    def kernel_at(c):
        value = 2 / jnp.pi * jnp.arcsin(2 * q * c / (1 + 2 * q))
        derivative = 4 * q / jnp.pi / jnp.sqrt((1 + 2 * q) ** 2 - 4 * q * q * c * c)
        return value, derivative

    return kernel_at


_CLOSED_FORMS = {
    "linear": Moments(_constant_stats(1.0, 1.0), _linear_kernel),
    "relu": Moments(_constant_stats(0.5, 0.5), _relu_kernel),
    "erf": Moments(_erf_stats, _erf_kernel),
}


@functools.cache
def moments(activation: str, closed_form: bool = True) -> Moments:
    """The Moments of an activation: its closed forms where they exist, else quadrature."""
    if closed_form and activation in _CLOSED_FORMS:
        return _CLOSED_FORMS[activation]
    return _quadrature_moments(activations.get(activation).fn, activation in ADAPTIVE_MEHLER)


@precision.x64
def gaussian_moments(
    activation: str, q, *, closed_form: bool = True
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The length map's moments of an activation at variance q.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      q: pre-activation variance(s), any shape S; q = 0 gives the q -> 0+ limits,
        q = +inf the limits at infinity, q < 0 or NaN gives NaN.
      closed_form: use the closed forms where they exist (linear, relu, erf); False
        forces the generic quadrature path (for testing it).

    Returns:
      (E[phi^2], d/dq E[phi^2], E[phi'^2]) at u = sqrt(q) z, z ~ N(0, 1): three float64
      arrays of shape S.
    """
    return tuple(moments(activation, closed_form).stats(q))


@precision.x64
def correlation_kernel(
    activation: str, q, c, *, closed_form: bool = True
) -> tuple[jax.Array, jax.Array]:
    """E[phi(u1) phi(u2)] and its c-derivative for (u1, u2) ~ N(0, q [[1, c], [c, 1]]).

    The kernel the correlation-map solver uses: Mehler's series with its tail fixed by
    the moments at q (value and slope exact at c = 1), or a closed form (linear, relu,
    erf).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      q: the shared variance, a scalar, finite and > 0.
      c: correlation(s) in [0, 1], any shape S.
      closed_form: use the closed forms where they exist; False forces Mehler's series.

    Returns:
      (value, derivative), float64 arrays of shape S; derivative = q E[phi'(u1) phi'(u2)].
    """
    m = moments(activation, closed_form)
    q = jnp.asarray(q, jnp.float64)
    mean_sq, _, mean_dphi_sq = m.stats(q)
    return tuple(m.kernel(q, mean_sq, mean_dphi_sq)(jnp.asarray(c, jnp.float64)))
