"""Exact arithmetic in log space: a vector v is carried as (v_hat, log_v), v = exp(log_v) v_hat.

v_hat is of O(1) size (unit RMS in the forward pass; scaled by an exact power of two in
the backward pass) and log_v is float64, so depth 10,000 is as exact as depth 10. The
network's own arithmetic runs in the spec's dtype; only the log-scales are float64.

Axes: B probe batch, N width, S measured depths.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import activations


def unit_rows(key, shape, dtype):
    """Gaussian rows rescaled to ||row||^2 / N = 1."""
    rows = jax.random.normal(key, shape, jnp.float32)
    rows = rows / jnp.sqrt(jnp.mean(rows**2, axis=-1, keepdims=True))
    return rows.astype(dtype)


def row_rms(v):
    """Row RMS of v (..., N) and v rescaled to unit RMS (0 stays 0), reduced in float64
    so that renormalising a unit vector adds no bias however many layers repeat it."""
    v = v.astype(jnp.float64)
    peak = jnp.max(jnp.abs(v), axis=-1, keepdims=True)
    safe_peak = jnp.where(peak > 0, peak, 1)
    rms = peak[..., 0] * jnp.sqrt(jnp.mean((v / safe_peak) ** 2, axis=-1))
    unit = v / jnp.where(rms > 0, rms, 1)[..., None]
    return rms, unit


def rows_times_transpose(x, m):
    """x @ m.T for x (..., K) and a shared m (M, K).

    On XLA:CPU this orientation gives each row of x the same bits however many rows x
    has, which is what makes results independent of chunk size; x @ m does not.
    """
    return jnp.matmul(x, m.T, preferred_element_type=x.dtype)


def rows_times(x, m):
    """x @ m for a shared m (K, M), in the orientation of rows_times_transpose. The barrier
    keeps XLA from folding the transpose back into the dot."""
    return rows_times_transpose(x, jax.lax.optimization_barrier(m.T))


def log(x):
    """ln x in float64."""
    return jnp.log(x.astype(jnp.float64))


def normalise(v, log_v, dtype):
    """Splits exp(log_v) * v (..., N) into a unit-RMS vector in `dtype` and its log-scale;
    also returns ln RMS of the pair, exact (the rounded vector is unit RMS only to rounding)."""
    rms, unit = row_rms(v)
    rounded = unit.astype(dtype)
    # Charge the rounding's effect on the norm to the scale, so the pair (rounded, log)
    # has exactly v's norm; otherwise a unit vector re-normalised every layer drifts.
    rounded_rms, _ = row_rms(rounded)
    log_rms = log_v + jnp.log(rms)
    return rounded, log_rms - jnp.log(jnp.where(rms > 0, rounded_rms, 1.0)), log_rms


def layer_norm(v, log_v):
    """LayerNorm without parameters of exp(log_v) v (..., N), exactly at any scale: the
    centred rows at unit RMS (float64, zero mean; the output has no scale) and ln of each
    row's standard deviation (-inf for a constant row, whose output is 0)."""
    centred = v.astype(jnp.float64)
    centred = centred - jnp.mean(centred, axis=-1, keepdims=True)
    std, normed = row_rms(centred)
    return normed, log_v + jnp.log(std)


LAYER_NORM_EPSILON = 1e-5


def plain_layer_norm(x):
    """LayerNorm as a user's network computes it, in x's dtype, with the customary
    epsilon: (x - mean) / sqrt(var + 1e-5). Only the plain dtype pass uses it."""
    centred = x - jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.mean(centred * centred, axis=-1, keepdims=True)
    return centred / jnp.sqrt(variance + jnp.asarray(LAYER_NORM_EPSILON, x.dtype))


def project_out(rows, normed):
    """rows (..., N) times P = I - 11^T/N - y y^T/N, the LayerNorm projection at y = normed
    (N,) or broadcasting, zero mean and unit RMS: LN's Jacobian is P / std (P symmetric)."""
    width = rows.shape[-1]
    along = jnp.sum(rows * normed, axis=-1, keepdims=True) / width
    return rows - jnp.mean(rows, axis=-1, keepdims=True) - along * normed


def add_scaled(log_p, p, log_q, q, compute_dtype):
    """exp(log_p) p + exp(log_q) q, exactly, as (s, m) with the sum = exp(m) s and |s| = O(1).

    log_p, log_q: (...,) log-scales; p, q: (..., N) vectors (q may broadcast).
    """
    m = jnp.maximum(log_p, log_q)
    shift = jnp.where(jnp.isfinite(m), m, 0.0)
    weight_p = jnp.exp(log_p - shift).astype(compute_dtype)[..., None]
    weight_q = jnp.exp(log_q - shift).astype(compute_dtype)[..., None]
    return weight_p * p.astype(compute_dtype) + weight_q * q.astype(compute_dtype), m


def scaled_activation(activation: activations.Activation, h, log_h, compute_dtype):
    """phi and phi' at the pre-activation exp(log_h) h, exactly, whatever log_h is.

    Args:
      h: (B, N) pre-activations at O(1) scale; log_h: (B,) their log-scale.
    Returns:
      (v, log_v, dphi): phi(exp(log_h) h) = exp(log_v) v, with v (B, N) of O(1) scale,
      and dphi (B, N) = phi'(exp(log_h) h).
    """
    if activation.homogeneous:
        x, excess = h, log_h
    else:
        clip = activations.LOG_SCALE_CLIP
        clipped = jnp.clip(log_h, -clip, clip)
        # Outside the clip range phi is linear near 0 (keeps the scale if phi(0) = 0) or at
        # its asymptote far out (keeps the scale if phi grows), to float32 rounding.
        # A side that saturates (elu/selu to -alpha below) keeps no scale: its entries are
        # divided by the excess, and a row with nothing on the growing side keeps none.
        big = (log_h > clip) & activation.grows & jnp.any(h > 0, axis=-1)
        small = (log_h < -clip) & activation.zero_at_origin
        excess = jnp.where(big | small, log_h - clipped, 0.0)
        x = (
            jnp.exp(jnp.where(jnp.isfinite(clipped), clipped, -clip)).astype(compute_dtype)[:, None]
            * h
        )
    x = x.astype(compute_dtype)
    v, dphi = jax.jvp(activation.fn, (x,), (jnp.ones_like(x),))
    if not activation.homogeneous and activation.grows:
        saturated_side = big[:, None] & (h <= 0)
        v = jnp.where(saturated_side, v * jnp.exp(-excess).astype(compute_dtype)[:, None], v)
    return v, excess, dphi


def log_rms_over_batch(log_norm):
    """log sqrt(mean_B exp(2 log_norm)), stable; log_norm (..., B)."""
    return 0.5 * (jax.nn.logsumexp(2 * log_norm, axis=-1) - math.log(log_norm.shape[-1]))


def unit_matrix(m, log_m):
    """m (..., N, N) rescaled to unit Frobenius norm; log_m (...) takes the scale."""
    peak = jnp.max(jnp.abs(m), axis=(-2, -1))
    safe_peak = jnp.where(peak > 0, peak, 1.0)
    # No square overflows: the entries are divided by their peak first.
    norm = peak * jnp.sqrt(jnp.sum((m / safe_peak[..., None, None]) ** 2, axis=(-2, -1)))
    return m / jnp.where(norm > 0, norm, 1.0)[..., None, None], log_m + jnp.log(norm)


def one_matrix_at_a_time(fn):
    """fn of one matrix, run one matrix at a time under any number of vmaps (a lax.map
    per batch axis): batched LAPACK calls can deadlock XLA's CPU thread pool."""
    return jax.custom_batching.sequential_vmap(fn)


inverse = one_matrix_at_a_time(jnp.linalg.inv)
tridiagonal = one_matrix_at_a_time(lambda m: jax.lax.linalg.tridiagonal(m)[1:3])


def top_eigenvalue_tridiagonal(d, e):
    """The largest eigenvalue of the symmetric positive semi-definite tridiagonal matrix
    with diagonal d (..., N) and off-diagonal e (..., N-1), batched over every leading axis.

    Bisection on the Sturm count (how many eigenvalues lie below x: the negative pivots of
    T - x I), from [max d, Gershgorin bound]: an interval no wider than 2 lambda_max for a
    PSD T (e_i^2 <= d_i d_{i+1}), so 56 halvings leave it at 2^-55 lambda_max. The count
    is backward stable, so the result is exact to float64 rounding of T, whatever the gap
    between the top eigenvalues. Pure elementwise work: it batches on every backend.
    """
    e2 = e * e
    abs_e = jnp.abs(e)
    edge = jnp.zeros_like(d[..., :1])
    radius = jnp.concatenate([abs_e, edge], -1) + jnp.concatenate([edge, abs_e], -1)
    # The smallest pivot allowed (as LAPACK's dstebz): a zero pivot counts as negative.
    pivmin = jnp.finfo(d.dtype).tiny * jnp.maximum(1.0, jnp.max(e2, initial=0.0))
    diag_rest, off_rest = jnp.moveaxis(d[..., 1:], -1, 0), jnp.moveaxis(e2, -1, 0)

    def all_below(x):
        def step(pivot, entries):
            diag, off = entries
            pivot = diag - x - off / pivot
            pivot = jnp.where(jnp.abs(pivot) < pivmin, -pivmin, pivot)
            return pivot, pivot < 0

        first = d[..., 0] - x
        first = jnp.where(jnp.abs(first) < pivmin, -pivmin, first)
        _, negative = jax.lax.scan(step, first, (diag_rest, off_rest))
        return (jnp.sum(negative, 0) + (first < 0)) == d.shape[-1]

    def halve(_, bounds):
        lo, hi = bounds
        mid = lo + 0.5 * (hi - lo)
        above = all_below(mid)
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    bounds = (jnp.max(d, -1), jnp.max(d + radius, -1))
    lo, hi = jax.lax.fori_loop(0, 56, halve, bounds)
    return lo + 0.5 * (hi - lo)


def largest_singular_values_tridiagonal(m):
    """sigma_max of each m (..., N, N): the top eigenvalue of m m^T (sigma_max^2 to
    relative float64 rounding), from a LAPACK tridiagonal reduction one matrix at a time
    (safe on XLA:CPU, and a third of an eigvalsh) and a batched bisection."""
    gram = m @ jnp.swapaxes(m, -1, -2)
    flat = gram.reshape(-1, *gram.shape[-2:])  # vmapped, so one matrix at a time
    d, e = jax.vmap(tridiagonal)(flat)
    lead = gram.shape[:-2]
    return jnp.sqrt(top_eigenvalue_tridiagonal(d.reshape(*lead, -1), e.reshape(*lead, -1)))


def largest_singular_values_batched(m):
    """sigma_max of each m (..., N, N) from one batched eigvalsh of m m^T: the backend's
    batched solver (cuSOLVER on GPU, Jacobi on TPU)."""
    return jnp.sqrt(jnp.linalg.eigvalsh(m @ jnp.swapaxes(m, -1, -2))[..., -1])


LARGEST_SINGULAR_VALUES = {
    "cpu": largest_singular_values_tridiagonal,
    "gpu": largest_singular_values_batched,
    "tpu": largest_singular_values_batched,
}
"""How each backend computes sigma_max of a batch of kept matrices (network.Program.linalg)."""


def rescale_pow2(v, log_v):
    """Scales each row of v (..., N) by a power of two so its peak is in [0.5, 1): exact in
    any binary dtype, so the pair (v, log_v) keeps its value to the last bit. Cheaper than
    normalise, for the backward pass where S streams make every row count."""
    peak = jnp.max(jnp.abs(v), axis=-1)
    _, exponent = jnp.frexp(peak)
    exponent = jnp.where((peak > 0) & jnp.isfinite(peak), exponent, 0)
    # A row of zeros is exactly zero: -inf, so it never sets a shared scale.
    return jnp.ldexp(v, -exponent[..., None]).astype(v.dtype), jnp.where(
        peak > 0, log_v + exponent * math.log(2.0), -jnp.inf
    )


def log_rms(v, log_v):
    """ln of the per-row RMS of exp(log_v) v, for v (..., N)."""
    rms, _ = row_rms(v)
    return log_v + jnp.log(rms)


def relative_error(plain, v_hat, log_v):
    """||plain - v|| / ||v|| over the whole batch (Frobenius), v = exp(log_v) v_hat exact.

    plain (B, N) in any dtype, v_hat (B, N), log_v (B,). Both sides are scaled by
    exp(-max_b log_v) in float64, so v's largest probe is at unit RMS and no square
    overflows; a plain value that the scaling takes past float64 is inf, as far from v as
    it is. 0 when both are all zeros, inf when v is and plain is not; NaN when plain or v
    is not finite.
    """
    top = jnp.max(log_v)
    shift = jnp.where(jnp.isfinite(top), top, 0.0)
    exact = jnp.exp(log_v - shift)[:, None] * v_hat.astype(jnp.float64)
    plain = plain.astype(jnp.float64)
    plain = jnp.where(plain == 0, 0.0, plain * jnp.exp(-shift))
    error, _ = row_rms((plain - exact).reshape(-1))
    size, _ = row_rms(exact.reshape(-1))
    return jnp.where(error == 0, 0.0, error / size)
