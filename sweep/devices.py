"""Programs split over the local devices: one sharded jit and its inputs' placement.

The unit axis (families, or configs) is split across devices with shard_map: each device
draws the same shared weights and runs its own units, with no communication. Used by the
engine and by the trainability probe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P

AXIS = "units"


def count() -> int:
    """Local devices the unit axis is split over."""
    return jax.local_device_count()


def platform() -> str:
    """The local devices' platform: "cpu", "gpu" or "tpu"."""
    return jax.local_devices()[0].platform


@functools.cache
def mesh(n_devices: int):
    """A 1-D mesh over the first n_devices local devices, named AXIS."""
    return jax.make_mesh((n_devices,), (AXIS,), devices=jax.local_devices()[:n_devices])


def _spec(axis: int | None) -> P:
    return P() if axis is None else P(*(None,) * axis, AXIS)


def sharded_jit(
    fn: Callable, n_devices: int, split: Sequence[int | None], out_axis: int = 0
) -> Callable:
    """jax.jit of fn over n_devices; split[i]: the (unit) axis positional argument i is
    split along, None: replicated. Every output is split along out_axis."""
    if n_devices == 1:
        return jax.jit(fn)
    in_specs = tuple(_spec(s) for s in split)
    return jax.jit(
        jax.shard_map(
            fn,
            mesh=mesh(n_devices),
            in_specs=in_specs,
            out_specs=_spec(out_axis),
            check_vma=False,
        )
    )


def place(args: Sequence, n_devices: int, split: Sequence[int | None]) -> list:
    """The arguments of a sharded_jit program, on the devices as `split` says."""
    if n_devices == 1:
        return [a if isinstance(a, jax.Array) else jnp.asarray(a) for a in args]
    return [
        jax.device_put(a, NamedSharding(mesh(n_devices), _spec(s))) for a, s in zip(args, split)
    ]
