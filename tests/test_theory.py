"""Mean-field theory (sweep.theory) against closed forms and independent numpy integration.

Tolerances are stated next to each check with where they come from. "Independent"
integrals are computed here in numpy float64 with a composite Simpson rule on a wide
uniform z-grid, sharing nothing with sweep.theory's quadrature.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweep import cli_theory, precision, theory

# ---------------------------------------------------------------------------------------
# Independent numpy reference: Simpson on z in [-12, 12] (mass outside: 3.6e-33).

_H = 2e-3
_Z = np.linspace(-12.0, 12.0, 12001)  # step _H (taken exact: z[1] - z[0] is off by 3e-13)
_SIMPSON = np.full(_Z.size, 2.0)
_SIMPSON[1::2] = 4.0
_SIMPSON[[0, -1]] = 1.0
_SIMPSON *= _H / 3.0 * np.exp(-0.5 * _Z**2) / math.sqrt(2 * math.pi)


def simpson_expectation(f, q):
    """E[f(sqrt(q) z)] by Simpson on the uniform grid.

    For an integrand analytic in a strip |Im z| < d and negligible at the ends, uniform
    composite rules converge geometrically, error ~ exp(-2 pi d / h): for tanh(sqrt(q) z)
    d = pi / (2 sqrt(q)), so even q = 1e3 (d = 0.05, h = 2e-3) leaves only rounding
    """
    return float(np.dot(_SIMPSON, f(math.sqrt(q) * _Z)))


def tanh_sq(u):
    return np.tanh(u) ** 2


def dtanh_sq(u):
    return (1.0 - np.tanh(u) ** 2) ** 2


def simpson_q_star(sigma_w2, sigma_b2):
    """Fixed point of the tanh length map by Newton on q - M(q) (d/dq V by Stein)."""
    q = sigma_w2 + sigma_b2
    for _ in range(100):
        value = simpson_expectation(tanh_sq, q)
        slope = simpson_expectation(lambda u: np.tanh(u) * (1 - np.tanh(u) ** 2) * u, q) / q
        step = (q - sigma_w2 * value - sigma_b2) / (1.0 - sigma_w2 * slope)
        q -= step
        if abs(step) < 1e-15 * q:
            break
    return q


def simpson_tanh_critical_sigma_w2(sigma_b2):
    def excess(sigma_w2):
        return sigma_w2 * simpson_expectation(dtanh_sq, simpson_q_star(sigma_w2, sigma_b2)) - 1.0

    lo, hi = 1.0, 3.0
    assert excess(lo) < 0 < excess(hi)
    for _ in range(45):  # bracket width 2 / 2^45 = 6e-14
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------------
# Quadrature.


@pytest.mark.parametrize(
    "name, f",
    [
        ("tanh^2", lambda u: jnp.tanh(u) ** 2),
        ("tanh'^2", lambda u: (1 - jnp.tanh(u) ** 2) ** 2),
        ("hard_tanh^2", lambda u: jnp.clip(u, -1, 1) ** 2),
        ("gelu^2", lambda u: jax.nn.gelu(u, approximate=False) ** 2),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_quadrature_converges_for_large_q(name, f):
    # Doubling the nodes per panel changes nothing beyond rounding: the default rule is
    # converged. 1e-13 relative leaves a factor ~10 over the measured <= 2e-14 (q <= 1e6).
    q = jnp.array([1e-4, 0.3, 1.0, 10.0, 100.0, 1e3, 1e6])
    default = theory.gaussian_expectation(f, q)
    doubled = theory.gaussian_expectation(f, q, order=2 * theory.DEFAULT_ORDER)
    np.testing.assert_allclose(default, doubled, rtol=1e-13, atol=0)


def test_quadrature_matches_independent_integration_where_gauss_hermite_fails():
    # Both sides are at rounding level up to q = 1e3 (measured agreement <= 7e-15):
    # 1e-12 relative. Gauss-Hermite with 200 nodes is off by > 1e-3 at q = 1e3,
    # which is why sweep.theory does not use it.
    for q in [1.0, 30.0, 1e3]:
        expected = simpson_expectation(dtanh_sq, q)
        got = float(theory.gaussian_expectation(lambda u: (1 - jnp.tanh(u) ** 2) ** 2, q))
        assert got == pytest.approx(expected, rel=1e-12)
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    gauss_hermite = np.dot(weights, dtanh_sq(math.sqrt(1e3) * nodes)) / math.sqrt(2 * math.pi)
    assert abs(gauss_hermite / simpson_expectation(dtanh_sq, 1e3) - 1) > 1e-3


def test_quadrature_edge_values():
    f = lambda u: (1 - jnp.tanh(u) ** 2) ** 2  # noqa: E731
    out = theory.gaussian_expectation(f, jnp.array([0.0, jnp.inf, -1.0]))
    assert float(out[0]) == 1.0  # f(0)
    assert float(out[1]) == 0.0  # (f(+inf) + f(-inf)) / 2
    assert math.isnan(float(out[2]))


# ---------------------------------------------------------------------------------------
# Closed forms against quadrature.


@pytest.mark.parametrize("q", [1e-3, 0.5, 3.0, 50.0, 1e4], ids=lambda q: f"q={q:g}")
def test_erf_closed_forms_match_quadrature(q):
    # Williams 1997; both sides are ~1e-14 accurate, so 1e-12 relative.
    mean_sq, slope, mean_dphi_sq = theory.gaussian_moments("erf", q)
    assert float(mean_sq) == pytest.approx(
        (2 / math.pi) * math.asin(2 * q / (1 + 2 * q)), rel=1e-14
    )
    assert float(mean_sq) == pytest.approx(
        float(theory.gaussian_expectation(lambda u: jax.lax.erf(u) ** 2, q)), rel=1e-12
    )
    derf = jax.vmap(jax.grad(jax.lax.erf))
    expected = float(
        theory.gaussian_expectation(lambda u: derf(u.reshape(-1)).reshape(u.shape) ** 2, q)
    )
    assert float(mean_dphi_sq) == pytest.approx(expected, rel=1e-12)
    assert float(mean_dphi_sq) == pytest.approx(4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-14)
    generic = theory.gaussian_moments("erf", q, closed_form=False)
    np.testing.assert_allclose(
        [float(v) for v in generic], [mean_sq, slope, mean_dphi_sq], rtol=1e-11
    )


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("q", [1e-6, 1.0, 1e6], ids=lambda q: f"q={q:g}")
def test_homogeneous_closed_forms_match_quadrature(activation, q):
    # E[phi^2] = k q, d/dq = k, E[phi'^2] = k with k = 1 (linear), 1/2 (relu).
    k = 1.0 if activation == "linear" else 0.5
    closed = [float(v) for v in theory.gaussian_moments(activation, q)]
    generic = [float(v) for v in theory.gaussian_moments(activation, q, closed_form=False)]
    np.testing.assert_allclose(closed, [k * q, k, k], rtol=1e-15)
    np.testing.assert_allclose(generic, closed, rtol=1e-12)


@pytest.mark.parametrize("q", [0.5, 3.0], ids=lambda q: f"q={q:g}")
@pytest.mark.parametrize(
    "activation, c, rtol",
    [
        # erf is analytic: 128 terms + the tail fixed at c = 1 are exact to ~1e-14 (q <= 3).
        *[("erf", c, 1e-11) for c in (0.0, 0.3, 0.9, 0.99, 1.0)],
        # relu's kink at 0 makes a_k^2 decay only like k^-5/2, so near c = 1 the tail
        # model carries the error: measured 1.5e-9 at c = 0.9 and 9e-4 (in the slope) at
        # c = 0.99. Production relu uses the closed form; this bounds leaky_relu/selu/elu.
        ("relu", 0.0, 1e-12),
        ("relu", 0.9, 1e-8),
        ("relu", 0.99, 2e-3),
        ("relu", 1.0, 1e-12),
    ],
    ids=str,
)
def test_correlation_kernel_mehler_matches_closed_form(activation, c, rtol, q):
    # The generic path end to end: its own quadrature moments fix the tail at c = 1.
    np.testing.assert_allclose(
        [float(v) for v in theory.correlation_kernel(activation, q, c, closed_form=False)],
        [float(v) for v in theory.correlation_kernel(activation, q, c)],
        rtol=rtol,
        atol=1e-14,
    )


def test_tanh_kernel_matches_2d_gauss_hermite():
    # At q = 1 a 120x120 Gauss-Hermite product rule converges (1-D error ~1e-11 at
    # n = 120 for tanh at q = 1), so it checks the Mehler kernel to 1e-10.
    q = 1.0
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / math.sqrt(2 * math.pi)
    z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
    w2 = np.outer(weights, weights)
    for c in [0.2, 0.7, 0.95]:
        u1 = math.sqrt(q) * z1
        u2 = math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
        expected_value = np.sum(w2 * np.tanh(u1) * np.tanh(u2))
        expected_derivative = q * np.sum(w2 * (1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2))
        value, derivative = theory.correlation_kernel("tanh", q, c)
        assert float(value) == pytest.approx(expected_value, abs=1e-10)
        assert float(derivative) == pytest.approx(expected_derivative, abs=1e-10)


def test_hard_tanh_kernel_matches_conditional_reference():
    # hard_tanh's kinks at |u| = 1 move with q, so its Hermite coefficients come from the
    # adaptive panel rule. Reference: E[clip(u1) E[clip(u2) | u1]] with the inner
    # expectation in closed form (normal cdf/pdf) and the outer one by Richardson-
    # extrapolated trapezoid rules on three pieces split at the kinks z = +-1/sqrt(q).
    q, c = 2.0, 0.6
    kink = 1 / math.sqrt(q)
    grid = np.concatenate(
        [
            np.linspace(-12, -kink, 6001),
            np.linspace(-kink, kink, 2001)[1:],
            np.linspace(kink, 12, 6001)[1:],
        ]
    )
    u1 = math.sqrt(q) * grid
    mean, std = c * u1, math.sqrt(q * (1 - c * c))
    cdf = lambda x: np.asarray(precision.x64(jax.scipy.special.ndtr)(x))  # noqa: E731
    pdf = lambda x: np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # noqa: E731
    lo, hi = (-1 - mean) / std, (1 - mean) / std
    inner = -cdf(lo) + (1 - cdf(hi)) + mean * (cdf(hi) - cdf(lo)) + std * (pdf(lo) - pdf(hi))
    integrand = np.clip(u1, -1, 1) * inner * pdf(grid)
    pieces = [slice(0, 6001), slice(6000, 8001), slice(8000, None)]  # even interval counts
    fine = sum(np.trapezoid(integrand[p], grid[p]) for p in pieces)
    coarse = sum(np.trapezoid(integrand[p][::2], grid[p][::2]) for p in pieces)
    expected = (4 * fine - coarse) / 3  # O(h^4): the plain trapezoid error was 2e-8
    value, _ = theory.correlation_kernel("hard_tanh", q, c)
    # The extrapolated reference's error is O(h^4) ~ 1e-11 with h ~ 2e-3; the Mehler
    # series at q = 2 (128 terms, kinks resolved) is good to ~1e-12: 1e-10 absolute.
    assert float(value) == pytest.approx(expected, abs=1e-10)


# ---------------------------------------------------------------------------------------
# Fixed points and the critical line.


@pytest.mark.parametrize(
    "activation, sigma_w, sigma_b, q_star",
    [
        ("linear", 0.5, 0.3, 0.09 / 0.75),  # sigma_b^2 / (1 - sigma_w^2)
        ("linear", 0.5, 0.0, 0.0),
        ("linear", 1.0, 0.0, 1.0),  # q^l = q0 for all l
        ("linear", 1.0, 0.1, math.inf),  # critical with bias: grows linearly
        ("linear", 1.1, 0.0, math.inf),
        ("relu", 1.0, 0.3, 0.09 / 0.5),  # sigma_b^2 / (1 - sigma_w^2/2)
        ("relu", math.sqrt(2), 0.0, 2.0),  # q^1 = 2 q0, then constant
        ("relu", 1.5, 0.0, math.inf),
        ("tanh", 0.9, 0.0, 0.0),
        ("tanh", 1.0, 0.0, 0.0),  # algebraic collapse q ~ 1/(2l)
    ],
    ids=lambda v: f"{v:g}" if isinstance(v, float) else str(v),
)
def test_fixed_point_q_exact_cases(activation, sigma_w, sigma_b, q_star):
    got = float(theory.mean_field(activation, sigma_w, sigma_b).q_star)
    if math.isinf(q_star) or q_star == 0:
        assert got == q_star
    else:
        assert got == pytest.approx(q_star, rel=1e-12)  # solver stops at 1e-13 in ln q


def test_fixed_point_q_matches_simpson_iteration():
    # Independent Newton on the Simpson length map; both converge to ~1e-13 (measured
    # agreement <= 1e-14): 1e-12 relative.
    for sigma_w2, sigma_b2 in [(1.5, 0.05), (3.0, 0.5), (1.2, 0.0)]:
        got = float(theory.mean_field("tanh", math.sqrt(sigma_w2), math.sqrt(sigma_b2)).q_star)
        assert got == pytest.approx(simpson_q_star(sigma_w2, sigma_b2), rel=1e-12)


def test_length_map_trajectory_convention():
    sigma_w, sigma_b, q0 = 1.5, 0.3, 2.0
    trajectory = np.asarray(theory.length_map_trajectory("tanh", sigma_w, sigma_b, 40, q0=q0))
    assert trajectory.shape == (41,)
    assert trajectory[0] == q0  # index 0: the raw input's ||x||^2/N
    assert trajectory[1] == pytest.approx(
        sigma_w**2 * q0 + sigma_b**2, rel=1e-15
    )  # no phi on the input
    assert trajectory[2] == pytest.approx(
        sigma_w**2 * simpson_expectation(tanh_sq, trajectory[1]) + sigma_b**2, rel=1e-12
    )
    # chi_q ~ 0.43 here, so 40 layers reach q* to ~1e-14.
    assert trajectory[-1] == pytest.approx(
        float(theory.mean_field("tanh", sigma_w, sigma_b).q_star), rel=1e-11
    )
    batch = theory.length_map_trajectory("relu", jnp.array([1.0, 2.0]), 0.0, 3)
    np.testing.assert_allclose(batch, [[1, 1, 0.5, 0.25], [1, 4, 8, 16]], rtol=1e-15)


@pytest.mark.parametrize(
    "activation, sigma_b2, expected",
    [
        ("linear", 0.0, 1.0),
        ("linear", 0.5, 1.0),
        ("relu", 0.0, 2.0),
        ("relu", 0.3, 2.0),
        ("tanh", 0.0, 1.0),
        ("erf", 0.0, math.pi / 4),
    ],
    ids=str,
)
def test_critical_sigma_w2_known_values(activation, sigma_b2, expected):
    # Bisection to ~1e-15 in ln sigma_w^2; erf: chi1 = sigma_w^2 * 4/pi at q* = 0.
    # For a bounded phi at sigma_b = 0, chi1 - 1 only grows like (sigma_w^2 - crit)^2 on
    # the chaotic side (q* ~ sigma_w^2 - crit there), so rounding ~1e-16 in chi1 moves the
    # crossing by ~1e-8: 1e-7 relative. Elsewhere chi1 crosses 1 linearly: 1e-12.
    rel = 1e-7 if activation in ("tanh", "erf") else 1e-12
    assert theory.critical_sigma_w2(activation, sigma_b2) == pytest.approx(expected, rel=rel)


def test_tanh_critical_point_at_sigma_b2_0_05():
    ours = theory.critical_sigma_w2("tanh", 0.05)
    independent = simpson_tanh_critical_sigma_w2(0.05)
    # Both integrations are at rounding level here and the bisections stop at ~1e-14;
    # d chi1 / d sigma_w^2 ~ 0.2, so the two critical points agree to ~1e-13 (measured
    # 1.8e-14: 1.76095463960675 both ways). 1e-12 absolute.
    assert ours == pytest.approx(independent, abs=1e-12)
    assert abs(ours - 1.7610) < 1e-4  # the value quoted for this point (1.76095...)
    assert float(theory.mean_field("tanh", math.sqrt(ours), math.sqrt(0.05)).chi1) == pytest.approx(
        1.0, abs=1e-12
    )


def test_critical_line_is_increasing_for_tanh():
    line = theory.critical_line("tanh", [0.0, 0.05, 0.5, 2.0])
    assert line[0] == pytest.approx(1.0, rel=1e-12)
    assert np.all(np.diff(line) > 0)


# ---------------------------------------------------------------------------------------
# predict.


def test_predict_vmapped_over_thousands_of_configs():
    rng = np.random.default_rng(0)
    n = 3000
    sigma_w = rng.uniform(0.05, 4.0, n)
    sigma_b = rng.uniform(0.0, 1.0, n)
    depth = rng.integers(0, 500, n)
    for activation in ["tanh", "relu"]:
        out = theory.predict(activation, sigma_w, sigma_b, depth)
        assert set(out) == {
            "theory_q_star",
            "theory_chi1",
            "theory_c_star",
            "theory_xi_c",
            "theory_xi_q",
            "theory_log10_backward_gain",
            "theory_phase",
            "theory_q_depth",
        }
        for key, value in out.items():
            assert value.shape == (n,), key
            assert not np.any(np.isnan(np.asarray(value, dtype=float))), key
        chi1 = np.asarray(out["theory_chi1"])
        assert np.all(np.isfinite(chi1)) and np.all(chi1 > 0)
        c_star = np.asarray(out["theory_c_star"])
        assert np.all((c_star >= 0) & (c_star <= 1))
        np.testing.assert_array_equal(c_star[chi1 <= 1], 1.0)
        if activation == "relu":  # chi = sigma_w^2 / 2 at every q: the gain is L times it
            np.testing.assert_allclose(
                out["theory_log10_backward_gain"],
                depth * 0.5 * np.log10(chi1),
                rtol=1e-13,
                atol=1e-13,
            )
        phase = np.asarray(out["theory_phase"])
        np.testing.assert_array_equal(phase[np.log(chi1) < -1e-3], 0)
        np.testing.assert_array_equal(phase[np.log(chi1) > 1e-3], 2)
    # bounded tanh: q* always finite (bias keeps it > 0 where sigma_b > 0)
    tanh = theory.predict("tanh", sigma_w, sigma_b, depth)
    assert np.all(np.isfinite(np.asarray(tanh["theory_q_star"])))
    # relu: q* is finite exactly in the ordered phase
    relu = theory.predict("relu", sigma_w, sigma_b, depth)
    np.testing.assert_array_equal(np.isfinite(np.asarray(relu["theory_q_star"])), sigma_w**2 < 2)


@pytest.mark.parametrize(
    "activation, sigma_w, sigma_b, phase",
    [
        ("linear", 0.9, 0.0, "ordered"),
        ("linear", 1.0, 0.0, "critical"),
        ("linear", 1.1, 0.1, "chaotic"),
        ("relu", math.sqrt(2), 0.0, "critical"),
        ("relu", 1.3, 0.5, "ordered"),
        ("relu", 1.5, 0.0, "chaotic"),
        ("tanh", 1.0, 0.0, "critical"),
        ("tanh", 0.8, 0.1, "ordered"),
        ("tanh", 2.0, 0.0, "chaotic"),
        # chi1 = 0.9955 and 1.0040: outside the +-1e-3 band in ln chi1 (sigma_w^2 +- 0.005)
        ("tanh", math.sqrt(1.74), math.sqrt(0.05), "ordered"),
        ("tanh", math.sqrt(1.78), math.sqrt(0.05), "chaotic"),
        ("tanh", math.sqrt(1.7610), math.sqrt(0.05), "critical"),
    ],
    ids=lambda v: f"{v:.4g}" if isinstance(v, float) else str(v),
)
def test_phases_at_known_points(activation, sigma_w, sigma_b, phase):
    out = theory.predict(activation, [sigma_w], [sigma_b], [100])
    assert theory.PHASES[int(out["theory_phase"][0])] == phase


def test_depth_scales_at_criticality_are_inf_not_nan():
    out = theory.predict("linear", [1.0, 1.0], [0.0, 0.5], [10, 10])
    np.testing.assert_array_equal(out["theory_chi1"], [1.0, 1.0])
    np.testing.assert_array_equal(out["theory_xi_c"], [math.inf, math.inf])
    np.testing.assert_array_equal(out["theory_xi_q"], [math.inf, math.inf])
    np.testing.assert_array_equal(out["theory_log10_backward_gain"], [0.0, 0.0])
    assert float(theory.mean_field("tanh", 1.0, 0.0).xi_grad) == math.inf
    assert float(theory.mean_field("relu", 0.0, 0.0).xi_c) == 0.0  # chi = 0: no memory at all


# ---------------------------------------------------------------------------------------
# The finite-depth backward gain.


def simpson_backward_gain(sigma_w, sigma_b, depth):
    """sum_{l=1}^{L} 1/2 log10(sigma_w^2 E[tanh'(sqrt(q^l) z)^2]) with q^1 = sigma_w^2 +
    sigma_b^2 and q^{l+1} = sigma_w^2 E[tanh^2] + sigma_b^2, all by Simpson."""
    q, total = sigma_w**2 + sigma_b**2, 0.0
    for _ in range(depth):
        total += 0.5 * math.log10(sigma_w**2 * simpson_expectation(dtanh_sq, q))
        q = sigma_w**2 * simpson_expectation(tanh_sq, q) + sigma_b**2
    return total


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_backward_gain_closed_forms(activation):
    # chi(q) = sigma_w^2 (linear) and sigma_w^2 / 2 (relu) at every q, including the q^l
    # that underflow to 0 (sigma_w < 1 or < sqrt 2, no bias) or overflow to inf (sigma_w
    # > 1 or > sqrt 2): the gain is L log10 sigma_w (+ L/2 log10 1/2). Both sides round
    # the per-layer value log10 sigma_w (+ 1/2 log10 1/2), |.| <= 1.2, on their own (XLA's
    # and libm's log10 differ by a few ulp) and then multiply by L: 1e-14 relative plus
    # 1e-15 L absolute (where the two terms cancel, relu at sqrt 2).
    sigma_w = np.array([0.3, 0.5, 1.0, 1.0 + 1e-9, 1.1, math.sqrt(2), 2.0, 10.0])
    sigma_b = np.array([0.0, 0.7])
    depth = np.array([0, 1, 2, 63, 64, 65, 150, 1000, 5000])
    w, b, L = np.meshgrid(sigma_w, sigma_b, depth, indexing="ij")
    got = theory.log10_backward_gain(activation, w, b, L)
    offset = 0.0 if activation == "linear" else 0.5 * math.log10(0.5)
    expected = L * (np.log10(w) + offset)
    assert np.all(np.abs(got - expected) <= 1e-14 * np.abs(expected) + 1e-15 * L), np.abs(
        got - expected
    ).max()
    if activation == "linear":  # exactly L log10 sigma_w at sigma_w = 1 and at depth 0
        assert np.all(got[w == 1.0] == 0.0) and np.all(got[L == 0] == 0.0)
    # predict's column is this function.
    out = theory.predict(activation, w.reshape(-1), b.reshape(-1), L.reshape(-1))
    np.testing.assert_array_equal(out["theory_log10_backward_gain"], got.reshape(-1))


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "gelu"])
def test_backward_gain_limits_are_never_nan(activation):
    # q^l runs to 0 (no bias, ordered) or +inf (gelu, linear, relu, chaotic), or sits at
    # sigma_w = 0 (chi = 0: -inf for every L >= 1, 0 at L = 0).
    sigma_w = np.array([0.0, 0.5, 1.0, math.sqrt(2), 2.0, 4.0, 10.0])
    sigma_b = np.array([0.0, 0.3])
    depth = np.array([0, 1, 64, 65, 2000])
    w, b, L = np.meshgrid(sigma_w, sigma_b, depth, indexing="ij")
    got = theory.log10_backward_gain(activation, w, b, L)
    assert not np.any(np.isnan(got))
    np.testing.assert_array_equal(got[L == 0], 0.0)
    np.testing.assert_array_equal(got[(w == 0) & (L > 0)], -np.inf)
    assert np.all(np.isfinite(got[w > 0]))


def test_backward_gain_matches_simpson_trajectory():
    # Independent: Simpson moments, plain iteration. Each moment agrees to ~1e-14
    # relative; an error in q^l is carried on with factor chi_q <= 1 here, so it grows at
    # most linearly, to ~l 1e-14 relative by layer l, and moves 1/2 log10 chi(q^l) by
    # less than that (|d ln chi / d ln q| <= 1 for tanh). Summed over L = 150 layers:
    # < 150^2 / 2 * 1e-14 = 1.1e-10, so 3e-10 absolute. Measured <= 9e-14.
    for sigma_w, sigma_b, depth in [(1.0, 0.0, 150), (1.5, 0.3, 60), (0.8, 0.1, 60)]:
        got = float(theory.log10_backward_gain("tanh", sigma_w, sigma_b, depth))
        assert got == pytest.approx(simpson_backward_gain(sigma_w, sigma_b, depth), abs=3e-10)


def test_backward_gain_converges_to_chi1_rate_far_from_criticality():
    # Far from criticality q^l -> q* geometrically (rate chi_q < 1), so the gain is
    # L 1/2 log10 chi1 plus an L-independent transient T. Past the transient each layer
    # adds 1/2 log10 chi(q^l) with q^l at q* to the solver's 1e-13 in ln q and
    # |d ln chi / d ln q| < 1, i.e. < 1e-13 / (2 ln10) = 2.2e-14 per layer: over the
    # 3000 layers from L = 1000 to 4000, T moves by < 7e-11. 1e-9 absolute.
    sigma_w = np.array([0.8, math.sqrt(1.2), math.sqrt(2.5), 2.0, 3.0])
    sigma_b = np.array([0.1, math.sqrt(0.05), math.sqrt(0.05), 0.0, 0.5])
    chi1 = np.asarray(theory.mean_field("tanh", sigma_w, sigma_b).chi1)
    assert np.all(np.abs(np.log(chi1)) > 0.1)  # clearly off the critical line
    depth = np.array([1000, 2000, 4000])
    gain = theory.log10_backward_gain("tanh", sigma_w[:, None], sigma_b[:, None], depth)
    transient = gain - depth * 0.5 * np.log10(chi1)[:, None]
    np.testing.assert_allclose(
        transient, np.broadcast_to(transient[:, :1], transient.shape), rtol=0, atol=1e-9
    )
    # The transient is a few layers' worth (the first layers see q^1 = sigma_w^2 +
    # sigma_b^2, not q*), so at L = 1000 the gain is L 1/2 log10 chi1 to < 1% (measured
    # 0.03-0.6%; T = -0.04 to -0.24 decades). Measured drift of T: 1.4e-13.
    assert np.all(np.abs(transient[:, 0]) < 0.01 * np.abs(1000 * 0.5 * np.log10(chi1)))


def test_backward_gain_at_tanh_criticality_without_bias():
    # sigma_b = 0, sigma_w = 1: chi1 = 1 (q* = 0), so L 1/2 log10 chi1 = 0 at every depth,
    # but q^l -> 0 only like 1/(2l) and ln chi(q) = -2q + 5q^2 + O(q^3), so the gain is
    # -1/2 log10 L + O(1) instead: negative and growing in size.
    assert float(theory.mean_field("tanh", 1.0, 0.0).chi1) == 1.0
    depth = np.array([10, 150, 1000, 4000])
    gain = theory.log10_backward_gain("tanh", 1.0, 0.0, depth)
    assert np.all(gain < 0) and np.all(np.diff(gain) < 0)
    assert gain[1] < -1.0  # -1.16 decades at L = 150: a tenfold vanishing gradient
    # 1/q^{l+1} = 1/q^l + 2 - (5/3) q^l + ..., so q^l = 1/(2l) + (5/24) ln l / l^2 + C/l^2
    # and the sum over (L, 4L] of ln chi is -ln 4 + corrections (5/16)(ln L + 1)/L +
    # (15/16)/L + O(C)/L = 3.4e-3 at L = 1000, i.e. 7.4e-4 decades; allowing 4x for the
    # unknown O(1/L) constant C: 3e-3 decades. Measured: 2.9e-4.
    assert gain[3] - gain[2] == pytest.approx(-0.5 * math.log10(4), abs=3e-3)


def test_backward_gain_phase_boundary_at_depth_150():
    # At sigma_b = 0 the tanh critical point is sigma_w = 1, but a 150-layer network's
    # predicted backward gain crosses 0 at sigma_w = 1.1125 (where the measured phase
    # boundary sits): the chaotic growth has to make up for the slow collapse of q^l.
    # Checked on the independent Simpson trajectory, whose gain changes sign between
    # 1.112 and 1.113 (|gain| ~ 4e-3 there, far above both sides' errors ~1e-13).
    got = theory.log10_backward_gain("tanh", [1.0, 1.112, 1.113], 0.0, 150)
    assert got[0] < -1.0 and got[1] < 0 < got[2]
    assert simpson_backward_gain(1.112, 0.0, 150) < 0 < simpson_backward_gain(1.113, 0.0, 150)


def test_backward_gain_rejects_bad_depths_and_traced_inputs():
    with pytest.raises(ValueError, match="non-negative integers"):
        theory.log10_backward_gain("tanh", 1.0, 0.0, [3, -1])
    with pytest.raises(ValueError, match="non-negative integers"):
        theory.predict("tanh", 1.0, 0.0, 2.5)
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda w: theory.predict("tanh", w, 0.0, 10)["theory_chi1"])(jnp.array([1.0]))


def test_tanh_chaotic_fixed_point_matches_2d_gauss_hermite():
    # sigma_w = 1.5, sigma_b = 0.3: q* ~ 0.96, where a 120x120 Gauss-Hermite rule is good
    # to ~1e-11; bisect the independent correlation map to 1e-13, then compare c* and
    # chi_c to 1e-9 (the map's slope at c* is ~0.95, so errors are amplified ~20x).
    sigma_w, sigma_b = 1.5, 0.3
    q = simpson_q_star(sigma_w**2, sigma_b**2)
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / math.sqrt(2 * math.pi)
    z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
    w2 = np.outer(weights, weights)

    def correlation_map(c):
        u1 = math.sqrt(q) * z1
        u2 = math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
        image = (sigma_w**2 * np.sum(w2 * np.tanh(u1) * np.tanh(u2)) + sigma_b**2) / q
        slope = sigma_w**2 * np.sum(w2 * (1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2))
        return image, slope

    lo, hi = 0.0, 0.99
    assert correlation_map(lo)[0] > lo and correlation_map(hi)[0] < hi
    while hi - lo > 1e-13:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if correlation_map(mid)[0] > mid else (lo, mid)
    c_expected = 0.5 * (lo + hi)
    mf = theory.mean_field("tanh", sigma_w, sigma_b)
    assert float(mf.c_star) == pytest.approx(c_expected, abs=1e-9)
    assert float(mf.chi_c) == pytest.approx(correlation_map(c_expected)[1], abs=1e-9)


def test_odd_activation_without_bias_decorrelates_fully():
    # sigma_b = 0, phi odd: c = 0 is a fixed point, and the stable one in the chaotic phase.
    assert float(theory.mean_field("tanh", 2.0, 0.0).c_star) == 0.0
    assert float(theory.mean_field("erf", 2.0, 0.0).c_star) == 0.0


def test_chi_q_equals_schoenholz_form():
    # chi_q = sigma_w^2 E[phi'^2 + phi phi''] (Schoenholz et al.), computed here with
    # phi'' from autodiff; theory uses the integrated-by-parts form. Both ~1e-14.
    dphi = jax.vmap(jax.grad(jnp.tanh))
    ddphi = jax.vmap(jax.grad(jax.grad(jnp.tanh)))

    def schoenholz(u):
        flat = u.reshape(-1)
        return (dphi(flat) ** 2 + jnp.tanh(flat) * ddphi(flat)).reshape(u.shape)

    for sigma_w, sigma_b in [(1.2, 0.1), (2.0, 0.5)]:
        mf = theory.mean_field("tanh", sigma_w, sigma_b)
        expected = sigma_w**2 * float(theory.gaussian_expectation(schoenholz, float(mf.q_star)))
        assert float(mf.chi_q) == pytest.approx(expected, rel=1e-11)
        got = float(mf.xi_q)
        assert got == pytest.approx(-1 / math.log(expected), rel=1e-11)


def test_quadrature_path_reproduces_closed_form_predictions():
    # The whole pipeline on the generic quadrature/Mehler path vs the closed forms: every
    # MeanField field (predict's depth-free columns among them) and the gain.
    sigma_w = np.array([0.5, 1.0, 1.5, 2.5, 1.3])
    sigma_b = np.array([0.0, 0.2, 0.3, 0.0, 0.5])
    depth = np.array([50, 50, 50, 50, 7])
    for activation in ["erf", "relu"]:
        closed, generic = {}, {}
        for flag, out in [(True, closed), (False, generic)]:
            fixed_point = theory.mean_field(activation, sigma_w, sigma_b, closed_form=flag)
            out.update(fixed_point._asdict())
            out["gain"] = theory.log10_backward_gain(
                activation, sigma_w, sigma_b, depth, q_star=fixed_point.q_star, closed_form=flag
            )
        for key in closed:
            np.testing.assert_allclose(
                generic[key], closed[key], rtol=1e-9, atol=1e-12, err_msg=f"{activation} {key}"
            )


def test_jit_and_vmap_compose():
    fn = jax.jit(jax.vmap(lambda w, b: theory.mean_field("tanh", w, b).q_star))
    got = fn(jnp.array([1.2, 1.5]), jnp.array([0.0, 0.3]))
    np.testing.assert_allclose(
        got,
        theory.mean_field("tanh", jnp.array([1.2, 1.5]), jnp.array([0.0, 0.3])).q_star,
        rtol=1e-15,
    )


def test_results_do_not_depend_on_the_callers_x64_setting():
    # Every public function runs in its own float64 scope: with jax_enable_x64 off the
    # numbers are the same bits as with it on (inputs given as numpy float64 or lists).
    sigma_w, sigma_b, depth = [0.7, 1.0, 1.5, 2.5], [0.0, 0.3, 0.1, 0.5], [3, 64, 65, 200]
    outputs = {}
    for enabled in (True, False):
        with jax.enable_x64(enabled):
            outputs[enabled] = [
                theory.predict("tanh", sigma_w, sigma_b, depth),
                theory.mean_field("hard_tanh", sigma_w, sigma_b)._asdict(),
                {"line": theory.critical_line("tanh", [0.0, 0.05])},
                {"trajectory": theory.length_map_trajectory("erf", sigma_w, sigma_b, 5)},
                {"gain": theory.log10_backward_gain("gelu", sigma_w, sigma_b, depth)},
                {"e": theory.gaussian_expectation(jnp.tanh, np.array([0.3, 2.0]))},
                {"kernel": theory.correlation_kernel("tanh", 1.3, 0.4)[0]},
            ]
    for with_x64, without in zip(outputs[True], outputs[False]):
        for key, value in with_x64.items():
            got = np.asarray(without[key])
            assert got.dtype == np.asarray(value).dtype, key
            np.testing.assert_array_equal(got, value, err_msg=key)
    assert np.asarray(outputs[False][0]["theory_chi1"]).dtype == np.float64


def test_package_docstring_example_runs():
    import doctest

    assert doctest.testmod(theory, optionflags=doctest.ELLIPSIS).failed == 0


# ---------------------------------------------------------------------------------------
# Reports.


def test_theory_table_and_reports():
    table = cli_theory.theory_table("tanh", math.sqrt(0.05), [1.0, 2.0])
    assert list(table.columns) == ["sigma_w2", "q_star", "chi1", "xi_c"]
    assert table["chi1"].iloc[0] < 1 < table["chi1"].iloc[1]
    report = cli_theory.format_theory_report("tanh", math.sqrt(0.05))
    assert "sigma_b=0.223607 (sigma_b^2=0.05)" in report
    assert "critical sigma_w^2 = 1.76" in report
    assert len(report.splitlines()) == 3 + 13
    line = cli_theory.format_critical_line("relu", [0.0, 0.1])
    assert line.count("2.000000") == 2
