"""One family of networks, as pure functions: every measured depth of one config.

A *family* is every config that shares (width, init, activation, seed, sigma_w, sigma_b)
and differs only in depth. Because a layer's weights come from a key of (root seed,
seed, width, init, layer), a depth-d network is exactly the first d layers of the
deepest one. So one forward pass to the deepest depth L yields every depth's forward
metrics, and the backward passes of all depths run together, one stream per measured
depth, through a couple of reverse scans (Program.stream_groups).

Everything is in log space (sweep.logspace), so depth 10,000 is as exact as depth 10.

The functions here see ONE family; the layer arithmetic is a block (sweep.blocks). The
engine batches families with jax.vmap and decides the draws there, once, as in_axes:
shared keys and measured depths stay unbatched, so each Ŵ_l is drawn once per layer for
a seed group of a chunk; independent keys (config_keys, from a config's own id) and
depths are batched, and each family is then one config measured at its own depth.

Axes: B probe batch, N width, L layers (the deepest depth), S measured depths (streams).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import blocks, inits, logspace

TAG_PROBE, TAG_COTANGENT, TAG_TARGET, TAG_BIAS, TAG_INDEPENDENT = 1, 2, 3, 4, 5
LN10 = math.log(10.0)


@dataclasses.dataclass(frozen=True)
class Program:
    """What fixes a compiled program's code and shapes (all static), named by its choices.

    inits, activations: the names one program serves; a chunk picks one of each at run
      time by index (blocks.select), so a sweep compiles about once per width.
    n_layers: L, the scan length (the deepest depth).
    stream_groups: (first, stop, top) per reverse scan: streams first..stop-1 run down
      from layer top. Shared draws: a few runs of the measured depths (plan.depth_groups);
      independent draws: one stream per family, from its own depth <= L.
    draws: "shared" or "independent": how the engine batches keys and depths (never read
      here); block: the architecture, a key of blocks.BLOCKS; linalg: the backend whose
      solver computes the Jacobian's extremes (logspace.LARGEST_SINGULAR_VALUES), set by
      the engine from the devices it runs on; jacobian: False skips the Jacobian (its
      extremes are NaN, the rows null).
    """

    width: int
    dtype: str
    batch: int
    loss: str
    n_layers: int
    stream_groups: tuple[tuple[int, int, int], ...]
    inits: tuple[str, ...]
    activations: tuple[str, ...]
    draws: str = "shared"
    block: str = "mlp"
    linalg: str = "cpu"
    jacobian: bool = True

    @property
    def n_streams(self) -> int:
        """S: the measured depths (backward streams) of one family."""
        return self.stream_groups[-1][1]

    @property
    def compute_dtype(self):
        """The dtype the layer arithmetic runs in: the spec's, at least float32."""
        return jnp.promote_types(jnp.dtype(self.dtype), jnp.float32)


class Keys(NamedTuple):
    """A family's PRNG keys (independent draws: one config's)."""

    init_index: jax.Array  # () int32: which of the program's inits draws Ŵ
    weight: jax.Array
    bias: jax.Array
    probe: jax.Array
    cotangent: jax.Array
    target: jax.Array


def family_base(root_key, seed, width: int):
    """The key every random draw of a family (and of its training run) descends from: it
    depends only on (root seed, seed, width), never on a config's position."""
    return jax.random.fold_in(jax.random.fold_in(root_key, seed), width)


def family_keys(root_key, seed, width: int, names: tuple[str, ...], init_index=0) -> Keys:
    """Keys that depend only on (root seed, seed, width, init); names: the program's
    inits, init_index picks one (at run time)."""
    return _keys(family_base(root_key, seed, width), names, init_index)


def config_keys(root_key, words, names: tuple[str, ...], init_index=0) -> Keys:
    """One config's own keys (draws = "independent"), from words (2,) uint32: the 64 bits
    of its config_id, so they depend on every axis value, depth included."""
    base = jax.random.fold_in(jax.random.fold_in(root_key, TAG_INDEPENDENT), words[0])
    return _keys(jax.random.fold_in(base, words[1]), names, init_index)


def _keys(base, names: tuple[str, ...], init_index) -> Keys:
    codes = [inits.init_code(name) for name in names]
    code = codes[0] if len(codes) == 1 else jnp.asarray(codes, jnp.uint32)[init_index]
    return Keys(
        init_index=jnp.asarray(init_index, jnp.int32),
        weight=jax.random.fold_in(base, code),
        bias=jax.random.fold_in(base, TAG_BIAS),
        probe=jax.random.fold_in(base, TAG_PROBE),
        cotangent=jax.random.fold_in(base, TAG_COTANGENT),
        target=jax.random.fold_in(base, TAG_TARGET),
    )


def layer_weights(keys: Keys, layer, program: Program) -> blocks.Weights:
    """Unit-scale Ŵ (N, N), b̂ (N,) of layer `layer` (1-based); W = sigma_w Ŵ, b = sigma_b b̂."""
    return blocks.BLOCKS[program.block].draw(keys, layer, program)


def probe_inputs(keys: Keys, program: Program):
    """Probe inputs x (B, N) with ||x||^2 / N = 1 exactly up to the dtype's rounding."""
    shape = (program.batch, program.width)
    return logspace.unit_rows(keys.probe, shape, jnp.dtype(program.dtype))


class Forward(NamedTuple):
    """One family's forward pass to layer L."""

    a_hat: jax.Array  # (L+1, B, N): a_l = exp(log_a) a_hat, l = 0..L
    log_a: jax.Array  # (L+1, B)
    log_norm: jax.Array  # (L+1, B): ln(||a_l|| / sqrt(N)) per probe, exact
    saved: blocks.Saved  # each field (L, B, ...): what the block keeps of layer l
    overflow: jax.Array  # (L,): the plain dtype pass gave inf or NaN
    underflow: jax.Array  # (L,): the plain dtype pass gave all zeros
    precision_loss: jax.Array  # (L,): the plain dtype pass left the exact one


class ForwardCarry(NamedTuple):
    """The forward scan's carry, for one family."""

    a_hat: jax.Array  # (B, N)
    log_a: jax.Array  # (B,)
    raw: jax.Array  # (B, N): the plain dtype pass


def forward_one(scales: blocks.Scales, keys: Keys, activation_index, program) -> Forward:
    """Forward pass of one family to layer L, in log space, with a plain dtype pass beside it."""
    block = blocks.BLOCKS[program.block]
    dtype = jnp.dtype(program.dtype)
    x = probe_inputs(keys, program)
    x_hat, log_x, log_norm_x = logspace.normalise(x, jnp.zeros(x.shape[:-1], jnp.float64), dtype)

    def step(carry: ForwardCarry, layer):
        weights = block.draw(keys, layer, program)
        out = block.forward(
            carry.a_hat, carry.log_a, carry.raw, scales, weights, activation_index, program
        )
        return ForwardCarry(out.a_hat, out.log_a, out.raw), out._replace(raw=None)

    layers = jnp.arange(1, program.n_layers + 1)
    _, out = jax.lax.scan(step, ForwardCarry(x_hat, log_x, x), layers)
    return Forward(
        a_hat=jnp.concatenate([x_hat[None], out.a_hat]),
        log_a=jnp.concatenate([log_x[None], out.log_a]),
        log_norm=jnp.concatenate([log_norm_x[None], out.log_norm]),
        saved=out.saved,
        overflow=out.overflow,
        underflow=out.underflow,
        precision_loss=out.precision_loss,
    )


def jacobians_one(scales: blocks.Scales, keys: Keys, depths, saved0, program) -> blocks.Jacobian:
    """The input-output Jacobian at probe 0 (and its inverse) at each measured depth.

    One scan step per measured depth, each running the layers since the previous one
    (a loop of run-time length): every kept Jacobian is a scan output, written once, so
    no (S, N, N) buffer is rewritten per layer. Ŵ_l is drawn again here, as the backward
    pass does.

    Args:
      depths: (S,) ascending measured depths; saved0: the forward's blocks.Saved at probe
        0, each field (L, ...).
    Returns:
      blocks.Jacobian with a leading (S,) axis.
    """
    block = blocks.BLOCKS[program.block]
    eye = jnp.eye(program.width, dtype=jnp.float64)
    zero = jnp.zeros((), jnp.float64)
    start = blocks.Jacobian(eye, zero, eye, zero, jnp.zeros((), bool))

    def layer(index, jacobian):
        weights = block.draw(keys, index + 1, program)
        saved = jax.tree.map(lambda field: field[index], saved0)
        return block.jacobian(jacobian, scales, weights, saved)

    def segment(carry, depth):
        jacobian, done = carry
        jacobian = jax.lax.fori_loop(done, depth, layer, jacobian)
        return (jacobian, depth), jacobian

    _, kept = jax.lax.scan(segment, (start, jnp.zeros((), depths.dtype)), depths)
    return kept


def jacobian_extremes(kept: blocks.Jacobian, program: Program):
    """(S, 2): ln sigma_max, ln sigma_min of each kept Jacobian (sigma_min = 1/sigma_max of
    the inverse; -inf where some layer was singular)."""
    largest = logspace.LARGEST_SINGULAR_VALUES[program.linalg]
    sv_max = kept.log_jac + logspace.log(largest(kept.jac_t))
    sv_min = -(kept.log_inv + logspace.log(largest(kept.inv)))
    return jnp.stack([sv_max, jnp.where(kept.singular, -jnp.inf, sv_min)], axis=-1)


def output_cotangents(a_hat, log_a, keys: Keys, program: Program):
    """dℓ/da_d of one family at every layer d = 0..L: (g_hat (L+1, B, N), log_g (L+1, B)).

    cotangent: ℓ = Σ_b <g_b, a_d^b> with fixed random unit-norm g_b, so dℓ/da_d = g.
    mse: ℓ = mean_b ½ ||a_d^b - y_b||² with Gaussian targets y (||y||²/N = 1), so
    dℓ/da_d = (a_d - y) / B, formed exactly in log space.
    """
    dtype, compute_dtype = jnp.dtype(program.dtype), program.compute_dtype
    shape = (program.batch, program.width)
    if program.loss == "cotangent":
        g = logspace.unit_rows(keys.cotangent, shape, jnp.float32) / math.sqrt(program.width)
        zero = jnp.zeros((program.batch,), jnp.float64)
        g_hat, log_g, _ = logspace.normalise(g, zero, dtype)
        return jnp.broadcast_to(g_hat, a_hat.shape), jnp.broadcast_to(log_g, log_a.shape)
    y = logspace.unit_rows(keys.target, shape, jnp.float32)
    diff, log_diff = logspace.add_scaled(
        log_a, a_hat, jnp.zeros_like(log_a), -y[None], compute_dtype
    )
    return logspace.normalise(diff, log_diff - math.log(program.batch), dtype)[:2]


class Streams(NamedTuple):
    """The backward scan's carry: every stream of one family."""

    g_hat: jax.Array  # (S, B, N): dℓ/da_l of each stream, at O(1) scale
    log_g: jax.Array  # (S, B): its log-scale


def backward_one(scales: blocks.Scales, fwd: Forward, keys: Keys, depths, program: Program):
    """Every measured depth's backward pass of one family, in log space.

    Stream s starts at layer depths[s] with dℓ/da_{depths[s]} and is carried down to a_0;
    at layer l only streams with depths[s] >= l are live.
    Returns:
      log_grad_norm (S, L): ln ||dℓ/dW_l||_F of stream s at layer l (NaN above depths[s]);
      log_backward_gain (S,): ln RMS_b ||dℓ/da_0|| - ln RMS_b ||dℓ/da_d||.
    """
    block = blocks.BLOCKS[program.block]
    g_out, log_g_out = output_cotangents(fwd.a_hat, fwd.log_a, keys, program)
    grads, gains = [], []
    for first, stop, top in program.stream_groups:
        group = depths[first:stop]
        start_hat, start_log = g_out[group], log_g_out[group]

        def step(carry: Streams, xs, group=group, start_hat=start_hat, start_log=start_log):
            layer, a_prev_hat, log_a_prev, saved = xs
            weights = block.draw(keys, layer, program)
            starts = group == layer
            g_hat = jnp.where(starts[:, None, None], start_hat, carry.g_hat)
            log_g = jnp.where(starts[:, None], start_log, carry.log_g)
            g_hat, log_g, log_grad = block.backward(
                g_hat, log_g, a_prev_hat, log_a_prev, saved, scales, weights, program
            )
            live = group >= layer
            g_hat = jnp.where(live[:, None, None], g_hat, 0)
            log_g = jnp.where(live[:, None], log_g, -jnp.inf)
            return Streams(g_hat, log_g), jnp.where(live, log_grad, jnp.nan)

        shape = (stop - first, program.batch, program.width)
        init = Streams(jnp.zeros(shape, jnp.dtype(program.dtype)), jnp.full(shape[:2], -jnp.inf))
        saved = jax.tree.map(lambda field, top=top: field[:top], fwd.saved)
        xs = (jnp.arange(1, top + 1), fwd.a_hat[:top], fwd.log_a[:top], saved)
        final, log_grad = jax.lax.scan(step, init, xs, reverse=True)  # (top, S_group)
        untouched = jnp.full((program.n_layers - top, stop - first), jnp.nan)
        grads.append(jnp.concatenate([log_grad, untouched]).T)
        end = logspace.log_rms_over_batch(logspace.log_rms(final.g_hat, final.log_g))
        gains.append(end - logspace.log_rms_over_batch(logspace.log_rms(start_hat, start_log)))
    return jnp.concatenate(grads), jnp.concatenate(gains)


class Metrics(NamedTuple):
    """All measurements of one family, in log10."""

    log10_act_norm: jax.Array  # (L+1,): log10 sqrt(mean_B ||a_l||² / N), l = 0..L
    log10_grad_norm: jax.Array  # (S, L): log10 ||dℓ/dW_l||_F of each measured depth
    log10_backward_gain: jax.Array  # (S,)
    log10_jac_sv: jax.Array  # (S, 2): sigma_max, sigma_min of the input-output Jacobian
    overflow: jax.Array  # (L,) per-layer flags of the plain dtype pass
    underflow: jax.Array  # (L,)
    precision_loss: jax.Array  # (L,): blocks.precision_lost
    dead: jax.Array  # (L,): every activation of the layer exactly 0


def family_one(scales: blocks.Scales, keys: Keys, depths, activation_index, program) -> Metrics:
    """Every metric of one family at its measured depths (S,), in log10.

    Args:
      scales: sigma_w, sigma_b (float64 scalars); keys: family_keys or config_keys;
      depths: (S,) the measured depths, ascending, each <= program.n_layers;
      activation_index: which of program.activations (an int32 scalar);
      program: the static Program.
    """
    fwd = forward_one(scales, keys, activation_index, program)
    at_probe0 = jax.tree.map(lambda field: field[:, 0], fwd.saved)
    if program.jacobian:
        kept = jacobians_one(scales, keys, depths, at_probe0, program)
        log_jac_sv = jacobian_extremes(kept, program)
    else:
        log_jac_sv = jnp.full((depths.shape[-1], 2), jnp.nan)
    log_grad, log_gain = backward_one(scales, fwd, keys, depths, program)
    log_act = logspace.log_rms_over_batch(fwd.log_norm)
    return Metrics(
        log10_act_norm=log_act / LN10,
        log10_grad_norm=log_grad / LN10,
        log10_backward_gain=log_gain / LN10,
        log10_jac_sv=log_jac_sv / LN10,
        overflow=fwd.overflow,
        underflow=fwd.underflow,
        precision_loss=fwd.precision_loss,
        dead=jnp.isneginf(log_act[1:]),
    )
