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


@one_matrix_at_a_time
def largest_singular_value(m):
    """sigma_max of m (N, N): the top eigenvalue of m m^T is sigma_max^2 to relative
    float64 rounding, and eigvalsh costs less than an SVD."""
    return jnp.sqrt(jnp.linalg.eigvalsh(m @ m.T)[-1])


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
