"""The Jacobian's extreme singular values against float64 numpy.linalg.svd of the explicit
Jacobian, and the batched top-eigenvalue solver against numpy.linalg.eigvalsh."""

import dataclasses
import math

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweep import blocks, logspace, network

EPS64 = float(np.finfo(np.float64).eps)


DEPTHS = (1, 2, 4, 7, 10)
INITS = ("gaussian", "orthogonal")
ACTIVATIONS = ("tanh", "erf", "gelu", "leaky_relu", "relu")
PROGRAM = dataclasses.replace(
    helpers.program(16, depths=DEPTHS, dtype="float64", batch=2),
    inits=INITS,
    activations=ACTIVATIONS,
)


@jax.jit
def _engine(sigma_w, seed, init_index, activation_index):
    """One family's log10 (sigma_max, sigma_min) at DEPTHS, phi'(h_l) at probe 0 and Ŵ_l,
    from one pass of the engine's functions (one compile for every init and activation)."""
    keys = network.family_keys(jax.random.key(0), seed, PROGRAM.width, INITS, init_index)
    scales = blocks.Scales(sigma_w, jnp.float64(0.1))
    depths = jnp.asarray(DEPTHS)
    metrics = network.family_one(scales, keys, depths, activation_index, PROGRAM)
    fwd = network.forward_one(scales, keys, activation_index, PROGRAM)
    layers = jnp.arange(1, PROGRAM.n_layers + 1)
    weights = jax.vmap(lambda layer: network.layer_weights(keys, layer, PROGRAM))(layers)
    return metrics.log10_jac_sv, fwd.saved.dphi[:, 0], weights.w_hat


@jax.enable_x64(True)
def engine_and_explicit(init, activation, sigma_w, seed):
    """The engine's log10 (sigma_max, sigma_min) at DEPTHS (float64 network), and the
    explicit Jacobians J_d = D_d W_d ... D_1 W_1 at probe 0 in numpy float64, from the same
    pass's phi'(h_l) and the family's weights."""
    out = _engine(
        jnp.float64(sigma_w),
        jnp.int32(seed),
        jnp.int32(INITS.index(init)),
        jnp.int32(ACTIVATIONS.index(activation)),
    )
    log10_sv, dphi0, w_hat = (np.asarray(v, np.float64) for v in out)
    jac, explicit = np.eye(PROGRAM.width), []
    for layer in range(PROGRAM.n_layers):
        jac = dphi0[layer][:, None] * (sigma_w * w_hat[layer]) @ jac
        if layer + 1 in DEPTHS:
            explicit.append(jac.copy())
    return log10_sv, explicit


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("init", INITS)
def test_extremes_equal_float64_svd_of_the_explicit_jacobian(init, activation):
    checked_min = 0
    for seed, sigma_w in ((0, 0.8), (1, 1.5)):
        log10_sv, explicit = engine_and_explicit(init, activation, sigma_w, seed)
        for (log10_max, log10_min), jac in zip(log10_sv, explicit):
            sv = np.linalg.svd(jac, compute_uv=False)
            # numpy's sigma_max is relative-exact; its sigma_min has an absolute error of
            # about N eps sigma_max, so it resolves sigma_min to 1e-9 only while the
            # condition number is below 1e-9 / (N eps) ~ 3e5.
            assert abs(10 ** (log10_max - math.log10(sv[0])) - 1) < 1e-9
            if sv[-1] == 0:
                assert log10_min == -math.inf  # a zero phi' (relu): J is singular
            elif sv[0] / sv[-1] < 1e-9 / (len(jac) * EPS64):
                assert abs(10 ** (log10_min - math.log10(sv[-1])) - 1) < 1e-9
                checked_min += 1
    assert checked_min >= 2 or activation == "relu"


@pytest.mark.parametrize("width", [1, 2, 16, 64])
def test_top_eigenvalue_is_exact_whatever_the_gap(width):
    rng = np.random.default_rng(width)
    m = rng.standard_normal((40, width, width))
    scales = np.exp(rng.uniform(-30, 30, (40, 1, 1)))
    m = m / np.sqrt(np.sum(m**2, axis=(1, 2), keepdims=True)) * scales
    m[0] = np.eye(width) / math.sqrt(width)  # every singular value equal
    m[1, :, :] = 0.0
    m[1, 0, 0] = 1.0  # one nonzero
    if width > 1:
        m[2] = np.diag(np.r_[1.0, 1.0 - 1e-12, np.ones(width - 2) * 0.5])  # a gap of 1e-12
    with jax.enable_x64(True):
        got = np.asarray(logspace.largest_singular_values_tridiagonal(jnp.asarray(m)))
        batched = np.asarray(logspace.largest_singular_values_batched(jnp.asarray(m)))
    want = np.linalg.svd(m, compute_uv=False)[:, 0]
    np.testing.assert_allclose(got, want, rtol=8 * width * EPS64)
    np.testing.assert_allclose(batched, want, rtol=8 * width * EPS64)
