"""Mean-field recursions of every architecture (sweep.blocks): q at each depth and the
finite-depth backward gain, for a batch of configs.

With Q_l the mean square of the layer's "activation" (the residual stream x_l for the
residual architectures) and z a standard normal, infinite width, and q^0 = 1 (the probes'
mean square):

- mlp: q^l is the mean squared pre-activation (sweep.theory's convention),
  q^1 = sigma_w^2 + sigma_b^2, q^l = sigma_w^2 E[phi(sqrt(q^{l-1}) z)^2] + sigma_b^2, and the
  backward signal's squared norm grows by chi_l = sigma_w^2 E[phi'(sqrt(q^l) z)^2].
- resnet, x_l = x_{l-1} + alpha (W_l phi(x_{l-1}) + b_l): q^l is the stream's mean square,
  q^l = q^{l-1} + alpha^2 (sigma_w^2 E[phi(sqrt(q^{l-1}) z)^2] + sigma_b^2) (the branch is
  uncorrelated with the stream: W_l is fresh and zero-mean), and g_{l-1} = (I + alpha D W^T)
  g_l gives chi_l = 1 + alpha^2 sigma_w^2 E[phi'(sqrt(q^{l-1}) z)^2] (Yang & Schoenholz
  2017). There is no fixed point: q grows for ever (linearly for bounded phi,
  geometrically for relu).
- resnet_prenorm, x_l = x_{l-1} + alpha (W_l phi(LN(x_{l-1})) + b_l): LN's output has unit
  mean square whatever q, so q^l = q^{l-1} + alpha^2 (sigma_w^2 E[phi(z)^2] + sigma_b^2)
  grows linearly; LN's Jacobian is P / std(x) with P the projection off the mean and the
  normalised direction (rank N - 2, so E||P v||^2 = (1 - 2/N) ||v||^2 -> ||v||^2), hence
  chi_l = 1 + alpha^2 sigma_w^2 E[phi'(z)^2] / q^{l-1}: each layer's gradient boost decays as
  the stream grows, and the gain grows like log L.
- mlp_layernorm, a_l = phi(LN(h_l)): q^l is the mean squared pre-activation h_l before LN,
  q^1 = sigma_w^2 + sigma_b^2 and q^l = sigma_w^2 E[phi(z)^2] + sigma_b^2 = q* from layer 2
  on; chi_l = sigma_w^2 E[phi'(z)^2] / q^l, so chi1 = sigma_w^2 E[phi'(z)^2] / q*, which does
  not depend on sigma_w at sigma_b = 0 (LN makes the layer scale-free).

theory_log10_backward_gain is sum_{l=1}^{L} 1/2 log10 chi_l; theory_q_depth is q^L. q^l
beyond float64 (1e308) is +inf.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sweep import precision

from ._batch import CHUNK, unique_rows
from ._moments import moments


def _mlp(m, sigma_w2, sigma_b2, alpha2):
    def step(q, layer):
        q_next = jnp.where(layer == 1, sigma_w2 + sigma_b2, sigma_w2 * m.stats(q)[0] + sigma_b2)
        return q_next, (q_next, sigma_w2 * m.stats(q_next)[2])

    return step


def _resnet(m, sigma_w2, sigma_b2, alpha2):
    def step(q, layer):
        mean_sq, _, mean_dphi_sq = m.stats(q)
        q_next = q + alpha2 * (sigma_w2 * mean_sq + sigma_b2)
        return q_next, (q_next, 1 + alpha2 * sigma_w2 * mean_dphi_sq)

    return step


def _resnet_prenorm(m, sigma_w2, sigma_b2, alpha2):
    mean_sq, _, mean_dphi_sq = m.stats(jnp.float64(1.0))

    def step(q, layer):
        q_next = q + alpha2 * (sigma_w2 * mean_sq + sigma_b2)
        return q_next, (q_next, 1 + alpha2 * sigma_w2 * mean_dphi_sq / q)

    return step


def _mlp_layernorm(m, sigma_w2, sigma_b2, alpha2):
    mean_sq, _, mean_dphi_sq = m.stats(jnp.float64(1.0))

    def step(q, layer):
        q_next = jnp.where(layer == 1, sigma_w2 + sigma_b2, sigma_w2 * mean_sq + sigma_b2)
        return q_next, (q_next, sigma_w2 * mean_dphi_sq / q_next)

    return step


RECURSIONS = {
    "mlp": _mlp,
    "resnet": _resnet,
    "resnet_prenorm": _resnet_prenorm,
    "mlp_layernorm": _mlp_layernorm,
}


SEGMENT = 64  # layers per compiled call: one program per (architecture, activation)


@functools.cache
def _segment(architecture: str, activation: str):
    """jit(vmap) of SEGMENT layers of the recursion from (q, gain, first layer): the q
    and cumulative gain after each, for CHUNK pairs."""
    m = moments(activation)
    recursion = RECURSIONS[architecture]

    def one(sigma_w, sigma_b, alpha, q, gain, first):
        step = recursion(m, sigma_w * sigma_w, sigma_b * sigma_b, alpha * alpha)
        _, (qs, chi) = jax.lax.scan(step, q, first + jnp.arange(SEGMENT))
        return qs, gain + jnp.cumsum(0.5 * jnp.log10(chi))

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None)))


@precision.x64
def trajectory(architecture: str, activation: str, sigma_w, sigma_b, alpha, depth) -> dict:
    """q^L and the backward gain of C configs (broadcast to (C,); depth integers >= 0):
    {"theory_q_depth", "theory_log10_backward_gain"}, float64 (C,). Each distinct
    (sigma_w, sigma_b, alpha) runs once, to the deepest depth asked of its block, SEGMENT
    layers per call of one compiled program."""
    *scales, depth = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, np.float64)) for v in (sigma_w, sigma_b, alpha)),
        np.atleast_1d(np.asarray(depth)).astype(np.int64),
    )
    pairs, inverse = unique_rows(np.stack(scales, axis=-1))
    q_depth, gain_depth = np.ones(len(depth)), np.zeros(len(depth))  # depth 0: the input
    run = _segment(architecture, activation)
    deepest = int(depth.max()) if depth.size else 0
    # Blocks of CHUNK pairs, padded with the last: one compiled shape whatever the sweep.
    for start in range(0, len(pairs), CHUNK):
        block = pairs[start : start + CHUNK]
        padded = np.concatenate([block, np.repeat(block[-1:], CHUNK - len(block), axis=0)])
        columns = [jnp.asarray(padded[:, k]) for k in range(3)]
        mine = (inverse >= start) & (inverse < start + CHUNK)
        q, gain = jnp.ones(CHUNK), jnp.zeros(CHUNK)
        lanes = np.zeros(CHUNK, bool)
        lanes[: len(block)] = True  # pairs still running
        for first in range(1, int(depth[mine].max()) + 1 if deepest else 1, SEGMENT):
            q_segment, gain_segment = run(*columns, q, gain, first)
            q, gain = q_segment[:, -1], gain_segment[:, -1]
            q_host, gain_host = np.asarray(q_segment), np.asarray(gain_segment)
            here = mine & (depth >= first) & (depth < first + SEGMENT)
            at = (inverse[here] - start, depth[here] - first)
            q_depth[here], gain_depth[here] = q_host[at], gain_host[at]
            # A pair on a floating-point fixed point (q^{l+1} == q^l) repeats its last layer
            # exactly: the rest of its rows are extrapolated (mlp and mlp_layernorm converge;
            # a residual stream never does).
            fixed = lanes & (q_host[:, -1] == q_host[:, -2])
            last = first + SEGMENT - 1
            later = mine & (depth > last) & fixed[np.clip(inverse - start, 0, CHUNK - 1)]
            lane = inverse[later] - start
            step = gain_host[lane, -1] - gain_host[lane, -2]
            q_depth[later] = q_host[lane, -1]
            gain_depth[later] = gain_host[lane, -1] + (depth[later] - last) * step
            lanes &= ~fixed
            pending = mine & (depth > last) & lanes[np.clip(inverse - start, 0, CHUNK - 1)]
            if not pending.any():
                break
    return {"theory_q_depth": q_depth, "theory_log10_backward_gain": gain_depth}
