"""The layers a network is made of, each a small object the scans in sweep.network call.

A block says, for one layer l of one family (one config under independent draws):
- draw: its unit-scale weights, from the family's keys and l (W = sigma_w Ŵ, b = sigma_b b̂);
- forward: a_{l-1} -> a_l, exactly in log space, with the plain-dtype pass beside it;
- jacobian: J_{l-1} -> J_l at probe 0, and its inverse, as unit matrices and log-scales;
- backward: dℓ/da_l -> dℓ/da_{l-1} for every stream, and ||dℓ/dW_l||_F.
The scans own the masking of streams, the measured depths and the batching; a block
knows nothing of them. A new architecture is one more entry in BLOCKS.

Axes: B probe batch, N width, S streams (measured depths).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import activations, inits, logspace


class Scales(NamedTuple):
    """One family's weight and bias scales, float64 scalars."""

    sigma_w: jax.Array
    sigma_b: jax.Array


class Weights(NamedTuple):
    """One layer's unit-scale weights: Ŵ (N, N) and b̂ (N,), in the spec's dtype."""

    w_hat: jax.Array
    b_hat: jax.Array


class LayerOutput(NamedTuple):
    """What the forward pass keeps of layer l."""

    a_hat: jax.Array  # (B, N) dtype: a_l at unit RMS
    log_a: jax.Array  # (B,) float64: its log-scale, a_l = exp(log_a) a_hat
    log_norm: jax.Array  # (B,) float64: ln(||a_l|| / sqrt(N)), exact
    raw: jax.Array  # (B, N) dtype: the plain dtype pass, for overflow and underflow
    dphi: jax.Array  # (B, N) dtype: phi'(h_l)
    overflow: jax.Array  # () bool: the plain pass gave inf or NaN
    underflow: jax.Array  # () bool: the plain pass gave all zeros


class Jacobian(NamedTuple):
    """The input-output Jacobian J at probe 0 and its inverse, each a unit-norm matrix and
    a log-scale, so sigma_max(J) and 1/sigma_max(J^-1) stay exact however ill-conditioned
    J becomes."""

    jac_t: jax.Array  # (N, N) float64: J^T at unit Frobenius norm
    log_jac: jax.Array  # () float64
    inv: jax.Array  # (N, N) float64: J^-1 at unit Frobenius norm
    log_inv: jax.Array  # () float64
    singular: jax.Array  # () bool: some layer's Jacobian was singular (J^-1 is void)


def select(names: tuple[str, ...], index, make):
    """make(name) for names[index]: direct for one name, else a lax.switch on index (an
    unbatched run-time choice: only the picked branch runs)."""
    if len(names) == 1:
        return make(names[0])
    branches = [make(name) for name in names]
    return lambda *args: jax.lax.switch(index, branches, *args)


class Dense:
    """The plain layer: h_l = sigma_w Ŵ_l a_{l-1} + sigma_b b̂_l, a_l = phi(h_l)."""

    def draw(self, keys, layer, program) -> Weights:
        """Ŵ_l, b̂_l of layer `layer` (1-based) from keys (network.Keys). They are drawn in
        float32 and rounded to the spec's dtype, so the float16, bfloat16, float32 and
        float64 runs of a config are the same network, rounded."""
        sample = select(
            program.inits,
            keys.init_index,
            lambda name: lambda key: inits.get(name)(key, program.width, jnp.float32),
        )
        dtype = jnp.dtype(program.dtype)
        w_hat = sample(jax.random.fold_in(keys.weight, layer)).astype(dtype)
        bias_key = jax.random.fold_in(keys.bias, layer)
        b_hat = jax.random.normal(bias_key, (program.width,), jnp.float32).astype(dtype)
        return Weights(w_hat, b_hat)

    def forward(
        self, a_hat, log_a, raw, scales: Scales, weights: Weights, activation_index, program
    ):
        """Layer l of one family: a_hat (B, N), log_a (B,), raw (B, N) -> LayerOutput."""
        dtype, compute_dtype = jnp.dtype(program.dtype), program.compute_dtype
        w_hat, b_hat = weights
        # Exact, in log space: h = sigma_w Ŵ a + sigma_b b̂.
        z = logspace.rows_times_transpose(a_hat.astype(compute_dtype), w_hat.astype(compute_dtype))
        log_b = jnp.broadcast_to(logspace.log(scales.sigma_b), log_a.shape)
        h, log_h = logspace.add_scaled(
            log_a + logspace.log(scales.sigma_w), z, log_b, b_hat, compute_dtype
        )
        # What the dtype itself does: a plain pass beside it, for overflow and underflow.
        w = jnp.asarray(scales.sigma_w, dtype) * w_hat
        raw_pre = logspace.rows_times_transpose(raw, w) + jnp.asarray(scales.sigma_b, dtype) * b_hat

        def branch(name):
            act = activations.get(name)

            def apply(h, log_h, raw_pre):
                scaled = logspace.scaled_activation(act, h, log_h, compute_dtype)
                return (*scaled, act.fn(raw_pre).astype(dtype))

            return apply

        apply = select(program.activations, activation_index, branch)
        v, log_v, dphi, raw = apply(h, log_h, raw_pre)
        a_hat, log_a, log_norm = logspace.normalise(v, log_v, dtype)
        overflow = ~jnp.all(jnp.isfinite(raw))
        underflow = jnp.all(raw == 0)
        return LayerOutput(a_hat, log_a, log_norm, raw, dphi.astype(dtype), overflow, underflow)

    def jacobian(self, jac: Jacobian, scales: Scales, weights: Weights, dphi0) -> Jacobian:
        """J <- D_l W_l J and J^-1 <- J^-1 W_l^-1 D_l^-1, with D_l = diag(dphi0 (N,)).

        Both are rows times a matrix, so no family's bits depend on its chunk when the
        weights are shared (independent draws: float64 products that may differ by an ulp
        with the chunk, which never feed back into the float32 state).
        """
        d0 = dphi0.astype(jnp.float64)
        log_sigma_w = logspace.log(scales.sigma_w)
        w64 = weights.w_hat.astype(jnp.float64)
        # jac_t holds J^T: J^T <- J^T W^T D.
        jac_t, log_jac = logspace.unit_matrix(
            logspace.rows_times_transpose(jac.jac_t, w64) * d0[None, :], jac.log_jac + log_sigma_w
        )
        singular = jac.singular | jnp.any(d0 == 0) | (scales.sigma_w == 0)
        inv_step = logspace.rows_times(jac.inv, logspace.inverse(w64))
        inv_step = inv_step / jnp.where(d0 == 0, 1.0, d0)[None, :]
        eye = jnp.eye(w64.shape[-1], dtype=jnp.float64)
        inv, log_inv = logspace.unit_matrix(
            jnp.where(singular, eye, inv_step), jac.log_inv - log_sigma_w
        )
        return Jacobian(jac_t, log_jac, inv, log_inv, singular)

    def backward(self, g_hat, log_g, a_prev_hat, log_a_prev, dphi, scales, weights, program):
        """Layer l of every stream of one family, unmasked (the scan masks dead streams).

        Args:
          g_hat (S, B, N), log_g (S, B): dℓ/da_l; a_prev_hat (B, N), log_a_prev (B,):
            a_{l-1}; dphi (B, N): phi'(h_l).
        Returns:
          (g_hat, log_g): dℓ/da_{l-1}, and log_grad (S,): ln ||dℓ/dW_l||_F.
        """
        compute_dtype = program.compute_dtype
        delta, log_delta = logspace.rescale_pow2(
            dphi[None].astype(compute_dtype) * g_hat.astype(compute_dtype), log_g
        )
        # ||Σ_b δ_b a_b^T||_F² = Σ_bc (w_b δ_b)·(w_c δ_c) (a_b·a_c): B x B Gram matrices, never
        # an N x N gradient. Both products are per family, so XLA may compute them
        # differently for another number of families (a batch of one becomes an unbatched
        # dot): they run in float64, where that is a few ulps of bookkeeping and never
        # touches the float32 state. (The Gram is a matmul, not a broadcast product summed
        # over N: XLA:CPU in jax 0.10.2 miscompiles that sum for a single family with
        # B·N >= 512, wrong by O(1).)
        coeff = log_delta + log_a_prev[None]
        top = jnp.max(coeff, axis=-1, keepdims=True)
        weights_b = jnp.exp(coeff - jnp.where(jnp.isfinite(top), top, 0.0))
        a_prev = a_prev_hat.astype(jnp.float64)
        gram_a = logspace.rows_times_transpose(a_prev, a_prev)
        weighted = delta.astype(jnp.float64) * weights_b[..., None]  # (S, B, N)
        n_streams, batch, width = weighted.shape
        by_sample = jnp.swapaxes(weighted, 1, 2).reshape(n_streams * width, batch)
        mixed = logspace.rows_times_transpose(by_sample, gram_a).reshape(n_streams, width, batch)
        mixed = jnp.swapaxes(mixed, 1, 2)
        frob_sq = jnp.sum(weighted * mixed, axis=(-2, -1))
        log_grad = top[:, 0] + 0.5 * jnp.log(jnp.maximum(frob_sq, 0))

        g_prev = logspace.rows_times(delta, weights.w_hat.astype(compute_dtype))
        g_hat, log_g = logspace.rescale_pow2(
            g_prev.astype(g_hat.dtype), log_delta + logspace.log(scales.sigma_w)
        )
        return g_hat, log_g, log_grad


BLOCKS = {"mlp": Dense()}
