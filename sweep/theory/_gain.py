"""The length map's trajectory and the finite-depth backward gain (a host-side scheduler).

The backward gain runs the length map once per distinct (sigma_w, sigma_b) in the input,
as deep as its deepest row, in compiled scans of GAIN_SEGMENT (64) layers over blocks of
pairs, and reads each row's depth off the running sum. The sum is kept as
L * 0.5 log10(sigma_w^2 E[phi'^2](q*)) plus the running sum of per-layer excesses
0.5 log10 E[phi'^2](q^l) - 0.5 log10 E[phi'^2](q*), which is exactly 0 for linear and
relu and small wherever q^l converges. A trajectory that lands on a floating-point fixed
point or 2-cycle (q^{K+1} == q^K or q^{K-1}; q = 0 and q = inf included) repeats its
excesses exactly from there, so the rest of its sum is extrapolated and the pair drops
out (tanh over sigma_w in [0.5, 3], sigma_b in [0, 1]: after 26 layers in the median, at
most ~500; only trajectories near criticality run to full depth). q^l reaching 0 or +inf
uses the limiting E[phi'^2], so the gain is never NaN unless an input is (sigma_w = 0
gives -inf).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sweep import activations, precision

from ._batch import CHUNK, broadcast_call, compiled, unique_rows
from ._fixed_points import q_star_only
from ._moments import moments

GAIN_SEGMENT = 64  # layers per compiled call of the trajectory scan


@precision.x64
def length_map_trajectory(activation: str, sigma_w, sigma_b, depth: int, q0=1.0) -> jax.Array:
    """q^0..q^L of the length map (the convention is in sweep.theory's docstring).

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable to S.
      depth: L, the number of layers (static).
      q0: ||x||^2 / N of the input, broadcastable to S.

    Returns:
      Array of shape S + (L+1,): index 0 is q0 (the raw input's mean square, not a
      pre-activation); index l >= 1 is the mean squared pre-activation of layer l.
    """
    return broadcast_call(_trajectory_core(int(depth)), activation, sigma_w, sigma_b, q0)


@functools.cache
def _trajectory_core(depth: int) -> Callable:
    return functools.partial(_trajectory_one, depth=depth)


def _trajectory_one(activation, closed_form, sigma_w, sigma_b, q0, *, depth):
    m = moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b
    q1 = sigma_w2 * q0 + sigma_b2

    def step(q, _):
        q_next = sigma_w2 * m.stats(q)[0] + sigma_b2
        return q_next, q_next

    _, rest = jax.lax.scan(step, q1, None, length=max(depth - 1, 0))
    head = jnp.stack([q0, q1])[: depth + 1]
    return jnp.concatenate([head, rest])


@precision.x64
def log10_backward_gain(
    activation: str,
    sigma_w,
    sigma_b,
    depth,
    *,
    q_star=None,
    closed_form: bool = True,
    block: int = CHUNK,
) -> np.ndarray:
    """Finite-depth mean-field backward gain: sum_{l=1}^{L} 1/2 log10 chi(q^l), q^0 = 1.

    chi(q) = sigma_w^2 E[phi'(sqrt(q) z)^2] and q^l is the length map's trajectory
    (length_map_trajectory's convention); see sweep.theory._gain for how it is computed
    and why it is not L * 1/2 log10 chi1. Linear (chi = sigma_w^2) and relu
    (chi = sigma_w^2 / 2) give exactly L log10|sigma_w| and L (log10|sigma_w| + 1/2
    log10 1/2); q^l reaching 0 or +inf uses the limiting chi; depth 0 gives 0, sigma_w = 0
    gives -inf for L >= 1; NaN inputs give NaN.

    Inputs must be concrete (numpy-convertible, not traced): the depths decide how many
    layers of each trajectory are computed.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_w, sigma_b: weight and bias scales (not squared), broadcastable with depth to S.
      depth: number of layers L, non-negative integers (integer-valued floats accepted).
      q_star: mean_field(...).q_star of each config where the caller has it already (broadcastable
        to S; predict passes its own), else solved here. It only sets the reference the
        per-layer terms are counted from (see _gain_start): the result does not depend
        on it beyond rounding.
      closed_form: use the closed-form moments where they exist (False: quadrature; tests).
      block: distinct (sigma_w, sigma_b) pairs per compiled call.

    Returns:
      numpy float64 array of shape S.
    """
    args = (sigma_w, sigma_b, depth) + (() if q_star is None else (q_star,))
    arrays = concrete_depths(*args)
    activations.get(activation)  # unknown names fail here, with the accepted list
    shape = arrays[0].shape
    sigma_w, sigma_b, depth = (a.reshape(-1) for a in arrays[:3])
    depth = depth.astype(np.int64)
    out = np.zeros(depth.size)  # depth 0: no layer, gain 0
    if depth.size == 0 or depth.max() == 0:
        return out.reshape(shape)
    pairs, inverse = unique_rows(np.stack([sigma_w, sigma_b], axis=1))
    count, max_depth = pairs.shape[0], int(depth.max())
    if q_star is None:
        solved = broadcast_call(
            q_star_only, activation, pairs[:, 0], pairs[:, 1], 1.0, closed_form=closed_form
        )
        pair_q_star = np.asarray(solved["q_star"])
    else:
        pair_q_star = np.empty(count)
        pair_q_star[inverse] = arrays[3].reshape(-1)
    needed = np.zeros(count, np.int64)  # each pair runs as deep as its deepest row
    np.maximum.at(needed, inverse, depth)
    # Rows sorted by (pair, depth): the rows of pair p with first <= depth <= last are
    # one slice, found by binary search on key = p * (max_depth + 1) + depth.
    row_order = np.lexsort((depth, inverse))
    key = inverse[row_order] * (max_depth + 1) + depth[row_order]

    def select(p, first, last):
        """(rows, slot, depth) of the rows of pairs p[slot] with first <= depth <= last."""
        lo = np.searchsorted(key, p * (max_depth + 1) + first, side="left")
        hi = np.searchsorted(key, p * (max_depth + 1) + np.minimum(last, max_depth), side="right")
        lengths = np.maximum(hi - lo, 0)
        slot = np.repeat(np.arange(p.size), lengths)
        rows = row_order[
            np.arange(lengths.sum()) + np.repeat(lo - np.cumsum(lengths) + lengths, lengths)
        ]
        return rows, slot, depth[rows]

    def blocks(p):
        """p in blocks of the one compiled width `block`, padded with p's last entry: a
        pair's numbers never depend on the others in its call."""
        width = block
        for i in range(0, p.size, width):
            part = p[i : i + width]
            yield part, np.pad(part, (0, width - part.size), mode="edge")

    start, segment = (
        compiled(_gain_start, activation, closed_form),
        compiled(_gain_segment, activation, closed_form),
    )
    per_layer, reference, q = np.empty(count), np.empty(count), np.empty(count)
    for part, padded in blocks(np.arange(count)):
        values = start(pairs[padded, 0], pairs[padded, 1], pair_q_star[padded])
        for target, value in zip((per_layer, reference, q), values):
            target[part] = np.asarray(value)[: part.size]
    total = np.zeros(count)  # running sum of the excess over layers 1..layer
    layer = np.zeros(count, np.int64)
    active = np.arange(count)[needed > 0]
    while active.size:
        # One round: every active pair advances GAIN_SEGMENT layers.
        settled = []
        for part, padded in blocks(active):
            n = part.size
            q_next, totals, q_layers, excess = (
                np.asarray(a)[:n]
                for a in segment(
                    pairs[padded, 0], pairs[padded, 1], reference[padded], q[padded], total[padded]
                )
            )
            done = layer[part]
            rows, s, d = select(part, done + 1, done + GAIN_SEGMENT)
            out[rows] = d * per_layer[part[s]] + totals[s, d - done[s] - 1]
            layer[part] += GAIN_SEGMENT
            q[part], total[part] = q_next, totals[:, -1]
            # In floating point the trajectory may land on a fixed point or a 2-cycle
            # (q^{K+1} == q^K or == q^{K-1}, K = layer): from there on the excess repeats
            # exactly, so the rest of the sum is a count of the last one or two values.
            period1 = q_next == q_layers[:, -1]
            period2 = q_next == q_layers[:, -2]
            repeats = (period1 | period2) & (layer[part] < needed[part])
            if repeats.any():
                p = part[repeats]
                odd = np.where(period1, excess[:, -1], excess[:, -2])[
                    repeats
                ]  # layers K+1, K+3, ...
                even = excess[:, -1][repeats]  # layers K+2, K+4, ...
                rows, s, d = select(p, layer[p] + 1, max_depth)
                n_odd, n_even = (d - layer[p[s]] + 1) // 2, (d - layer[p[s]]) // 2
                rest = np.where(n_odd > 0, n_odd * odd[s], 0.0) + np.where(
                    n_even > 0, n_even * even[s], 0.0
                )
                out[rows] = d * per_layer[p[s]] + (total[p[s]] + rest)
                settled.append(p)
        finished = layer[active] >= needed[active]
        if settled:
            finished |= np.isin(active, np.concatenate(settled))
        active = active[~finished]
    return out.reshape(shape)


def concrete_depths(*args) -> list[np.ndarray]:
    """args broadcast to numpy float64; the third is depth. Fails on traced inputs and on
    depths that are not non-negative integers."""
    if any(isinstance(a, jax.core.Tracer) for a in args):
        raise TypeError(
            "log10_backward_gain and predict need concrete inputs, not traced ones: "
            "the depths size the computation"
        )
    arrays = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in args))
    depth = arrays[2]
    integral = (depth >= 0) & (depth == np.floor(depth))
    if not np.all(integral):
        raise ValueError(f"depth must hold non-negative integers, got {depth[~integral][:5]}")
    return arrays


def _gain_start(activation, closed_form, sigma_w, sigma_b, q_star):
    """(log10|sigma_w| + reference, reference, q^1) for one pair, q^0 = 1.

    reference = 1/2 log10 E[phi'^2](q*) (0 where that is not finite). The gain is
    L * (log10|sigma_w| + reference) + sum_{l<=L} (1/2 log10 E[phi'^2](q^l) - reference):
    the running sum of excesses stays small (it converges where q^l -> q* geometrically)
    and is exactly 0 where E[phi'^2] is constant (linear, relu).
    """
    m = moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b
    q1 = sigma_w2 + sigma_b2
    reference = 0.5 * jnp.log10(m.stats(q_star)[2])
    reference = jnp.where(jnp.isfinite(reference), reference, 0.0)
    return jnp.log10(jnp.abs(sigma_w)) + reference, reference, q1


def _gain_segment(activation, closed_form, sigma_w, sigma_b, reference, q, total):
    """GAIN_SEGMENT more layers of one trajectory.

    From q = q^{K+1} and the running sum of excesses over layers 1..K, returns q^{K+S+1},
    and for layers l = K+1..K+S the running sums, q^l and the excesses
    1/2 log10 E[phi'^2](q^l) - reference (S = GAIN_SEGMENT).
    """
    m = moments(activation, closed_form)
    sigma_w2, sigma_b2 = sigma_w * sigma_w, sigma_b * sigma_b

    def step(carry, _):
        q, total = carry
        mean_sq, _, mean_dphi_sq = m.stats(q)
        excess = 0.5 * jnp.log10(mean_dphi_sq) - reference
        total = total + excess
        return (sigma_w2 * mean_sq + sigma_b2, total), (total, q, excess)

    (q_next, _), (totals, q_layers, excess) = jax.lax.scan(
        step, (q, total), None, length=GAIN_SEGMENT
    )
    return q_next, totals, q_layers, excess
