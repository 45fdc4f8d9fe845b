"""Compute: one compiled program per network.Program, over a chunk's units, to numpy.

The draws are decided here, once, as the vmap axes of each unit's keys and measured
depths (DRAWS): shared keys stay unbatched, so each Ŵ_l is drawn once per layer for the
whole chunk; independent keys are batched, one set per config from its own config id.
Nothing here touches a file format: `evaluate` yields each chunk's metrics as numpy
arrays (network.Metrics fields), and sweep.columns turns them into rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import blocks, devices, network, plan


class Draws(NamedTuple):
    """How a chunk's units get their weights: the vmap axis of their keys and measured
    depths (None: shared by every unit), and the keys, from (root key, seed, unit words
    (F, 2), init index, program)."""

    axis: int | None
    keys: Callable


DRAWS = {
    "shared": Draws(
        None,
        lambda root_key, seed, words, init_index, program: network.family_keys(
            root_key, seed, program.width, program.inits, init_index
        ),
    ),
    "independent": Draws(
        0,
        lambda root_key, seed, words, init_index, program: jax.vmap(
            network.config_keys, in_axes=(None, 0, None, None)
        )(root_key, words, program.inits, init_index),
    ),
}


@functools.cache
def compiled(program: network.Program, n_devices: int):
    """The program over n_devices local devices (sweep.devices); jit compiles it once per
    chunk shape. Arguments: sigma_w, sigma_b (F,), depths ((S,) or (F, S)), unit words
    (F, 2), seed, root key, init index, activation index."""
    draws = DRAWS[program.draws]

    def run(sigma_w, sigma_b, depths, words, seed, root_key, init_index, activation_index):
        keys = draws.keys(root_key, seed, words, init_index, program)

        def one(scales, keys, depths):
            return network.family_one(scales, keys, depths, activation_index, program)

        batched = jax.vmap(one, in_axes=(0, draws.axis, draws.axis))
        return batched(blocks.Scales(sigma_w, sigma_b), keys, depths)

    split = (True, True, draws.axis == 0, True, False, False, False, False)
    return devices.sharded_jit(run, n_devices, split), split


def evaluate_chunk(chunk: plan.Chunk, root_seed: int) -> dict[str, np.ndarray]:
    """The chunk's metrics (network.Metrics fields), valid units only: (F, ...) numpy."""
    n_devices = devices.count()
    program, split = compiled(chunk.program, n_devices)
    args = [
        chunk.sigma_w,
        chunk.sigma_b,
        chunk.depths,
        chunk.unit_words,
        jnp.int32(chunk.bucket.seed),
        jax.random.key(root_seed),
        *(jnp.int32(i) for i in chunk.choice),
    ]
    out = program(*devices.place(args, n_devices, split))
    return {k: np.asarray(v)[: chunk.n_valid] for k, v in out._asdict().items()}


def evaluate(chunks, root_seed: int) -> Iterator[tuple[plan.Chunk, dict[str, np.ndarray]]]:
    """Evaluates chunks in order, yielding each chunk's metrics as soon as they exist."""
    for chunk in chunks:
        yield chunk, evaluate_chunk(chunk, root_seed)
