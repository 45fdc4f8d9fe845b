"""One family of networks, as pure functions: every measured depth of one config.

A *family* is every config that shares (width, init, activation, seed, sigma_w, sigma_b)
and differs only in depth. Because a layer's weights come from a key of (root seed,
seed, width, init, layer), a depth-d network is exactly the first d layers of the
deepest one. So one forward pass to the deepest depth L yields every depth's forward
metrics, and the backward passes of all depths run together, one stream per depth,
through a couple of reverse scans (depth_groups).

Everything is in log space: a vector v is carried as (v_hat, log_v) with
v = exp(log_v) * v_hat and v_hat of O(1) size (unit RMS in the forward pass; rescaled by
an exact power of two in the backward pass), so depth 10,000 is as exact as depth 10.
Log-scales are float64; the network's own arithmetic is in the spec's dtype.

With draws = "independent" (Bucket.draws) nothing is shared: each family is one config,
whose weights, probe and cotangents come from a key of all its axis values (config_keys),
measured at its own depth (a runtime input, depth <= L); it costs what evaluating every
config on its own costs.

Axes: B probe batch, N width, L layers (the deepest depth), S measured depths, F families.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from . import activations, inits

TAG_PROBE, TAG_COTANGENT, TAG_TARGET, TAG_BIAS, TAG_INDEPENDENT = 1, 2, 3, 4, 5
LN10 = math.log(10.0)


@dataclasses.dataclass(frozen=True)
class Bucket:
    """Everything that fixes the compiled program's shapes and code (all static).

    depths: the measured depths, sorted ascending; the deepest is the scan length L.
      With draws = "independent", depths = (L,) and each family's own depth is an input.
    init, activation: a name; or, in a *program* bucket (engine.program_of), a tuple of
      names: one compiled program serves chunks of any of them, picked at run time by
      an index (lax.switch on an unbatched index: only the picked branch runs).
    draws: "shared" (common random numbers, the default) or "independent".
    """

    width: int
    init: str
    activation: str
    dtype: str
    batch: int
    loss: str
    depths: tuple[int, ...]
    draws: str = "shared"

    @property
    def independent(self) -> bool:
        return self.draws == "independent"

    @property
    def max_depth(self) -> int:
        return self.depths[-1]

    @property
    def compute_dtype(self):
        return jnp.promote_types(jnp.dtype(self.dtype), jnp.float32)


def family_keys(root_key, seed, width: int, init, init_index=0):
    """Keys that depend only on (root seed, seed, width[, init]), never on a config's position.
    init: a name, or a tuple of names and init_index picks one at run time."""
    return _keys(jax.random.fold_in(jax.random.fold_in(root_key, seed), width), init, init_index)


def config_keys(root_key, words, init, init_index=0):
    """One config's own keys (draws = "independent"), from words (2,) uint32: the 64 bits of
    its config_id (engine.config_words), so they depend on every axis value, depth too."""
    base = jax.random.fold_in(
        jax.random.fold_in(jax.random.fold_in(root_key, TAG_INDEPENDENT), words[0]), words[1]
    )
    return _keys(base, init, init_index)


def _keys(base, init, init_index=0):
    names = _choices(init)
    code = (
        inits.init_code(names[0])
        if len(names) == 1
        else jnp.asarray([inits.init_code(n) for n in names], jnp.uint32)[init_index]
    )
    return {
        "init_index": jnp.asarray(init_index, jnp.int32),
        "weight": jax.random.fold_in(base, code),
        "bias": jax.random.fold_in(base, TAG_BIAS),
        "probe": jax.random.fold_in(base, TAG_PROBE),
        "cotangent": jax.random.fold_in(base, TAG_COTANGENT),
        "target": jax.random.fold_in(base, TAG_TARGET),
    }


def _choices(names) -> tuple[str, ...]:
    return names if isinstance(names, tuple) else (names,)


def _select(names, index, make):
    """The function make(name) for names[index]: direct for one name, else a lax.switch."""
    names = _choices(names)
    if len(names) == 1:
        return make(names[0])
    branches = [make(name) for name in names]
    return lambda *args: jax.lax.switch(index, branches, *args)


def layer_weights(keys, layer, bucket: Bucket):
    """Unit-scale Ŵ (N, N) and b̂ (N,) of layer `layer` (1-based); W = sigma_w Ŵ, b = sigma_b b̂."""
    dtype = jnp.dtype(bucket.dtype)
    sample = _select(
        bucket.init,
        keys["init_index"],
        lambda name: lambda key: inits.get(name)(key, bucket.width, dtype),
    )
    w_hat = sample(jax.random.fold_in(keys["weight"], layer))
    b_hat = jax.random.normal(jax.random.fold_in(keys["bias"], layer), (bucket.width,), dtype)
    return w_hat, b_hat


def _unit_rows(key, shape, dtype):
    """Gaussian rows rescaled to ||row||^2 / N = 1."""
    rows = jax.random.normal(key, shape, jnp.float32)
    rows = rows / jnp.sqrt(jnp.mean(rows**2, axis=-1, keepdims=True))
    return rows.astype(dtype)


def probe_inputs(keys, bucket: Bucket):
    """Probe inputs x (B, N) with ||x||^2 / N = 1 exactly up to the dtype's rounding."""
    return _unit_rows(keys["probe"], (bucket.batch, bucket.width), jnp.dtype(bucket.dtype))


def _rms(v):
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


def _log(x):
    return jnp.log(x.astype(jnp.float64))


def normalise(v, log_v, dtype):
    """Splits exp(log_v) * v (..., N) into a unit-RMS vector in `dtype` and its log-scale;
    also returns ln RMS of the pair, exact (the rounded vector is unit RMS only to rounding)."""
    rms, unit = _rms(v)
    rounded = unit.astype(dtype)
    # Charge the rounding's effect on the norm to the scale, so the pair (rounded, log)
    # has exactly v's norm; otherwise a unit vector re-normalised every layer drifts.
    rounded_rms, _ = _rms(rounded)
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


def _log_rms_over_batch(log_norm):
    """log sqrt(mean_B exp(2 log_norm)), stable; log_norm (..., B)."""
    return 0.5 * (jax.nn.logsumexp(2 * log_norm, axis=-1) - math.log(log_norm.shape[-1]))


def _forward_one(
    a_hat, log_a, raw, sigma_w, sigma_b, w_hat, b_hat, activation_index, bucket: Bucket
):
    """One layer of one family. a_hat (B, N), log_a (B,), raw (B, N); Ŵ (N, N), b̂ (N,)."""
    dtype, compute_dtype = jnp.dtype(bucket.dtype), bucket.compute_dtype
    # Exact, in log space: h = sigma_w Ŵ a + sigma_b b̂.
    z = rows_times_transpose(a_hat.astype(compute_dtype), w_hat.astype(compute_dtype))
    log_b = jnp.broadcast_to(_log(sigma_b), log_a.shape)
    h, log_h = add_scaled(log_a + _log(sigma_w), z, log_b, b_hat, compute_dtype)
    # What the dtype itself does: a plain pass beside it, for overflow and underflow.
    w = jnp.asarray(sigma_w, dtype) * w_hat
    raw_pre = rows_times_transpose(raw, w) + jnp.asarray(sigma_b, dtype) * b_hat

    def branch(name):
        act = activations.get(name)
        return lambda h, log_h, raw_pre: (
            *scaled_activation(act, h, log_h, compute_dtype),
            act.fn(raw_pre).astype(dtype),
        )

    v, log_v, dphi, raw = _select(bucket.activation, activation_index, branch)(h, log_h, raw_pre)
    a_hat, log_a, log_norm = normalise(v, log_v, dtype)
    overflow = ~jnp.all(jnp.isfinite(raw))
    underflow = jnp.all(raw == 0)
    return a_hat, log_a, log_norm, raw, dphi.astype(dtype), overflow, underflow


def _unit_matrices(m, log_m):
    """Rescales each matrix of m (F, N, N) to unit Frobenius norm; log_m (F,) takes the scale."""
    peak = jnp.max(jnp.abs(m), axis=(-2, -1))
    safe_peak = jnp.where(peak > 0, peak, 1.0)
    norm = peak * jnp.sqrt(
        jnp.sum((m / safe_peak[:, None, None]) ** 2, axis=(-2, -1))
    )  # no square overflows
    ok = norm > 0
    return m / jnp.where(ok, norm, 1.0)[:, None, None], log_m + jnp.log(norm)


def _largest_singular_values(m):
    """sigma_max of each matrix in m (F, N, N). lax.map, not vmap: batched LAPACK calls
    can deadlock XLA's CPU thread pool."""
    # The top eigenvalue of m m^T is sigma_max^2 to relative float64 rounding, and eigvalsh
    # costs less than an SVD.
    return jax.lax.map(lambda one: jnp.sqrt(jnp.linalg.eigvalsh(one @ one.T)[-1]), m)


def forward(sigma_w, sigma_b, keys, bucket: Bucket, depth=None, activation_index=0):
    """Forward pass of F families to the deepest depth, in log space, with a plain dtype
    pass beside it. The families share every weight matrix: it is drawn once per layer
    (independent draws: each family draws its own).

    Args:
      sigma_w, sigma_b: (F,); keys: from family_keys (independent: config_keys, each
        leaf (F,)); depth: independent draws only, (F,) each family's measured depth;
        activation_index: which of bucket.activation, when it is a tuple.
    Returns a dict of:
      a_hat (F, L+1, B, N), log_a (F, L+1, B): activations a_l = exp(log_a) a_hat, l = 0..L;
      log_norm (F, L+1, B): ln(||a_l|| / sqrt(N)) per probe, exact (a_hat is unit RMS only
        up to its rounding to the dtype, which log_a alone would miss);
      dphi (F, L, B, N): phi'(h_l);
      log_jac_sv (F, S, 2): ln of the largest and smallest singular values of the
        input-output Jacobian at probe 0, at each measured depth;
      overflow (F, L), underflow (F, L): the plain dtype pass gave inf/NaN, or all zeros.
    """
    n_families, n, n_depths = sigma_w.shape[0], bucket.width, len(bucket.depths)
    log_sigma_w = _log(sigma_w)
    own = 0 if bucket.independent else None  # the weights' vmap axis: per family, or shared
    x = (
        jax.vmap(probe_inputs, (own, None))(keys, bucket)
        if bucket.independent
        else probe_inputs(keys, bucket)
    )
    x_hat, log_x, log_norm_x = normalise(
        x, jnp.zeros(x.shape[:-1], jnp.float64), jnp.dtype(bucket.dtype)
    )
    layer_step = jax.vmap(
        functools.partial(_forward_one, bucket=bucket), in_axes=(0, 0, 0, 0, 0, own, own, None)
    )
    draw = functools.partial(_draw_layer, keys, bucket=bucket)
    # Where layer l's Jacobian is kept: its depth's slot, or a scratch slot past the end.
    slot_of_layer = np.full(bucket.max_depth, n_depths)
    slot_of_layer[np.asarray(bucket.depths) - 1] = np.arange(n_depths)

    def step(carry, xs):
        a_hat, log_a, raw, jac_t, log_jac, inv, log_inv, singular, kept = carry
        layer, slot = xs
        w_hat, b_hat = draw(layer)
        a_hat, log_a, log_norm, raw, dphi, overflow, underflow = layer_step(
            a_hat, log_a, raw, sigma_w, sigma_b, w_hat, b_hat, activation_index
        )

        # Jacobian at probe 0, J = D_l W_l ... D_1 W_1, and its inverse, each kept as a
        # unit-norm matrix and a log-scale: sigma_max(J) and 1/sigma_max(J^-1) are then
        # exact to rounding however ill-conditioned J becomes. Both are updated as rows
        # times a shared matrix, so no family's bits depend on the chunk (with independent
        # draws each family's own: float64 products that may differ by an ulp with it).
        # jac_t holds J^T: J^T <- J^T W^T D.
        d0 = dphi[:, 0].astype(jnp.float64)
        w64 = w_hat.astype(jnp.float64)
        times_transpose, times = (
            (jax.vmap(f) for f in (rows_times_transpose, rows_times))
            if bucket.independent
            else (rows_times_transpose, rows_times)
        )
        jac_t, log_jac = _unit_matrices(
            times_transpose(jac_t, w64) * d0[:, None, :], log_jac + log_sigma_w
        )
        singular = singular | jnp.any(d0 == 0, axis=-1) | (sigma_w == 0)
        # inv <- inv W^-1 D^-1, with W^-1 inverted once for all families (independent: once
        # per family, in lax.map: batched LAPACK calls can deadlock XLA's CPU thread pool).
        w_inv = jax.lax.map(jnp.linalg.inv, w64) if bucket.independent else jnp.linalg.inv(w64)
        inv_step = times(inv, w_inv) / jnp.where(d0 == 0, 1.0, d0)[:, None, :]
        inv, log_inv = _unit_matrices(
            jnp.where(singular[:, None, None], eye, inv_step), log_inv - log_sigma_w
        )
        # Keep the matrices of measured depths; their singular values come after the scan.
        new = (jac_t, log_jac, inv, log_inv, singular)
        if bucket.independent:  # one slot, set at each family's own depth
            at_depth = layer == depth
            kept = tuple(
                b.at[0].set(jnp.where(at_depth.reshape(-1, *[1] * (v.ndim - 1)), v, b[0]))
                for b, v in zip(kept, new)
            )
        else:
            kept = tuple(buffer.at[slot].set(value) for buffer, value in zip(kept, new))
        carry = (a_hat, log_a, raw, jac_t, log_jac, inv, log_inv, singular, kept)
        return carry, (a_hat, log_a, log_norm, dphi, overflow, underflow)

    eye = jnp.eye(n, dtype=jnp.float64)
    xs0 = jnp.broadcast_to(x_hat, (n_families, *x.shape[-2:]))
    log_a0 = jnp.broadcast_to(log_x, (n_families, bucket.batch))
    eyes, zeros = jnp.broadcast_to(eye, (n_families, n, n)), jnp.zeros((n_families,), jnp.float64)
    raw0 = jnp.broadcast_to(x, (n_families, *x.shape[-2:]))
    singular0 = jnp.zeros((n_families,), bool)
    kept0 = tuple(
        jnp.zeros((n_depths + 1, *v.shape), v.dtype) for v in (eyes, zeros, eyes, zeros, singular0)
    )
    init = (xs0, log_a0, raw0, eyes, zeros, eyes, zeros, singular0, kept0)
    layers = jnp.arange(1, bucket.max_depth + 1)
    final, (a_hat, log_a, log_norm, dphi, overflow, underflow) = jax.lax.scan(
        step, init, (layers, jnp.asarray(slot_of_layer))
    )
    jac_t, log_jac, inv, log_inv, singular = (buffer[:n_depths] for buffer in final[-1])
    sv_max = log_jac + _log(
        _largest_singular_values(jac_t.reshape(-1, n, n)).reshape(n_depths, n_families)
    )
    sv_min = -(
        log_inv
        + _log(_largest_singular_values(inv.reshape(-1, n, n)).reshape(n_depths, n_families))
    )
    log_jac_sv = jnp.stack([sv_max, jnp.where(singular, -jnp.inf, sv_min)], axis=-1)
    layer_axis_second = lambda t: jnp.moveaxis(t, 0, 1)  # noqa: E731  scan stacks layers first
    return {
        "a_hat": jnp.concatenate([xs0[:, None], layer_axis_second(a_hat)], axis=1),
        "log_a": jnp.concatenate([log_a0[:, None], layer_axis_second(log_a)], axis=1),
        "log_norm": jnp.concatenate(
            [jnp.broadcast_to(log_norm_x, log_a0.shape)[:, None], layer_axis_second(log_norm)],
            axis=1,
        ),
        "dphi": layer_axis_second(dphi),
        "log_jac_sv": layer_axis_second(log_jac_sv),
        "overflow": overflow.T,
        "underflow": underflow.T,
    }


def _draw_layer(keys, layer, bucket: Bucket):
    """Ŵ (N, N), b̂ (N,) of a layer: shared, or (F, N, N), (F, N) with independent draws."""
    if bucket.independent:
        return jax.vmap(layer_weights, (0, None, None))(keys, layer, bucket)
    return layer_weights(keys, layer, bucket)


def output_cotangents(a_hat, log_a, keys, bucket: Bucket):
    """dℓ/da_d of one family at every layer d = 0..L: (g_hat (L+1, B, N), log_g (L+1, B)).

    cotangent: ℓ = Σ_b <g_b, a_d^b> with fixed random unit-norm g_b, so dℓ/da_d = g.
    mse: ℓ = mean_b ½ ||a_d^b - y_b||² with Gaussian targets y (||y||²/N = 1), so
    dℓ/da_d = (a_d - y) / B, formed exactly in log space.
    """
    dtype, compute_dtype = jnp.dtype(bucket.dtype), bucket.compute_dtype
    shape = (bucket.batch, bucket.width)
    if bucket.loss == "cotangent":
        g = _unit_rows(keys["cotangent"], shape, jnp.float32) / math.sqrt(bucket.width)
        g_hat, log_g, _ = normalise(g, jnp.zeros((bucket.batch,), jnp.float64), dtype)
        return jnp.broadcast_to(g_hat, a_hat.shape), jnp.broadcast_to(log_g, log_a.shape)
    y = _unit_rows(keys["target"], shape, jnp.float32)
    diff, log_diff = add_scaled(log_a, a_hat, jnp.zeros_like(log_a), -y[None], compute_dtype)
    return normalise(diff, log_diff - math.log(bucket.batch), dtype)[:2]


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


def _log_rms(v, log_v):
    """ln of the per-row RMS of exp(log_v) v, for v (..., N)."""
    rms, _ = _rms(v)
    return log_v + jnp.log(rms)


def _backward_one(
    g_hat,
    log_g,
    start_hat,
    start_log,
    a_prev_hat,
    log_a_prev,
    dphi,
    sigma_w,
    w_hat,
    layer,
    depths,
    bucket,
):
    """One layer of every stream of one family. g_hat (S, B, N), log_g (S, B); depths (S,)."""
    compute_dtype = bucket.compute_dtype
    starts = depths == layer
    g_hat = jnp.where(starts[:, None, None], start_hat, g_hat)
    log_g = jnp.where(starts[:, None], start_log, log_g)
    live = depths >= layer

    delta, log_delta = rescale_pow2(
        dphi[None].astype(compute_dtype) * g_hat.astype(compute_dtype), log_g
    )
    # ||Σ_b δ_b a_b^T||_F² = Σ_bc (w_b δ_b)·(w_c δ_c) (a_b·a_c): B x B Gram matrices, never an
    # N x N gradient. Both products are per family, so XLA may compute them differently for
    # another number of families (a batch of one becomes an unbatched dot): they run in
    # float64, where that is a few ulps of bookkeeping and never touches the float32 state.
    # (The Gram is a matmul, not a broadcast product summed over N: XLA:CPU in jax 0.10.2
    # miscompiles that sum for a single family with B·N >= 512, wrong by O(1).)
    coeff = log_delta + log_a_prev[None]
    top = jnp.max(coeff, axis=-1, keepdims=True)
    weights = jnp.exp(coeff - jnp.where(jnp.isfinite(top), top, 0.0))
    a_prev = a_prev_hat.astype(jnp.float64)
    gram_a = rows_times_transpose(a_prev, a_prev)
    weighted = delta.astype(jnp.float64) * weights[..., None]  # (S, B, N)
    n_streams, batch, width = weighted.shape
    by_sample = jnp.swapaxes(weighted, 1, 2).reshape(n_streams * width, batch)
    mixed = jnp.swapaxes(
        rows_times_transpose(by_sample, gram_a).reshape(n_streams, width, batch), 1, 2
    )
    frob_sq = jnp.sum(weighted * mixed, axis=(-2, -1))
    log_grad = jnp.where(live, top[:, 0] + 0.5 * jnp.log(jnp.maximum(frob_sq, 0)), jnp.nan)

    g_prev = rows_times(delta, w_hat.astype(compute_dtype))
    g_hat, log_g = rescale_pow2(g_prev.astype(g_hat.dtype), log_delta + _log(sigma_w))
    g_hat = jnp.where(live[:, None, None], g_hat, 0)
    log_g = jnp.where(live[:, None], log_g, -jnp.inf)
    return g_hat, log_g, log_grad


def depth_groups(depths: tuple[int, ...], max_groups: int = 2) -> list[tuple[int, ...]]:
    """Splits sorted depths into at most max_groups runs minimising Σ len(run) x max(run).

    Each run is one reverse scan from its deepest layer, so a shallow depth does not ride
    along, masked, through all L layers of the deepest one. Each run also adds its own
    code to compile: for depths 1..150 at width 64, 2 runs cost 10% more compile time than
    1 and save 15% of the run time; 4 runs cost 60% more compile for 6% more.
    """
    n = len(depths)
    groups = min(max_groups, n)
    best = {(0, 0): (0, [])}
    for k in range(1, groups + 1):
        for end in range(1, n + 1):
            options = [
                (
                    best[(k - 1, start)][0] + (end - start) * depths[end - 1],
                    best[(k - 1, start)][1] + [(start, end)],
                )
                for start in range(k - 1, end)
                if (k - 1, start) in best
            ]
            if options:
                best[(k, end)] = min(options, key=lambda o: o[0])
    cost, runs = min(
        (best[(k, n)] for k in range(1, groups + 1) if (k, n) in best), key=lambda o: o[0]
    )
    return [tuple(depths[a:b]) for a, b in runs]


def backward(sigma_w, fwd, keys, bucket: Bucket, depth=None):
    """Every measured depth's backward pass for F families at once, in log space.

    Stream s starts at layer depths[s] with dℓ/da_{depths[s]} and is carried down to a_0;
    at layer l only streams with depths[s] >= l are live. Streams run in a few depth
    groups, each one reverse scan from its own deepest layer. With independent draws
    (keys per family, depth (F,)) each family has one stream, from its own depth.
    Returns:
      log_grad_norm (F, S, L): ln ||dℓ/dW_l||_F of stream s at layer l (NaN above depths[s]);
      log_backward_gain (F, S): ln RMS_b ||dℓ/da_0|| - ln RMS_b ||dℓ/da_d||.
    """
    own = 0 if bucket.independent else None  # weights and stream depths: per family, or shared
    g_out, log_g_out = jax.vmap(output_cotangents, in_axes=(0, 0, own, None))(
        fwd["a_hat"], fwd["log_a"], keys, bucket
    )
    layer_step = jax.vmap(
        functools.partial(_backward_one, bucket=bucket),
        in_axes=(0, 0, 0, 0, 0, 0, 0, 0, own, None, own),
    )
    layer_axis_first = lambda t: jnp.moveaxis(t, 1, 0)  # noqa: E731
    n_families = sigma_w.shape[0]
    grads, gains = [], []
    for group in [bucket.depths] if bucket.independent else depth_groups(bucket.depths):
        top = group[-1]
        if bucket.independent:  # stream of family f starts at depth[f]
            depths = depth[:, None]
            start_hat = jnp.take_along_axis(g_out, depths[:, :, None, None], axis=1)
            start_log = jnp.take_along_axis(log_g_out, depths[:, :, None], axis=1)
        else:
            depths = jnp.asarray(group)
            start_hat, start_log = g_out[:, depths], log_g_out[:, depths]

        def step(carry, xs, start_hat=start_hat, start_log=start_log, depths=depths):
            layer, a_prev_hat, log_a_prev, dphi = xs
            w_hat, _ = _draw_layer(keys, layer, bucket)
            g_hat, log_g, log_grad = layer_step(
                *carry,
                start_hat,
                start_log,
                a_prev_hat,
                log_a_prev,
                dphi,
                sigma_w,
                w_hat,
                layer,
                depths,
            )
            return (g_hat, log_g), log_grad

        shape = (n_families, len(group), bucket.batch, bucket.width)
        init = (jnp.zeros(shape, jnp.dtype(bucket.dtype)), jnp.full(shape[:3], -jnp.inf))
        xs = (
            jnp.arange(1, top + 1),
            layer_axis_first(fwd["a_hat"][:, :top]),
            layer_axis_first(fwd["log_a"][:, :top]),
            layer_axis_first(fwd["dphi"][:, :top]),
        )
        (g0_hat, log_g0), log_grad = jax.lax.scan(step, init, xs, reverse=True)
        log_grad = jnp.concatenate(
            [log_grad, jnp.full((bucket.max_depth - top, n_families, len(group)), jnp.nan)]
        )
        grads.append(jnp.moveaxis(log_grad, 0, -1))
        gains.append(
            _log_rms_over_batch(_log_rms(g0_hat, log_g0))
            - _log_rms_over_batch(_log_rms(start_hat, start_log))
        )
    return {
        "log_grad_norm": jnp.concatenate(grads, axis=1),
        "log_backward_gain": jnp.concatenate(gains, axis=1),
    }


def families(
    sigma_w, sigma_b, seed, root_key, bucket: Bucket, depth=None, words=None, choice=(0, 0)
):
    """All metrics of F families that share a seed (and so every weight), in log10.

    Args:
      sigma_w, sigma_b: (F,); seed: scalar; root_key: the sweep's root key.
      depth (F,), words (F, 2): independent draws only: each family's depth and config
        words (config_keys); seed is then unused (words include it).
      choice: (init index, activation index) into a program bucket's tuples.
    Returns a dict of:
      log10_act_norm (F, L+1): log10 sqrt(mean_B ||a_l||² / N), l = 0..L;
      log10_grad_norm (F, S, L), log10_backward_gain (F, S), log10_jac_sv (F, S, 2);
      overflow (F, L), underflow (F, L), dead (F, L): per-layer flags.
    """
    init_index, activation_index = choice
    if bucket.independent:
        keys = jax.vmap(config_keys, (None, 0, None, None))(
            root_key, words, bucket.init, init_index
        )
    else:
        keys = family_keys(root_key, seed, bucket.width, bucket.init, init_index)
    fwd = forward(sigma_w, sigma_b, keys, bucket, depth, activation_index)
    bwd = backward(sigma_w, fwd, keys, bucket, depth)
    log_act = _log_rms_over_batch(fwd["log_norm"])
    return {
        "log10_act_norm": log_act / LN10,
        "log10_grad_norm": bwd["log_grad_norm"] / LN10,
        "log10_backward_gain": bwd["log_backward_gain"] / LN10,
        "log10_jac_sv": fwd["log_jac_sv"] / LN10,
        "overflow": fwd["overflow"],
        "underflow": fwd["underflow"],
        "dead": jnp.isneginf(log_act[:, 1:]),
    }
