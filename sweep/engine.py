"""Compute: one compiled program per network.Program, over a chunk's units, to numpy.

The draws are decided here, once, as the vmap axes of each unit's keys and measured
depths (DRAWS): shared keys stay unbatched, so each Ŵ_l is drawn once per layer for a
whole seed group (SEED_GROUPS); independent keys are batched, one set per config from
its own config id. Nothing here touches a file format: `evaluate` yields each chunk's
metrics as numpy arrays (network.Metrics fields), and sweep.columns turns them into rows.
"""

from __future__ import annotations

import collections
import dataclasses
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


def one_group_at_a_time(fn, args, axes):
    """fn over the leading (seed group) axis of the args whose axis is 0, one group after
    another in one program (lax.map): each group's products are the unbatched matmuls of a
    one-seed chunk, bit for bit, and XLA:CPU runs them 3x faster than a batched matmul."""
    mapped = [a for a, axis in zip(args, axes) if axis is not None]

    def one(group_args):
        picked = iter(group_args)
        return fn(*(a if axis is None else next(picked) for a, axis in zip(args, axes)))

    return jax.lax.map(one, mapped)


def groups_batched(fn, args, axes):
    """fn vmapped over the seed groups: one batched matmul per layer for every group (what
    an accelerator wants). A single group is not batched: XLA rounds a batch of one apart."""
    if args[0].shape[0] == 1:
        alone = fn(*(a if axis is None else a[0] for a, axis in zip(args, axes)))
        return jax.tree.map(lambda v: v[None], alone)
    return jax.vmap(fn, in_axes=axes)(*args)


SEED_GROUPS = {"cpu": one_group_at_a_time, "gpu": groups_batched, "tpu": groups_batched}
"""How each backend runs a chunk's seed groups (network.Program.linalg names the backend)."""
# Chunks launched ahead of the one read back (evaluate). On a GPU or TPU the next chunk's
# program runs while the host writes this one's rows; their programs queue on one stream,
# so only their outputs add up. On the CPU the host shares the cores that compute, and
# side by side (10^5 width-2 configs) a chunk ahead gained nothing measurable.
LOOKAHEAD = {"cpu": 0, "gpu": 1, "tpu": 1}


@functools.cache
def compiled(program: network.Program, n_devices: int):
    """The program over n_devices local devices (sweep.devices); jit compiles it once per
    chunk shape. Arguments: sigma_w, sigma_b, residual_scale (G, F_g), depths ((S,) or
    (G, F_g, S)), unit words (G, F_g, 2), seeds (G,), root key, init index, activation
    index; each seed group's units are split over the devices (axis 1), and every device
    draws the groups' weights."""
    draws = DRAWS[program.draws]
    program = dataclasses.replace(program, linalg=devices.platform())

    def run(
        sigma_w, sigma_b, residual_scale, depths, words, seeds, root_key, init_index, act_index
    ):
        def group(sigma_w, sigma_b, residual_scale, depths, words, seed):
            keys = draws.keys(root_key, seed, words, init_index, program)

            def one(scales, keys, depths):
                return network.family_one(scales, keys, depths, act_index, program)

            batched = jax.vmap(one, in_axes=(0, draws.axis, draws.axis))
            return batched(blocks.Scales(sigma_w, sigma_b, residual_scale), keys, depths)

        args = (sigma_w, sigma_b, residual_scale, depths, words, seeds)
        axes = (0, 0, 0, draws.axis, 0, 0)
        return SEED_GROUPS[program.linalg](group, args, axes)

    own_depths = 1 if draws.axis == 0 else None
    split = (1, 1, 1, own_depths, 1, None, None, None, None)
    return devices.sharded_jit(run, n_devices, split, out_axis=1), split


def evaluate_chunk(chunk: plan.Chunk, root_seed: int) -> dict[str, np.ndarray]:
    """The chunk's metrics (network.Metrics fields), every unit slot: (F, ...) numpy
    (chunk.valid_units are the real ones)."""
    return fetch(launch(chunk, root_seed))


def launch(chunk: plan.Chunk, root_seed: int) -> network.Metrics:
    """Starts the chunk's program and returns its metrics as device arrays at once (JAX
    dispatches asynchronously): the host can work while the device computes."""
    program, args = program_and_arguments(chunk, root_seed)
    return program(*args)


def program_and_arguments(chunk: plan.Chunk, root_seed: int) -> tuple[Callable, list]:
    """The chunk's jitted program and its arguments, placed on the devices."""
    n_devices = devices.count()
    program, split = compiled(chunk.program, n_devices)
    groups = chunk.n_groups

    def by_group(values):
        return np.asarray(values).reshape(groups, -1, *np.shape(values)[1:])

    own_depths = chunk.program.draws == "independent"
    args = [
        by_group(chunk.sigma_w),
        by_group(chunk.sigma_b),
        by_group(chunk.residual_scale),
        by_group(chunk.depths) if own_depths else chunk.depths,
        by_group(chunk.unit_words),
        chunk.seeds.astype(np.int32),
        jax.random.key(root_seed),
        *(jnp.int32(i) for i in chunk.choice),
    ]
    return program, devices.place(args, n_devices, split)


def fetch(metrics: network.Metrics) -> dict[str, np.ndarray]:
    """A launched chunk's metrics as numpy, (F, ...): waits for its program."""
    return {k: np.asarray(v).reshape(-1, *v.shape[2:]) for k, v in metrics._asdict().items()}


def evaluate(
    chunks, root_seed: int, lookahead: int | None = None
) -> Iterator[tuple[plan.Chunk, dict[str, np.ndarray]]]:
    """Evaluates chunks in order, yielding each chunk's metrics as soon as they exist.

    LOOKAHEAD[platform] chunks are launched ahead of the one read back, so the device
    computes while the host turns the previous chunk into rows."""
    ahead = LOOKAHEAD.get(devices.platform(), 1) if lookahead is None else lookahead
    in_flight: collections.deque = collections.deque()
    for chunk in chunks:
        in_flight.append((chunk, launch(chunk, root_seed)))
        if len(in_flight) > ahead:
            done, metrics = in_flight.popleft()
            yield done, fetch(metrics)
    while in_flight:
        done, metrics = in_flight.popleft()
        yield done, fetch(metrics)
