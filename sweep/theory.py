"""Infinite-width mean-field theory of signal propagation in deep fully-connected networks.

Poole et al. 2016 ("Exponential expressivity in deep neural networks through transient
chaos") and Schoenholz et al. 2017 ("Deep Information Propagation") for the network

    h_l = W_l a_{l-1} + b_l,   a_l = phi(h_l),   l = 1..L,
    W_l[i, j] ~ N(0, sigma_w^2 / N),   b_l[i] ~ N(0, sigma_b^2),   a_0 = x.

Conventions (z, z1, z2 are independent standard normals throughout):

- ``q^l`` is the mean squared *pre-activation* ||h_l||^2 / N of layer l (l >= 1), and
  ``q^0 := q0 = ||x||^2 / N`` is the mean square of the raw input (1 by default). The
  first layer sees the raw input, not phi of it, so the length map is

      q^1 = sigma_w^2 * q0 + sigma_b^2,
      q^l = sigma_w^2 * E[phi(sqrt(q^{l-1}) z)^2] + sigma_b^2      for l >= 2.

- ``q*`` is the limit of that sequence: 0 where it collapses (reported below
  Q_MIN = 1e-200), +inf where it diverges (above Q_MAX = 1e12). Moments at q = 0 are the
  q -> 0+ limits (e.g. E[relu'(sqrt(q) z)^2] = 1/2, not relu'(0)^2).
- ``chi(q) = sigma_w^2 E[phi'(sqrt(q) z)^2]`` is the per-layer ratio of squared norms of
  the back-propagated signal through a layer whose pre-activations have mean square q:
  the backward pass through layer l multiplies by W_l^T diag(phi'(h_l)), and h_l has
  mean square q^l. ``chi1 = chi(q*)`` is its value at the fixed point, so deep in the
  network the backward signal's norm changes by ``0.5 * log10(chi1)`` decades per layer.
- The finite-depth backward gain of an L-layer network (``log10_backward_gain``, predict's
  theory_log10_backward_gain) is ``sum_{l=1}^{L} 0.5 * log10 chi(q^l)`` along the
  trajectory from q^0 = 1, not ``L * 0.5 * log10(chi1)``. The two agree up to an
  L-independent transient where q^l converges geometrically, and exactly for linear
  (chi = sigma_w^2) and relu (chi = sigma_w^2 / 2), whose chi does not depend on q. They
  part where q^l converges only algebraically: for tanh at sigma_b = 0, sigma_w = 1,
  q^l ~ 1/(2l) and ln chi(q) = -2q + O(q^2), so the gain is -0.5 log10 L + O(1) (-1.16
  decades at L = 150) although chi1 = 1, and at L = 150 the gain crosses 0 at
  sigma_w = 1.1125, not at the critical sigma_w = 1.
- The correlation map sends the correlation c of two inputs' pre-activations to
  ``C(c) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*`` with
  ``(u1, u2) ~ N(0, q* [[1, c], [c, 1]])``. c = 1 is always a fixed point; ``c* = 1``
  when chi1 <= 1, otherwise c* is the stable fixed point in [0, 1), and
  ``chi_c = C'(c*)`` (= chi1 when c* = 1).
- ``chi_q = sigma_w^2 E[phi'(sqrt q* z)^2 + phi(sqrt q* z) phi''(sqrt q* z)]`` is the
  slope of the length map at q*. It is evaluated in the equivalent first-derivative form
  ``sigma_w^2 E[phi(u) phi'(u) u] / q*`` (Gaussian integration by parts), which stays
  right for activations whose phi'' holds delta functions (hard_tanh's kinks).
- Depth scales are signed: ``xi = -1 / ln(chi)``. xi > 0: perturbations decay like
  exp(-l / xi); xi < 0: they grow like exp(l / |xi|); chi = 1 exactly gives +inf (never
  NaN), chi = 0 gives 0. ``xi_c`` uses chi_c, ``xi_q`` chi_q, ``xi_grad`` chi1.
- q* = +inf happens for activations that grow linearly at infinity (linear, relu,
  gelu, elu, ...) once sigma_w^2 lim_{q->inf} E[phi'^2] reaches 1 with sigma_b > 0 or
  exceeds 1. chi1 is then that q -> inf limit; the normalised correlation map of an
  asymptotically piecewise-linear phi has slope 1 at c = 1, so c* = 1, chi_c = 1 and
  xi_c = +inf; chi_q is reported as chi1 (the per-layer growth factor of q).
- Phases (PHASES, theory_phase): ordered if ln chi1 < -CRITICAL_LOG_CHI1_TOLERANCE,
  chaotic if > +CRITICAL_LOG_CHI1_TOLERANCE, critical in between (1e-3: the backward
  norm then drifts by less than e^0.5 over 1000 layers).

Which initialisations this describes. The mean field only sees the first two moments of
i.i.d. weights, so it applies unchanged to i.i.d. Gaussian, uniform and truncated-normal
inits of the same variance sigma_w^2 / N. Orthogonal (scaled by sigma_w) inits share
chi1 and, at large width, the forward length map, but the input-output Jacobian has a
different singular-value spectrum (no spread from products of Gaussian matrices), so
fluctuations around these means differ. Identity init is deterministic: there is no
mean-field average, and only linear + identity has an exact prediction, a gain of
sigma_w per layer, which coincides with 0.5 * log10(chi1) = log10(sigma_w) decades.

Numerics. Everything is float64 and pure JAX, and the public functions broadcast over
arrays of configs (C configs), vmapping a scalar core internally. All are jit-able except
log10_backward_gain and predict, which need concrete inputs (the depths size the work).

- Gaussian expectations E[f(sqrt(q) z)] use a composite Gauss-Legendre rule, not
  Gauss-Hermite: Gauss-Hermite nodes near the origin are ~pi/sqrt(n) apart, while
  phi(sqrt(q) z) has its features at |z| ~ 1/sqrt(q), so n would have to grow like q
  (at q = 1e3 even n = 320 is off by 2e-2 for tanh^2). The rule folds z -> |z| and uses
  three panels on [0, Z_MAX]: linear on [0, x1], logarithmic on [x1, x2], linear on
  [x2, Z_MAX], with x1 = min(1/sqrt q, 1) and x2 = max(min(1/sqrt q, Z_MAX), 1). The
  breakpoints sit on every kink of the registry's activations (u = 0 and u = +-1, i.e.
  z = 0 and z = 1/sqrt q), and the logarithmic panel resolves both the activation's
  scale 1/sqrt(q) and the Gaussian's scale 1. With 48 nodes per panel the relative
  error is <= 2e-14 for q from 0 to 1e12 (tested against 96 nodes).
- q* is the root of g(s) = ln(sigma_w^2 E[phi(sqrt(e^s) z)^2] + sigma_b^2) - s in
  s = ln q, bracketed between ln q^1 and ln Q_MIN or ln Q_MAX on the side the iteration
  moves to, and found by safeguarded Newton/bisection to 1e-13 in ln q. Plain iteration
  is not used because it converges arbitrarily slowly near criticality (algebraically
  at sigma_b = 0). The length map is increasing for every registry activation, so the
  iteration from q^1 converges monotonically to the nearest root on that side; the
  solver returns that root whenever it is the only one in the bracket (a map with
  several fixed points on one side could send it to a farther one).
- The correlation map uses Mehler's expansion E[phi(u1) phi(u2)] = sum_k a_k^2 c^k with
  a_k = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!): the 2-D Gaussian expectation through
  N_MEHLER 1-D projections. They come from a fixed 120-node folded rule as one matrix
  product, or, for activations with kinks away from u = 0 (_ADAPTIVE_MEHLER: hard_tanh;
  add new ones there), from the q-adaptive rule above. The terms beyond N_MEHLER are
  modelled as R c^kappa with R and kappa fixed so that the map's value and slope at c = 1
  are exact (C(1) = 1, C'(1) = chi1), so the phase boundary is exact. For smooth phi c*
  is then accurate to ~1e-10 for q* <= 5 (the tanh critical line up to sigma_b^2 ~ 2)
  and to ~1e-6 for q* <= 30 even next to the transition (deeper in the chaotic phase c*
  is far from 1 and the truncation is harmless). For phi with a kink at 0 (selu, elu,
  leaky_relu) a_k^2 decays only algebraically: near c = 1 the map's slope is good to
  ~1e-3 (relu and linear use their closed forms). Being a power series with
  non-negative coefficients, C is convex on [0, 1], so Newton from c = 0 climbs
  monotonically to c*.
- The backward gain runs the length map once per distinct (sigma_w, sigma_b) in the
  input, as deep as its deepest row, in compiled scans of _GAIN_SEGMENT (64) layers over
  blocks of pairs, and reads each row's depth off the running sum. The sum is kept as
  L * 0.5 log10(sigma_w^2 E[phi'^2](q*)) plus the running sum of per-layer excesses
  0.5 log10 E[phi'^2](q^l) - 0.5 log10 E[phi'^2](q*), which is exactly 0 for linear and
  relu and small wherever q^l converges. A trajectory that lands on a floating-point
  fixed point or 2-cycle (q^{K+1} == q^K or q^{K-1}; q = 0 and q = inf included) repeats
  its excesses exactly from there, so the rest of its sum is extrapolated and the pair
  drops out (tanh over sigma_w in [0.5, 3], sigma_b in [0, 1]: after 26 layers in the
  median, at most ~500; only trajectories near criticality run to full depth). q^l
  reaching 0 or +inf uses the limiting E[phi'^2], so the gain is never NaN unless an
  input is (sigma_w = 0 gives -inf).
- Closed forms replace quadrature for linear (E[phi^2] = q, E[phi'^2] = 1), relu
  (q/2, 1/2, arc-cosine kernel) and erf (Williams 1997: E[erf(u)^2] =
  (2/pi) arcsin(2q/(1+2q)), E[erf'(u)^2] = (4/pi)/sqrt(1+4q), E[erf(u1) erf(u2)] =
  (2/pi) arcsin(2qc/(1+2q))).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from sweep import activations

PHASES = ("ordered", "critical", "chaotic")
# |ln chi1| below this is "critical": the backward signal's norm then changes by less than
# a factor e^0.5 over 1000 layers (|xi_grad| >= 1000 layers).
CRITICAL_LOG_CHI1_TOLERANCE = 1e-3

DEFAULT_ORDER = 48  # Gauss-Legendre nodes per panel (3 panels, folded: 288 evaluations)
Z_MAX = 10.0  # the Gaussian beyond |z| = 10 carries 1.5e-23 of the mass
N_MEHLER = 128  # Hermite coefficients in the correlation map
Q_MIN = 1e-200  # q* below this is reported as 0
Q_MAX = 1e12  # q* above this is reported as +inf
_LIMIT_ARGUMENT = 1e150  # f(+-this) stands in for f(+-inf) when q = inf
_NEWTON_MAX_STEPS = 200
_CHUNK = 1024  # configs per vmapped chunk

DEFAULT_SIGMA_W2_VALUES = tuple(float(v) for v in np.linspace(1.0, 4.0, 13))
DEFAULT_SIGMA_B2_VALUES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@functools.cache
def _legendre_unit(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] (numpy float64 constants)."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return (nodes + 1.0) / 2.0, weights / 2.0


_legendre_unit(DEFAULT_ORDER)  # computed once at import


def _panel_nodes(q: jax.Array, order: int) -> tuple[jax.Array, jax.Array]:
    """Nodes z >= 0 and weights (Gaussian density included) of the folded panel rule.

    Args:
      q: variances, any shape S, finite and >= 0.
      order: Gauss-Legendre nodes per panel.

    Returns:
      (z, weights), each of shape S + (3 * order,), such that
      E[f(sqrt(q) z)] ~= sum(weights * (f(sqrt(q) z) + f(-sqrt(q) z)), axis=-1).
    """
    t, w = (jnp.asarray(a, jnp.float64) for a in _legendre_unit(order))
    kink = 1.0 / jnp.sqrt(q)[..., None]  # z where |u| = 1; +inf at q = 0
    x1 = jnp.minimum(kink, 1.0)
    x2 = jnp.maximum(jnp.minimum(kink, Z_MAX), 1.0)
    log_length = jnp.log(x2 / x1)
    z_a, w_a = x1 * t, x1 * w
    z_b = x1 * jnp.exp(log_length * t)
    w_b = log_length * z_b * w
    z_c, w_c = x2 + (Z_MAX - x2) * t, (Z_MAX - x2) * w
    z = jnp.concatenate([z_a, z_b, z_c], axis=-1)
    weights = jnp.concatenate([w_a, w_b, w_c], axis=-1) * jnp.exp(-0.5 * z * z)
    # Normalised so that E[1] = 1 to rounding (the mass beyond Z_MAX, 1.5e-23, is dropped):
    # then E[phi'(sqrt(q) z)^2] is exactly 1 for tanh as q -> 0, and chi1 exactly sigma_w^2.
    return z, weights / (2.0 * jnp.sum(weights, axis=-1, keepdims=True))


def gaussian_expectation(
    f: Callable[[jax.Array], jax.Array], q, order: int = DEFAULT_ORDER
) -> jax.Array:
    """E[f(sqrt(q) z)] for z ~ N(0, 1), by the folded three-panel Gauss-Legendre rule.

    See the module docstring for why this is not plain Gauss-Hermite. With the default
    order the relative error is <= 2e-14 for smooth f, and for f with kinks at u = 0 or
    |u| = 1 (relu, hard_tanh, selu, ...), over 0 <= q <= 1e12.

    Args:
      f: elementwise function of u = sqrt(q) z (jnp in, jnp out).
      q: variance(s), any shape S; q = 0 gives f(0) exactly, q = +inf gives the limit
        (f(+inf) + f(-inf)) / 2 (evaluated at +-1e150), q < 0 gives NaN.
      order: Gauss-Legendre nodes per panel.

    Returns:
      Array of shape S.
    """
    q = jnp.asarray(q, jnp.float64)
    usable = jnp.isfinite(q) & (q >= 0)
    q_safe = jnp.where(usable, q, 1.0)
    z, weights = _panel_nodes(q_safe, order)
    u = jnp.sqrt(q_safe)[..., None] * z
    total = jnp.sum(weights * (f(u) + f(-u)), axis=-1)
    big = jnp.float64(_LIMIT_ARGUMENT)
    at_infinity = 0.5 * (f(big) + f(-big))
    at_zero = f(jnp.zeros((), jnp.float64))
    total = jnp.where(q == 0, at_zero, total)
    return jnp.where(q == jnp.inf, at_infinity, jnp.where(usable, total, jnp.nan))


# ---------------------------------------------------------------------------------------
# Per-activation moments: quadrature, or closed forms where they exist.


def _fixed_mehler_rule() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """q-independent folded rule for the Hermite coefficients, and its Hermite tables.

    Panels: linear [0, 1e-6] (8 nodes), logarithmic [1e-6, 1] (64), linear [1, Z_MAX]
    (48): resolves phi(sqrt(q) z) h_k(z) for k < N_MEHLER to ~1e-14 for q <= 30 and
    ~1e-12 up to q = 1e6 when phi's kinks are all at u = 0 (every registry activation
    except hard_tanh, whose kinks at |u| = 1 move with q; see _ADAPTIVE_MEHLER).

    Returns:
      (z, even_table, odd_table): nodes z of shape (N,), and tables (N_MEHLER/2, N) of
      weights * h_k(z) for even / odd k (weights include the Gaussian density), h_k the
      orthonormal (probabilists') Hermite polynomials.
    """
    pieces = []
    for kind, lo, hi, order in [
        ("linear", 0.0, 1e-6, 8),
        ("log", 1e-6, 1.0, 64),
        ("linear", 1.0, Z_MAX, 48),
    ]:
        t, w = _legendre_unit(order)
        if kind == "linear":
            pieces.append((lo + (hi - lo) * t, (hi - lo) * w))
        else:
            log_length = math.log(hi / lo)
            z = lo * np.exp(log_length * t)
            pieces.append((z, log_length * z * w))
    z = np.concatenate([p[0] for p in pieces])
    weights = np.concatenate([p[1] for p in pieces]) * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    table = np.empty((N_MEHLER, z.size))
    h_prev, h = np.zeros_like(z), np.ones_like(z)
    for k in range(N_MEHLER):
        table[k] = weights * h
        h_prev, h = h, (z * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)
    return z, table[0::2], table[1::2]


_MEHLER_Z, _MEHLER_EVEN, _MEHLER_ODD = _fixed_mehler_rule()
# Activations with kinks off the origin get their Hermite coefficients from the adaptive
# panel rule (breakpoints on the kinks) by recurrence: exact, but ~5x slower.
_ADAPTIVE_MEHLER = frozenset({"hard_tanh"})


@dataclasses.dataclass(frozen=True)
class _Moments:
    """Gaussian moments of one activation at variance q.

    stats(q, exact_slope=False) -> (E[phi^2], d/dq E[phi^2] = E[phi'^2 + phi phi''],
    E[phi'^2]), one pass; exact_slope makes the slope accurate as q -> 0 (costs phi'').
    kernel(q, mean_sq, mean_dphi_sq) -> function c -> (E[phi(u1) phi(u2)],
    d/dc of it = q E[phi'(u1) phi'(u2)]) for (u1, u2) ~ N(0, q [[1, c], [c, 1]]).
    """

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


def _quadrature_moments(
    fn: Callable, adaptive_mehler: bool, order: int = DEFAULT_ORDER
) -> _Moments:
    def phi_and_dphi(u):
        return jax.jvp(fn, (u,), (jnp.ones_like(u),))

    def dphi(u):
        return phi_and_dphi(u)[1]

    def stats(q, exact_slope=False):
        q = jnp.asarray(q, jnp.float64)
        valid = q >= 0  # NaN and negative q give NaN
        # q = 0 is evaluated at Q_MIN: the q -> 0+ limits, e.g. E[relu'^2] = 1/2.
        q_safe = jnp.where(valid & (q < jnp.inf), jnp.maximum(q, Q_MIN), 1.0)
        z, weights = _panel_nodes(q_safe, order)
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
        big = jnp.array([_LIMIT_ARGUMENT, -_LIMIT_ARGUMENT])
        value_inf, slope_inf = phi_and_dphi(big)
        limit_dphi_sq = 0.5 * jnp.sum(slope_inf**2)
        at_infinity = (0.5 * jnp.sum(value_inf**2), limit_dphi_sq, limit_dphi_sq)
        return tuple(
            jnp.where(q == jnp.inf, limit, jnp.where(valid, value, jnp.nan))
            for value, limit in zip((mean_sq, slope, mean_dphi_sq), at_infinity)
        )

    def kernel(q, mean_sq, mean_dphi_sq):
        if adaptive_mehler:
            z, weights = _panel_nodes(q, order)
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
            u = jnp.sqrt(q) * _MEHLER_Z
            plus, minus = fn(u), fn(-u)
            a_even = jnp.asarray(_MEHLER_EVEN) @ (plus + minus)
            a_odd = jnp.asarray(_MEHLER_ODD) @ (plus - minus)
        return _mehler_kernel(a_even, a_odd, q, mean_sq, mean_dphi_sq)

    return _Moments(stats, kernel)


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
    "linear": _Moments(_constant_stats(1.0, 1.0), _linear_kernel),
    "relu": _Moments(_constant_stats(0.5, 0.5), _relu_kernel),
    "erf": _Moments(_erf_stats, _erf_kernel),
}


@functools.cache
def _moments(activation: str, closed_form: bool = True) -> _Moments:
    if closed_form and activation in _CLOSED_FORMS:
        return _CLOSED_FORMS[activation]
    return _quadrature_moments(activations.get(activation).fn, activation in _ADAPTIVE_MEHLER)


# ---------------------------------------------------------------------------------------
# Scalar cores (one config); the public functions vmap them.


def _q_star_core(m: _Moments, sigma_w2, sigma_b2, q1):
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


def _correlation_core(m: _Moments, sigma_w2, sigma_b2, q_star, mean_sq, mean_dphi_sq, chi1):
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


def _depth_scale(chi):
    """Signed depth scale -1/ln(chi): +inf at chi = 1, 0 at chi = 0."""
    log_chi = jnp.log(chi)
    return jnp.where(log_chi == 0, jnp.inf, -1.0 / jnp.where(log_chi == 0, 1.0, log_chi))


def _phase_code(chi1):
    """Index into PHASES; -1 where chi1 is NaN (NaN inputs)."""
    log_chi1 = jnp.log(chi1)
    code = jnp.where(
        jnp.abs(log_chi1) < CRITICAL_LOG_CHI1_TOLERANCE, 1, jnp.where(log_chi1 < 0, 0, 2)
    )
    return jnp.where(jnp.isnan(chi1), -1, code).astype(jnp.int32)


def _all_core(activation, closed_form, sigma_w, sigma_b, q0):
    m = _moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b
    q_star = _q_star_core(m, sigma_w2, sigma_b2, sigma_w2 * q0 + sigma_b2)
    mean_sq, slope, mean_dphi_sq = m.stats(q_star, exact_slope=True)
    chi1 = sigma_w2 * mean_dphi_sq
    c_star, chi_c = _correlation_core(m, sigma_w2, sigma_b2, q_star, mean_sq, mean_dphi_sq, chi1)
    chi_q = jnp.where(q_star == jnp.inf, chi1, sigma_w2 * slope)
    return dict(q_star=q_star, chi1=chi1, c_star=c_star, chi_c=chi_c, chi_q=chi_q)


def _q_star_only(activation, closed_form, sigma_w, sigma_b, q0):
    m = _moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b
    q_star = _q_star_core(m, sigma_w2, sigma_b2, sigma_w2 * q0 + sigma_b2)
    return dict(q_star=q_star, chi1=sigma_w2 * m.stats(q_star)[2])


@functools.cache
def _compiled(core: Callable, activation: str, closed_form: bool) -> Callable:
    activations.get(activation)  # unknown names fail here, with the accepted list
    return jax.jit(jax.vmap(functools.partial(core, activation, closed_form)))


def _unique_rows(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(columns, axis=0, return_inverse=True) for a float (R, K) array, by lexsort
    (~8x faster than np.unique's sort of a void view at R = 1e6)."""
    order = np.lexsort(columns.T[::-1])
    ordered = columns[order]
    new = np.ones(len(order), bool)
    new[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    inverse = np.empty(len(order), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _broadcast_call(core, activation, *args, closed_form=True, block=_CHUNK):
    """Broadcast args to one shape S, run the vmapped core on them flat, reshape to S.

    Concrete inputs are deduplicated, then go through one compiled function of a fixed
    batch size (8 for up to 8 distinct configs, else `block`), called once per block of
    configs (padded by repeating the last config), so no new input size ever recompiles,
    and each block's loops stop when its own configs converge. Traced inputs (under an
    outer jit/vmap) are mapped in the trace with lax.map in blocks instead.
    """
    arrays = jnp.broadcast_arrays(*[jnp.asarray(a, jnp.float64) for a in args])
    shape = arrays[0].shape
    if any(isinstance(a, jax.core.Tracer) for a in arrays):
        one = functools.partial(core, activation, closed_form)
        out = jax.lax.map(lambda xs: one(*xs), [a.reshape(-1) for a in arrays], batch_size=block)
    else:
        # Sweeps repeat (sigma_w, sigma_b) across depths and seeds: solve each distinct one once.
        columns = np.stack([np.asarray(a).reshape(-1) for a in arrays], axis=1)
        distinct, inverse = _unique_rows(columns)
        count = distinct.shape[0]
        width = 8 if count <= 8 else block
        padded = max(-(-count // width), 1) * width
        flat = (
            np.pad(distinct, ((0, padded - count), (0, 0)), mode="edge")
            if count
            else np.zeros((padded, len(arrays)))
        )
        fn = _compiled(core, activation, closed_form)
        pieces = [fn(*flat[i : i + width].T) for i in range(0, padded, width)]
        index = jnp.asarray(inverse.reshape(-1))
        out = jax.tree.map(lambda *parts: jnp.concatenate(parts)[index], *pieces)
    return jax.tree.map(lambda o: o.reshape(shape + o.shape[1:]), out)


# ---------------------------------------------------------------------------------------
# Public API. sigma_w, sigma_b (not squared) broadcast to a shape S, typically (C,).


def length_map_trajectory(activation: str, sigma_w, sigma_b, depth: int, q0=1.0) -> jax.Array:
    """q^0..q^L of the length map (see the module docstring for the convention).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.
      depth: L, the number of layers (static).
      q0: ||x||^2 / N of the input, broadcastable to S.

    Returns:
      Array of shape S + (L+1,): index 0 is q0 (the raw input's mean square, not a
      pre-activation); index l >= 1 is the mean squared pre-activation of layer l.
    """
    return _broadcast_call(_trajectory_core(int(depth)), activation, sigma_w, sigma_b, q0)


@functools.cache
def _trajectory_core(depth: int) -> Callable:
    return functools.partial(_trajectory_one, depth=depth)


def _trajectory_one(activation, closed_form, sigma_w, sigma_b, q0, *, depth):
    m = _moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b
    q1 = sigma_w2 * q0 + sigma_b2

    def step(q, _):
        q_next = sigma_w2 * m.stats(q)[0] + sigma_b2
        return q_next, q_next

    _, rest = jax.lax.scan(step, q1, None, length=max(depth - 1, 0))
    head = jnp.stack([q0, q1])[: depth + 1]
    return jnp.concatenate([head, rest])


def fixed_point_q(activation: str, sigma_w, sigma_b, q0=1.0) -> jax.Array:
    """q*, the limit of the length map started from q^1 = sigma_w^2 q0 + sigma_b^2.

    0 where q collapses (sigma_b = 0, phi(0) = 0, sigma_w^2 phi'(0)^2 <= 1), +inf where
    it diverges (e.g. linear with sigma_w > 1; relu with sigma_w^2 > 2; linear/relu at
    criticality with sigma_b > 0); linear with sigma_w < 1 gives sigma_b^2/(1-sigma_w^2).
    Relative accuracy ~1e-13.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.
      q0: ||x||^2 / N of the input.

    Returns:
      Array of shape S.
    """
    return _broadcast_call(_q_star_only, activation, sigma_w, sigma_b, q0)["q_star"]


def chi1(activation: str, sigma_w, sigma_b) -> jax.Array:
    """chi1 = sigma_w^2 E[phi'(sqrt(q*) z)^2], the per-layer backward squared-norm ratio.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.

    Returns:
      Array of shape S.
    """
    return _broadcast_call(_q_star_only, activation, sigma_w, sigma_b, 1.0)["chi1"]


def fixed_point_c(activation: str, sigma_w, sigma_b) -> jax.Array:
    """c*, the stable fixed point of the correlation map (1 unless chi1 > 1).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.

    Returns:
      Array of shape S, in [0, 1].
    """
    return _broadcast_call(_all_core, activation, sigma_w, sigma_b, 1.0)["c_star"]


def chi_c(activation: str, sigma_w, sigma_b) -> jax.Array:
    """Slope of the correlation map at c* (chi1 when c* = 1; 1 when q* = inf).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.

    Returns:
      Array of shape S.
    """
    return _broadcast_call(_all_core, activation, sigma_w, sigma_b, 1.0)["chi_c"]


def xi_c(activation: str, sigma_w, sigma_b) -> jax.Array:
    """Correlation depth scale -1/ln(chi_c) (+inf at criticality).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.

    Returns:
      Array of shape S.
    """
    return _depth_scale(chi_c(activation, sigma_w, sigma_b))


def xi_q(activation: str, sigma_w, sigma_b) -> jax.Array:
    """Length depth scale -1/ln(chi_q), chi_q = sigma_w^2 E[phi'^2 + phi phi''] at q*.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.

    Returns:
      Array of shape S; negative where q grows (q* = inf).
    """
    return _depth_scale(_broadcast_call(_all_core, activation, sigma_w, sigma_b, 1.0)["chi_q"])


def xi_grad(activation: str, sigma_w, sigma_b) -> jax.Array:
    """Gradient depth scale -1/ln(chi1); negative in the chaotic (exploding) phase.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.

    Returns:
      Array of shape S.
    """
    return _depth_scale(chi1(activation, sigma_w, sigma_b))


def log10_backward_gain(
    activation: str,
    sigma_w,
    sigma_b,
    depth,
    *,
    q_star=None,
    closed_form: bool = True,
    block: int = _CHUNK,
) -> np.ndarray:
    """Finite-depth mean-field backward gain: sum_{l=1}^{L} 1/2 log10 chi(q^l), q^0 = 1.

    chi(q) = sigma_w^2 E[phi'(sqrt(q) z)^2] and q^l is the length map's trajectory
    (length_map_trajectory's convention); see the module docstring for how it is computed
    and why it is not L * 1/2 log10 chi1. Linear (chi = sigma_w^2) and relu
    (chi = sigma_w^2 / 2) give exactly L log10|sigma_w| and L (log10|sigma_w| + 1/2
    log10 1/2); q^l reaching 0 or +inf uses the limiting chi; depth 0 gives 0, sigma_w = 0
    gives -inf for L >= 1; NaN inputs give NaN.

    Inputs must be concrete (numpy-convertible, not traced): the depths decide how many
    layers of each trajectory are computed.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable with depth to S.
      depth: number of layers L, non-negative integers (integer-valued floats accepted).
      q_star: fixed_point_q of each config where the caller has it already (broadcastable
        to S; predict passes its own), else solved here. It only sets the reference the
        per-layer terms are counted from (see _gain_start): the result does not depend
        on it beyond rounding.
      closed_form: use the closed-form moments where they exist (False: quadrature; tests).
      block: distinct (sigma_w, sigma_b) pairs per compiled call.

    Returns:
      numpy float64 array of shape S.
    """
    args = (sigma_w, sigma_b, depth) + (() if q_star is None else (q_star,))
    arrays = _concrete_depths(*args)
    activations.get(activation)  # unknown names fail here, with the accepted list
    shape = arrays[0].shape
    sigma_w, sigma_b, depth = (a.reshape(-1) for a in arrays[:3])
    depth = depth.astype(np.int64)
    out = np.zeros(depth.size)  # depth 0: no layer, gain 0
    if depth.size == 0 or depth.max() == 0:
        return out.reshape(shape)
    pairs, inverse = _unique_rows(np.stack([sigma_w, sigma_b], axis=1))
    count, max_depth = pairs.shape[0], int(depth.max())
    if q_star is None:
        solved = _broadcast_call(
            _q_star_only, activation, pairs[:, 0], pairs[:, 1], 1.0, closed_form=closed_form
        )
        pair_q_star = np.asarray(solved["q_star"])
    else:
        pair_q_star = np.empty(count)
        pair_q_star[inverse] = arrays[3].reshape(-1)
    needed = np.zeros(count, np.int64)  # each pair runs as deep as its deepest row
    np.maximum.at(needed, inverse, depth)
    # Rows sorted by (pair, depth): the rows of pair p with first <= depth <= last are
    # one slice, found by binary search on key = p * (max_depth + 1) + depth.
    row_order = np.lexsort((depth, inverse))
    key = inverse[row_order] * (max_depth + 1) + depth[row_order]

    def select(p, first, last):
        """(rows, slot, depth) of the rows of pairs p[slot] with first <= depth <= last."""
        lo = np.searchsorted(key, p * (max_depth + 1) + first, side="left")
        hi = np.searchsorted(key, p * (max_depth + 1) + np.minimum(last, max_depth), side="right")
        lengths = np.maximum(hi - lo, 0)
        slot = np.repeat(np.arange(p.size), lengths)
        rows = row_order[
            np.arange(lengths.sum()) + np.repeat(lo - np.cumsum(lengths) + lengths, lengths)
        ]
        return rows, slot, depth[rows]

    def blocks(p):
        """p in blocks of a compiled width (8, 128 or `block`: few compiles, and stragglers
        near criticality do not pay for `block` lanes), padded with p's last entry."""
        width = min(block, 8 if p.size <= 8 else 128 if p.size <= 128 else block)
        for i in range(0, p.size, width):
            part = p[i : i + width]
            yield part, np.pad(part, (0, width - part.size), mode="edge")

    start, segment = (
        _compiled(_gain_start, activation, closed_form),
        _compiled(_gain_segment, activation, closed_form),
    )
    per_layer, reference, q = np.empty(count), np.empty(count), np.empty(count)
    for part, padded in blocks(np.arange(count)):
        values = start(pairs[padded, 0], pairs[padded, 1], pair_q_star[padded])
        for target, value in zip((per_layer, reference, q), values):
            target[part] = np.asarray(value)[: part.size]
    total = np.zeros(count)  # running sum of the excess over layers 1..layer
    layer = np.zeros(count, np.int64)
    active = np.arange(count)[needed > 0]
    while active.size:
        # One round: every active pair advances _GAIN_SEGMENT layers.
        settled = []
        for part, padded in blocks(active):
            n = part.size
            q_next, totals, q_layers, excess = (
                np.asarray(a)[:n]
                for a in segment(
                    pairs[padded, 0], pairs[padded, 1], reference[padded], q[padded], total[padded]
                )
            )
            done = layer[part]
            rows, s, d = select(part, done + 1, done + _GAIN_SEGMENT)
            out[rows] = d * per_layer[part[s]] + totals[s, d - done[s] - 1]
            layer[part] += _GAIN_SEGMENT
            q[part], total[part] = q_next, totals[:, -1]
            # In floating point the trajectory may land on a fixed point or a 2-cycle
            # (q^{K+1} == q^K or == q^{K-1}, K = layer): from there on the excess repeats
            # exactly, so the rest of the sum is a count of the last one or two values.
            period1 = q_next == q_layers[:, -1]
            period2 = q_next == q_layers[:, -2]
            repeats = (period1 | period2) & (layer[part] < needed[part])
            if repeats.any():
                p = part[repeats]
                odd = np.where(period1, excess[:, -1], excess[:, -2])[
                    repeats
                ]  # layers K+1, K+3, ...
                even = excess[:, -1][repeats]  # layers K+2, K+4, ...
                rows, s, d = select(p, layer[p] + 1, max_depth)
                n_odd, n_even = (d - layer[p[s]] + 1) // 2, (d - layer[p[s]]) // 2
                rest = np.where(n_odd > 0, n_odd * odd[s], 0.0) + np.where(
                    n_even > 0, n_even * even[s], 0.0
                )
                out[rows] = d * per_layer[p[s]] + (total[p[s]] + rest)
                settled.append(p)
        finished = layer[active] >= needed[active]
        if settled:
            finished |= np.isin(active, np.concatenate(settled))
        active = active[~finished]
    return out.reshape(shape)


_GAIN_SEGMENT = 64  # layers per compiled call of the trajectory scan


def _concrete_depths(*args) -> list[np.ndarray]:
    """args broadcast to numpy float64; the third is depth. Fails on traced inputs and on
    depths that are not non-negative integers."""
    if any(isinstance(a, jax.core.Tracer) for a in args):
        raise TypeError(
            "log10_backward_gain and predict need concrete inputs, not traced ones: the depths size the computation"
        )
    arrays = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in args))
    depth = arrays[2]
    integral = (depth >= 0) & (depth == np.floor(depth))
    if not np.all(integral):
        raise ValueError(f"depth must hold non-negative integers, got {depth[~integral][:5]}")
    return arrays


def _gain_start(activation, closed_form, sigma_w, sigma_b, q_star):
    """(log10|sigma_w| + reference, reference, q^1) for one pair, q^0 = 1.

    reference = 1/2 log10 E[phi'^2](q*) (0 where that is not finite). The gain is
    L * (log10|sigma_w| + reference) + sum_{l<=L} (1/2 log10 E[phi'^2](q^l) - reference):
    the running sum of excesses stays small (it converges where q^l -> q* geometrically)
    and is exactly 0 where E[phi'^2] is constant (linear, relu).
    """
    m = _moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b
    q1 = sigma_w2 + sigma_b2
    reference = 0.5 * jnp.log10(m.stats(q_star)[2])
    reference = jnp.where(jnp.isfinite(reference), reference, 0.0)
    return jnp.log10(jnp.abs(sigma_w)) + reference, reference, q1


def _gain_segment(activation, closed_form, sigma_w, sigma_b, reference, q, total):
    """_GAIN_SEGMENT more layers of one trajectory.

    From q = q^{K+1} and the running sum of excesses over layers 1..K, returns q^{K+S+1},
    and for layers l = K+1..K+S the running sums, q^l and the excesses
    1/2 log10 E[phi'^2](q^l) - reference (S = _GAIN_SEGMENT).
    """
    m = _moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b

    def step(carry, _):
        q, total = carry
        mean_sq, _, mean_dphi_sq = m.stats(q)
        excess = 0.5 * jnp.log10(mean_dphi_sq) - reference
        total = total + excess
        return (sigma_w2 * mean_sq + sigma_b2, total), (total, q, excess)

    (q_next, _), (totals, q_layers, excess) = jax.lax.scan(
        step, (q, total), None, length=_GAIN_SEGMENT
    )
    return q_next, totals, q_layers, excess


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
      theory_xi_q, theory_log10_backward_gain and theory_phase (int32 index into PHASES:
      critical when |ln chi1| < CRITICAL_LOG_CHI1_TOLERANCE). theory_log10_backward_gain
      is the predicted decades of growth of the backward signal's norm over the L
      layers, sum_{l=1}^{L} 1/2 log10 chi(q^l) along the length map's trajectory from
      q^0 = 1 (log10_backward_gain). That is exactly L * 1/2 log10(chi1) where chi does
      not depend on q (linear, relu), L * 1/2 log10(chi1) plus an L-independent
      transient where q^l converges geometrically, and off by a term growing like log L
      where it converges algebraically (tanh at sigma_b = 0, sigma_w = 1:
      -1/2 log10 L + O(1) although chi1 = 1).
    """
    sigma_w, sigma_b, depth = _concrete_depths(sigma_w, sigma_b, depth)
    theory = _broadcast_call(_all_core, activation, sigma_w, sigma_b, 1.0)
    out = _predictions(theory)
    gain = log10_backward_gain(
        activation, sigma_w, sigma_b, depth, q_star=np.asarray(theory["q_star"])
    )
    out["theory_log10_backward_gain"] = jnp.asarray(gain)
    return {key: out[key] for key in _PREDICTION_KEYS}


_PREDICTION_KEYS = (
    "theory_q_star",
    "theory_chi1",
    "theory_c_star",
    "theory_xi_c",
    "theory_xi_q",
    "theory_log10_backward_gain",
    "theory_phase",
)


def _predictions(theory: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The depth-free predict columns from _all_core's output."""
    chi1 = theory["chi1"]
    return {
        "theory_q_star": theory["q_star"],
        "theory_chi1": chi1,
        "theory_c_star": theory["c_star"],
        "theory_xi_c": _depth_scale(theory["chi_c"]),
        "theory_xi_q": _depth_scale(theory["chi_q"]),
        "theory_phase": _phase_code(chi1),
    }


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
    return np.asarray(_broadcast_call(_critical_sigma_w2_core, activation, sigma_b2, block=8))


def _critical_sigma_w2_core(activation, closed_form, sigma_b2):
    def excess(log_sigma_w2, sigma_b):
        sigma_w = jnp.exp(0.5 * log_sigma_w2)
        return _q_star_only(activation, closed_form, sigma_w, sigma_b, 1.0)["chi1"] - 1.0

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


def critical_sigma_w2(activation: str, sigma_b2: float) -> float:
    """sigma_w^2 at which chi1 = 1 for the given sigma_b^2 (NaN if none in [1e-4, 1e4]).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b2: the bias variance sigma_b^2 (squared).

    Returns:
      The critical sigma_w^2 as a Python float.
    """
    return float(critical_line(activation, [sigma_b2])[0])


def theory_table(
    activation: str, sigma_b: float, sigma_w2_values: Sequence[float] = DEFAULT_SIGMA_W2_VALUES
) -> pd.DataFrame:
    """q*, chi1 and xi_c over sigma_w^2 at fixed sigma_b.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b: bias scale (not squared).
      sigma_w2_values: sigma_w^2 values (squared), shape (R,).

    Returns:
      DataFrame with R rows and columns sigma_w2, q_star, chi1, xi_c.
    """
    sigma_w2 = np.asarray(sigma_w2_values, np.float64)
    out = _broadcast_call(_all_core, activation, np.sqrt(sigma_w2), sigma_b, 1.0)
    return pd.DataFrame(
        {
            "sigma_w2": sigma_w2,
            "q_star": np.asarray(out["q_star"]),
            "chi1": np.asarray(out["chi1"]),
            "xi_c": np.asarray(_depth_scale(out["chi_c"])),
        }
    )


def format_theory_report(
    activation: str, sigma_b: float, sigma_w2_values: Sequence[float] = DEFAULT_SIGMA_W2_VALUES
) -> str:
    """Text report: the critical sigma_w^2 at this sigma_b, then q*, chi1, xi_c over sigma_w^2.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b: bias scale (NOT squared; the report prints both sigma_b and sigma_b^2).
      sigma_w2_values: sigma_w^2 values for the table (default 1..4 in 13 steps).

    Returns:
      Multi-line string.
    """
    sigma_b = float(sigma_b)
    critical = critical_sigma_w2(activation, sigma_b**2)
    table = theory_table(activation, sigma_b, sigma_w2_values)
    phases = [
        PHASES[int(code)] for code in np.asarray(_phase_code(jnp.asarray(table["chi1"].to_numpy())))
    ]
    lines = [
        f"mean-field theory: activation={activation}, sigma_b={sigma_b:.6g} (sigma_b^2={sigma_b**2:.6g}), q0=1",
        f"critical sigma_w^2 = {critical:.6f} (sigma_w = {math.sqrt(critical) if critical == critical else float('nan'):.6f}), "
        f"where chi1 = 1; critical means |ln chi1| < {CRITICAL_LOG_CHI1_TOLERANCE:g}",
        f"{'sigma_w^2':>10} {'q*':>12} {'chi1':>10} {'xi_c':>10}  phase",
    ]
    for row, phase in zip(table.itertuples(index=False), phases):
        lines.append(
            f"{row.sigma_w2:>10.4g} {row.q_star:>12.6g} {row.chi1:>10.6f} {row.xi_c:>10.4g}  {phase}"
        )
    return "\n".join(lines)


def format_critical_line(
    activation: str, sigma_b2_values: Sequence[float] = DEFAULT_SIGMA_B2_VALUES
) -> str:
    """Text table of the critical line: sigma_w^2 (chi1 = 1) against sigma_b^2.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b2_values: sigma_b^2 values (squared).

    Returns:
      Multi-line string with columns sigma_b^2, sigma_b, sigma_w^2, sigma_w.
    """
    sigma_b2 = np.asarray(sigma_b2_values, np.float64)
    sigma_w2 = critical_line(activation, sigma_b2)
    lines = [
        f"critical line (chi1 = 1): activation={activation}",
        f"{'sigma_b^2':>10} {'sigma_b':>10} {'sigma_w^2':>12} {'sigma_w':>10}",
    ]
    for b2, w2 in zip(sigma_b2, sigma_w2):
        lines.append(
            f"{b2:>10.4g} {math.sqrt(b2):>10.4g} {w2:>12.6f} {math.sqrt(w2) if w2 == w2 else float('nan'):>10.6f}"
        )
    return "\n".join(lines)
