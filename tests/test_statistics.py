"""Random networks against closed forms, with tolerances from the sampling statistics."""

import math

import jax.numpy as jnp
import jax.scipy.special as special
import numpy as np
import pytest

LN10 = math.log(10)
EPS32 = float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("width", [4, 16], ids=["N4", "N16"])
def test_deep_linear_gaussian_log_gain_moments(run_sweep, width):
    # For W with N(0, 1/N) entries and any fixed x, ||W x||^2 / ||x||^2 ~ chi2_N / N,
    # independent across layers (rotation invariance). So ln(gain^2) over L layers has
    # mean L [psi(N/2) - ln(N/2)] and variance L psi'(N/2). batch = 1 makes
    # log10_forward_gain the gain of one input; the backward gain is the same law for J^T.
    depth, seeds = 10, 300
    frame = run_sweep(
        {
            "depth": [depth],
            "sigma_w": [1.0],
            "width": [width],
            "seed": {"start": 0, "stop": seeds - 1, "step": 1},
        },
        {"batch": 1},
    )
    half = width / 2
    mean = depth * float(special.digamma(half) - math.log(half))
    variance = depth * float(special.polygamma(1, jnp.asarray(half)))
    for column in ["log10_forward_gain", "log10_backward_gain"]:
        log_gain_sq = 2 * LN10 * frame[column].to_numpy()
        assert len(log_gain_sq) == seeds
        centred = log_gain_sq - log_gain_sq.mean()
        standard_error_mean = math.sqrt(variance / seeds)
        assert abs(log_gain_sq.mean() - mean) < 4 * standard_error_mean, column
        # Standard error of a sample variance: sqrt((m4 - s^4) / n), m4 estimated too.
        sample_variance = centred.var(ddof=1)
        standard_error_variance = math.sqrt((np.mean(centred**4) - sample_variance**2) / seeds)
        assert abs(sample_variance - variance) < 4 * standard_error_variance, column


def test_orthogonal_linear_jacobian_is_an_isometry_at_depth_1000(run_sweep):
    frame = run_sweep({"depth": [1000], "sigma_w": [1.0], "width": [8], "init": ["orthogonal"]})
    row = frame.iloc[0]
    # Each float32 Haar matrix is orthogonal to about sqrt(N) eps; over L layers the
    # singular values can drift by at most L sqrt(N) eps relative.
    tolerance = 1000 * math.sqrt(8) * EPS32 / LN10
    assert abs(row["log10_jac_sv_max"]) < tolerance
    assert abs(row["log10_jac_sv_min"]) < tolerance
    assert abs(row["log10_forward_gain"]) < tolerance
    assert abs(row["log10_backward_gain"]) < tolerance


def test_relu_dead_network_is_flagged(run_sweep):
    # sigma_w = 0 with no bias: every ReLU unit is exactly off from layer 1 on.
    frame = run_sweep({"depth": [3], "sigma_w": [0.0], "width": [4], "activation": ["relu"]})
    row = frame.iloc[0]
    assert row["status"] == "dead"
    assert row["log10_forward_gain"] == -math.inf
    assert row["log10_jac_sv_min"] == -math.inf


def test_gelu_explodes_exactly_far_past_float32(run_sweep):
    # gelu(x) -> x for x >> 0 and -> 0 for x << 0: on the identity init a deep gelu net with
    # sigma_w = 2 grows exactly like relu, by 2 per layer once its scale is far above 1,
    # past where float32 itself overflows (layer ~128).
    frame = run_sweep(
        {
            "depth": [500],
            "sigma_w": [2.0],
            "width": [2],
            "init": ["identity"],
            "activation": ["gelu", "relu"],
        }
    )
    gelu = frame[frame["activation"] == "gelu"].iloc[0]
    relu = frame[frame["activation"] == "relu"].iloc[0]
    assert gelu["status"] == "overflow" and gelu["overflow_layer"] < 200
    growth = np.diff(np.asarray(gelu["log10_act_norm"]))[-100:]
    np.testing.assert_allclose(growth, math.log10(2.0), atol=8 * EPS32)
    np.testing.assert_allclose(
        np.diff(np.asarray(relu["log10_act_norm"]))[-100:], math.log10(2.0), atol=8 * EPS32
    )


def test_tanh_vanishing_regime_is_exact_far_below_float32(run_sweep):
    # tanh(x) = x (1 - x^2/3 + ...) so once activations are tiny, each identity layer with
    # sigma_w = 0.5 scales them by exactly 0.5: the log-space pass keeps that at depth 2000,
    # far below float32's smallest subnormal.
    frame = run_sweep(
        {
            "depth": [2000],
            "sigma_w": [0.5],
            "width": [2],
            "init": ["identity"],
            "activation": ["tanh"],
        }
    )
    row = frame.iloc[0]
    assert row["status"] == "underflow"
    growth = np.diff(np.asarray(row["log10_act_norm"]))[-1000:]
    np.testing.assert_allclose(growth, math.log10(0.5), atol=8 * EPS32)
    assert row["log10_backward_gain"] < -590


@pytest.mark.parametrize(
    "activation, slope", [("elu", 1.0), ("selu", 1.0507009873554805)], ids=["elu", "selu"]
)
def test_saturating_side_keeps_no_scale_far_past_float32(run_sweep, activation, slope):
    # elu/selu grow like x above 0 and tend to a constant below: with identity weights and
    # sigma_w = 2 the positive unit grows by 2 x slope per layer and the other settles at
    # phi(-inf), negligible beside it, so the net grows by exactly that far past float32.
    frame = run_sweep(
        {
            "depth": [400],
            "sigma_w": [2.0],
            "width": [2],
            "init": ["identity"],
            "activation": [activation],
        }
    )
    growth = np.diff(np.asarray(frame.iloc[0]["log10_act_norm"]))[-100:]
    np.testing.assert_allclose(growth, math.log10(2.0 * slope), atol=8 * EPS32)


def test_saturated_sigmoid_gradients_stay_finite(run_sweep):
    # sigma_w = 2000 saturates most sigmoid units (phi' = 0 even in float64 where |h| > 745:
    # about 71% of them); the rows that are exactly zero must not hide the others: the
    # gradient norm is finite, as are the gain and, unless all of probe 0's units saturate
    # (0.71^16 = 0.4% at width 16), the Jacobian's sigma_max.
    frame = run_sweep(
        {"depth": [1], "sigma_w": [2000.0], "width": [16], "activation": ["sigmoid"]},
        {"dtype": "float64"},
    )
    row = frame.iloc[0]
    assert np.isfinite(row["log10_backward_gain"]) and np.isfinite(row["log10_grad_norm"][0])
    assert np.isfinite(row["log10_jac_sv_max"])
