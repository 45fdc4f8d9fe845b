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

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import activations, inits, logspace, names


class Scales(NamedTuple):
    """One family's weight, bias and residual branch scales, float64 scalars (the branch
    scale alpha is read by the residual blocks only)."""

    sigma_w: jax.Array
    sigma_b: jax.Array
    residual_scale: jax.Array = 1.0


class Saved(NamedTuple):
    """What the forward pass keeps of layer l for the backward pass and the Jacobian, per
    probe; a block fills the fields it needs and leaves the others None."""

    dphi: jax.Array  # (B, N) dtype: phi' at the activation's input
    branch_in: jax.Array | None = None  # (B, N) dtype: the residual branch's phi(.), unit RMS
    log_branch_in: jax.Array | None = None  # (B,) float64: its log-scale
    normed: jax.Array | None = None  # (B, N) dtype: LayerNorm's output (zero mean, unit RMS)
    log_std: jax.Array | None = None  # (B,) float64: ln of LayerNorm's input's std


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
    saved: Saved
    overflow: jax.Array  # () bool: the plain pass gave inf or NaN
    underflow: jax.Array  # () bool: the plain pass gave all zeros
    precision_loss: jax.Array  # () bool: the plain pass left the exact one (precision_lost)


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
    """The plain layer: h_l = sigma_w Ŵ_l a_{l-1} + sigma_b b̂_l, a_l = phi(h_l).

    saved_vectors, saved_scales: the (B, N) and (B,) arrays of its Saved (sweep.memory);
    per_family_inverse: its Jacobian inverts a per-family matrix every layer.
    """

    saved_vectors, saved_scales, per_family_inverse = 1, 0, False

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
        dtype = jnp.dtype(program.dtype)
        # Exact, in log space: h = sigma_w Ŵ a + sigma_b b̂; and what the dtype itself does,
        # a plain pass beside it, for overflow and underflow.
        h, log_h = affine(a_hat, log_a, scales, weights, program.compute_dtype)
        raw_pre = plain_affine(raw, scales, weights)
        v, log_v, dphi, raw = activate(program, activation_index, h, log_h, raw_pre)
        a_hat, log_a, log_norm = logspace.normalise(v, log_v, dtype)
        return _output(a_hat, log_a, log_norm, raw, Saved(dphi.astype(dtype)))

    def jacobian(self, jac: Jacobian, scales: Scales, weights: Weights, saved0) -> Jacobian:
        """J <- D_l W_l J and J^-1 <- J^-1 W_l^-1 D_l^-1, with D_l = diag(saved0.dphi (N,)),
        saved0 the layer's Saved at probe 0.

        Both are rows times a matrix, so no family's bits depend on its chunk when the
        weights are shared (independent draws: float64 products that may differ by an ulp
        with the chunk, which never feed back into the float32 state).
        """
        d0 = saved0.dphi.astype(jnp.float64)
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

    def backward(self, g_hat, log_g, a_prev_hat, log_a_prev, saved, scales, weights, program):
        """Layer l of every stream of one family, unmasked (the scan masks dead streams).

        Args:
          g_hat (S, B, N), log_g (S, B): dℓ/da_l; a_prev_hat (B, N), log_a_prev (B,):
            a_{l-1}; saved: the layer's Saved, saved.dphi (B, N) = phi'(h_l).
        Returns:
          (g_hat, log_g): dℓ/da_{l-1}, and log_grad (S,): ln ||dℓ/dW_l||_F.
        """
        compute_dtype = program.compute_dtype
        delta, log_delta = logspace.rescale_pow2(
            saved.dphi[None].astype(compute_dtype) * g_hat.astype(compute_dtype), log_g
        )
        log_grad = weight_gradient_log_norm(delta, log_delta, a_prev_hat, log_a_prev)
        g_prev = logspace.rows_times(delta, weights.w_hat.astype(compute_dtype))
        g_hat, log_g = logspace.rescale_pow2(
            g_prev.astype(g_hat.dtype), log_delta + logspace.log(scales.sigma_w)
        )
        return g_hat, log_g, log_grad

    def plain(self, x, w, b, alpha, act, linear):
        """The layer in plain arithmetic (the dtype pass; training): phi(x W^T + b)."""
        return act(linear(x, w, b))


def affine(u_hat, log_u, scales: Scales, weights: Weights, compute_dtype):
    """sigma_w Ŵ u + sigma_b b̂ for u = exp(log_u) u_hat (B, N), exactly: (h, log_h)."""
    w_hat, b_hat = weights
    z = logspace.rows_times_transpose(u_hat.astype(compute_dtype), w_hat.astype(compute_dtype))
    log_b = jnp.broadcast_to(logspace.log(scales.sigma_b), log_u.shape)
    return logspace.add_scaled(log_u + logspace.log(scales.sigma_w), z, log_b, b_hat, compute_dtype)


def plain_affine(x, scales: Scales, weights: Weights):
    """sigma_w Ŵ x + sigma_b b̂ in x's dtype: the plain pass, as a user's network computes it."""
    dtype = x.dtype
    w = jnp.asarray(scales.sigma_w, dtype) * weights.w_hat.astype(dtype)
    return logspace.rows_times_transpose(x, w) + jnp.asarray(scales.sigma_b, dtype) * weights.b_hat


def activate(program, activation_index, h, log_h, raw_in):
    """The program's activation (picked by index) at exp(log_h) h, exactly, and at raw_in
    in its dtype: (v, log_v, dphi, phi(raw_in))."""
    compute_dtype = program.compute_dtype

    def branch(name):
        act = activations.get(name)

        def apply(h, log_h, raw_in):
            scaled = logspace.scaled_activation(act, h, log_h, compute_dtype)
            return (*scaled, act.fn(raw_in).astype(raw_in.dtype))

        return apply

    return select(program.activations, activation_index, branch)(h, log_h, raw_in)


def _output(a_hat, log_a, log_norm, raw, saved: Saved) -> LayerOutput:
    overflow = ~jnp.all(jnp.isfinite(raw))
    underflow = jnp.all(raw == 0)
    lost = precision_lost(raw, a_hat, log_a, log_norm)
    return LayerOutput(a_hat, log_a, log_norm, raw, saved, overflow, underflow, lost)


PRECISION_LOSS_THRESHOLD = 1e-2
"""The relative error of the plain dtype pass that counts as precision loss (README)."""


def precision_lost(raw, a_hat, log_a, log_norm):
    """Whether the plain dtype pass raw (B, N) has left the exact a_l = exp(log_a) a_hat:
    a relative error (batch Frobenius) above PRECISION_LOSS_THRESHOLD, or inf or NaN, or
    either pass's RMS over the batch in (0, tiny), the dtype's subnormal range (log_norm
    (B,): the exact ln RMS of each probe)."""
    log_tiny = math.log(float(jnp.finfo(raw.dtype).tiny))
    error = logspace.relative_error(raw, a_hat, log_a)
    log_exact = logspace.log_rms_over_batch(log_norm)
    plain_rms, _ = logspace.row_rms(raw.reshape(-1))
    subnormal = jnp.isfinite(log_exact) & (log_exact < log_tiny)
    subnormal |= (plain_rms > 0) & (jnp.log(plain_rms) < log_tiny)
    return ~(error <= PRECISION_LOSS_THRESHOLD) | subnormal


def weight_gradient_log_norm(delta, log_delta, a_hat, log_a):
    """ln ||Σ_b exp(log_delta_b + log_a_b) delta_b a_b^T||_F for every stream: delta (S, B, N),
    log_delta (S, B), a_hat (B, N), log_a (B,)."""
    # ||Σ_b δ_b a_b^T||_F² = Σ_bc (w_b δ_b)·(w_c δ_c) (a_b·a_c): B x B Gram matrices, never
    # an N x N gradient. Both products are per family, so XLA may compute them
    # differently for another number of families (a batch of one becomes an unbatched
    # dot): they run in float64, where that is a few ulps of bookkeeping and never
    # touches the float32 state. (The Gram is a matmul, not a broadcast product summed
    # over N: XLA:CPU in jax 0.10.2 miscompiles that sum for a single family with
    # B·N >= 512, wrong by O(1).)
    coeff = log_delta + log_a[None]
    top = jnp.max(coeff, axis=-1, keepdims=True)
    weights_b = jnp.exp(coeff - jnp.where(jnp.isfinite(top), top, 0.0))
    a = a_hat.astype(jnp.float64)
    gram_a = logspace.rows_times_transpose(a, a)
    weighted = delta.astype(jnp.float64) * weights_b[..., None]  # (S, B, N)
    n_streams, batch, width = weighted.shape
    by_sample = jnp.swapaxes(weighted, 1, 2).reshape(n_streams * width, batch)
    mixed = logspace.rows_times_transpose(by_sample, gram_a).reshape(n_streams, width, batch)
    mixed = jnp.swapaxes(mixed, 1, 2)
    frob_sq = jnp.sum(weighted * mixed, axis=(-2, -1))
    return top[:, 0] + 0.5 * jnp.log(jnp.maximum(frob_sq, 0))


class DenseLayerNorm(Dense):
    """The plain layer with LayerNorm (no learned parameters) before the activation:
    h_l = sigma_w Ŵ_l a_{l-1} + sigma_b b̂_l, a_l = phi(LN(h_l)). LN projects out the mean
    and the normalised direction, so the input-output Jacobian is singular (sigma_min = 0)."""

    saved_vectors, saved_scales = 2, 1

    def forward(self, a_hat, log_a, raw, scales, weights, activation_index, program):
        dtype, compute_dtype = jnp.dtype(program.dtype), program.compute_dtype
        h, log_h = affine(a_hat, log_a, scales, weights, compute_dtype)
        normed, log_std = logspace.layer_norm(h, log_h)
        pre = normed.astype(compute_dtype)
        raw_in = logspace.plain_layer_norm(plain_affine(raw, scales, weights))
        zero = jnp.zeros_like(log_a)
        v, log_v, dphi, raw = activate(program, activation_index, pre, zero, raw_in)
        a_hat, log_a, log_norm = logspace.normalise(v, log_v, dtype)
        saved = Saved(dphi.astype(dtype), normed=pre, log_std=log_std)
        return _output(a_hat, log_a, log_norm, raw, saved)

    def jacobian(self, jac, scales, weights, saved0):
        """J <- D_l (P_l / std_l) W_l J, P_l the LayerNorm projection; J^-1 does not exist."""
        d0 = saved0.dphi.astype(jnp.float64)
        w64 = weights.w_hat.astype(jnp.float64)
        rows = logspace.project_out(
            logspace.rows_times_transpose(jac.jac_t, w64), saved0.normed.astype(jnp.float64)
        )
        jac_t, log_jac = logspace.unit_matrix(
            rows * d0[None, :], jac.log_jac + logspace.log(scales.sigma_w) - saved0.log_std
        )
        return Jacobian(jac_t, log_jac, jac.inv, jac.log_inv, jnp.ones((), bool))

    def backward(self, g_hat, log_g, a_prev_hat, log_a_prev, saved, scales, weights, program):
        compute_dtype = program.compute_dtype
        delta_y = saved.dphi[None].astype(jnp.float64) * g_hat.astype(jnp.float64)
        delta = logspace.project_out(delta_y, saved.normed[None].astype(jnp.float64))
        delta, log_delta = logspace.rescale_pow2(
            delta.astype(compute_dtype), log_g - saved.log_std[None]
        )
        log_grad = weight_gradient_log_norm(delta, log_delta, a_prev_hat, log_a_prev)
        g_prev = logspace.rows_times(delta, weights.w_hat.astype(compute_dtype))
        g_hat, log_g = logspace.rescale_pow2(
            g_prev.astype(g_hat.dtype), log_delta + logspace.log(scales.sigma_w)
        )
        return g_hat, log_g, log_grad

    def plain(self, x, w, b, alpha, act, linear):
        return act(logspace.plain_layer_norm(linear(x, w, b)))


class Residual(Dense):
    """The reduced residual block (Yang & Schoenholz 2017): the stream
    x_l = x_{l-1} + alpha (sigma_w Ŵ_l phi(x_{l-1}) + sigma_b b̂_l), x_0 the input; with
    prenorm, phi(LN(x_{l-1})) (the pre-LayerNorm residual MLP, LN without parameters).
    The "activation" of layer l is the stream x_l. The sum is formed in float64 from the
    two (vector, log-scale) pairs and rounded to the dtype at unit RMS, its scale exact."""

    saved_vectors, saved_scales, per_family_inverse = 2, 1, True

    def __init__(self, prenorm: bool):
        self.prenorm = prenorm
        if prenorm:
            self.saved_vectors, self.saved_scales = 3, 2

    def forward(self, a_hat, log_a, raw, scales, weights, activation_index, program):
        dtype, compute_dtype = jnp.dtype(program.dtype), program.compute_dtype
        if self.prenorm:
            normed, log_std = logspace.layer_norm(a_hat, log_a)
            pre, log_pre = normed.astype(compute_dtype), jnp.zeros_like(log_a)
            raw_in = logspace.plain_layer_norm(raw)
        else:
            pre, log_pre, raw_in, log_std = a_hat, log_a, raw, None
        v, log_v, dphi, raw_act = activate(program, activation_index, pre, log_pre, raw_in)
        u_hat, log_u, _ = logspace.normalise(v, log_v, dtype)
        branch, log_branch = affine(u_hat, log_u, scales, weights, compute_dtype)
        log_alpha = logspace.log(jnp.asarray(scales.residual_scale))
        total, log_total = logspace.add_scaled(
            log_a, a_hat, log_branch + log_alpha, branch, jnp.float64
        )
        a_hat, log_a, log_norm = logspace.normalise(total, log_total, dtype)
        alpha = jnp.asarray(scales.residual_scale, raw.dtype)
        raw = raw + alpha * plain_affine(raw_act, scales, weights)
        saved = Saved(
            dphi.astype(dtype),
            u_hat,
            log_u,
            pre if self.prenorm else None,
            log_std,
        )
        return _output(a_hat, log_a, log_norm, raw, saved)

    def _branch_coefficient(self, scales, saved):
        """ln of the factor before Ŵ D (P) in the layer's Jacobian: alpha sigma_w (/ std)."""
        log_c = logspace.log(jnp.asarray(scales.residual_scale)) + logspace.log(scales.sigma_w)
        return log_c - saved.log_std if self.prenorm else log_c

    def jacobian(self, jac, scales, weights, saved0):
        """J <- M_l J and J^-1 <- J^-1 M_l^-1, M_l = I + alpha sigma_w Ŵ_l D_l (P_l / std_l):
        a per-family matrix, so its inverse is one LU per family and layer."""
        d0 = saved0.dphi.astype(jnp.float64)
        w64 = weights.w_hat.astype(jnp.float64)
        coefficient = jnp.exp(self._branch_coefficient(scales, saved0))
        rows = jac.jac_t
        if self.prenorm:
            rows = logspace.project_out(rows, saved0.normed.astype(jnp.float64))
        # J^T <- J^T M^T = J^T + c (J^T P) D Ŵ^T
        step = jac.jac_t + coefficient * logspace.rows_times_transpose(rows * d0[None, :], w64)
        jac_t, log_jac = logspace.unit_matrix(step, jac.log_jac)
        w_d = w64 * d0[None, :]
        if self.prenorm:
            w_d = logspace.project_out(w_d, saved0.normed.astype(jnp.float64))
        eye = jnp.eye(w64.shape[-1], dtype=jnp.float64)
        inverse = logspace.inverse(eye + coefficient * w_d)
        singular = jac.singular | ~jnp.all(jnp.isfinite(inverse))
        inv, log_inv = logspace.unit_matrix(
            jnp.where(singular, eye, logspace.rows_times(jac.inv, inverse)), jac.log_inv
        )
        return Jacobian(jac_t, log_jac, inv, log_inv, singular)

    def backward(self, g_hat, log_g, a_prev_hat, log_a_prev, saved, scales, weights, program):
        """g_{l-1} = g_l + alpha (P / std) D sigma_w Ŵ^T g_l; ||dℓ/dW_l|| = alpha ||g_l u^T||."""
        compute_dtype = program.compute_dtype
        log_alpha = logspace.log(jnp.asarray(scales.residual_scale))
        log_grad = log_alpha + weight_gradient_log_norm(
            g_hat, log_g, saved.branch_in, saved.log_branch_in
        )
        back = logspace.rows_times(g_hat.astype(compute_dtype), weights.w_hat.astype(compute_dtype))
        back = back.astype(jnp.float64) * saved.dphi[None].astype(jnp.float64)
        log_back = log_g + self._branch_coefficient(scales, saved)[None]
        if self.prenorm:
            back = logspace.project_out(back, saved.normed[None].astype(jnp.float64))
        total, log_total = logspace.add_scaled(log_g, g_hat, log_back, back, jnp.float64)
        g_hat, log_g, _ = logspace.normalise(total, log_total, g_hat.dtype)
        return g_hat, log_g, log_grad

    def plain(self, x, w, b, alpha, act, linear):
        inner = logspace.plain_layer_norm(x) if self.prenorm else x
        return x + alpha * linear(act(inner), w, b)


BLOCKS = {
    "mlp": Dense(),
    "resnet": Residual(prenorm=False),
    "resnet_prenorm": Residual(prenorm=True),
    "mlp_layernorm": DenseLayerNorm(),
}
assert tuple(BLOCKS) == names.ARCHITECTURES
