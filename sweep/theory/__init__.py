"""Infinite-width mean-field theory of signal propagation in deep fully-connected networks.

>>> from sweep import theory
>>> mf = theory.mean_field("tanh", 1.5, 0.1)  # sigma_w, sigma_b (not squared)
>>> round(float(mf.chi1), 6), theory.PHASES[int(mf.phase)]
(1.129053, 'chaotic')
>>> round(theory.critical_sigma_w2("tanh", 0.05), 6)  # sigma_w^2 where chi1 = 1
1.760955
>>> columns = theory.predict("tanh", [1.0, 1.5], 0.1, depth=[50, 50])  # the engine's columns
>>> sorted(columns)[:3]
['theory_c_star', 'theory_chi1', 'theory_log10_backward_gain']

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
- Phases (PHASES, MeanField.phase, predict's theory_phase): ordered if
  ln chi1 < -CRITICAL_LOG_CHI1_TOLERANCE, chaotic if > +CRITICAL_LOG_CHI1_TOLERANCE,
  critical in between (1e-3: the backward norm then drifts by less than e^0.5 over 1000
  layers).

Which initialisations this describes. The mean field only sees the first two moments of
i.i.d. weights, so it applies unchanged to i.i.d. Gaussian, uniform and truncated-normal
inits of the same variance sigma_w^2 / N. Orthogonal (scaled by sigma_w) inits share
chi1 and, at large width, the forward length map, but the input-output Jacobian has a
different singular-value spectrum (no spread from products of Gaussian matrices), so
fluctuations around these means differ. Identity init is deterministic: there is no
mean-field average, and only linear + identity has an exact prediction, a gain of
sigma_w per layer, which coincides with 0.5 * log10(chi1) = log10(sigma_w) decades.

Numerics. Everything runs in float64 whatever the caller's jax_enable_x64 (each function
here is wrapped in sweep.precision.x64) and is pure JAX; the functions broadcast over
arrays of configs (C configs), vmapping a scalar core internally. All are jit-able except
log10_backward_gain and predict, which need concrete inputs (the depths size the work).
How each part is computed, and how accurate it is, is in the private modules' docstrings:
_quadrature (the Gaussian rule), _moments (closed forms, Mehler's series for the
correlation map), _fixed_points (the q* and c* solvers), _gain (the backward-gain
scheduler).
"""

from ._fixed_points import (
    CRITICAL_LOG_CHI1_TOLERANCE as CRITICAL_LOG_CHI1_TOLERANCE,
    PHASES as PHASES,
    Q_MAX as Q_MAX,
    MeanField as MeanField,
    critical_line as critical_line,
    critical_sigma_w2 as critical_sigma_w2,
    mean_field as mean_field,
)
from ._gain import (
    length_map_trajectory as length_map_trajectory,
    log10_backward_gain as log10_backward_gain,
)
from ._moments import (
    Q_MIN as Q_MIN,
    correlation_kernel as correlation_kernel,
    gaussian_moments as gaussian_moments,
)
from ._predict import DEFINED as DEFINED, predict as predict
from ._quadrature import (
    DEFAULT_ORDER as DEFAULT_ORDER,
    N_MEHLER as N_MEHLER,
    Z_MAX as Z_MAX,
    gaussian_expectation as gaussian_expectation,
)

__all__ = [
    "CRITICAL_LOG_CHI1_TOLERANCE",
    "DEFAULT_ORDER",
    "N_MEHLER",
    "PHASES",
    "Q_MAX",
    "Q_MIN",
    "Z_MAX",
    "MeanField",
    "correlation_kernel",
    "critical_line",
    "critical_sigma_w2",
    "gaussian_expectation",
    "gaussian_moments",
    "length_map_trajectory",
    "log10_backward_gain",
    "mean_field",
    "predict",
    "DEFINED",
]
