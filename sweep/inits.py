"""Weight initialisers by name, at unit scale.

Every sampler returns Ŵ with shape (N, N) such that the layer's weight is W = sigma_w * Ŵ.
sigma_w always means "weight std x sqrt(fan_in)", so the Gaussian-family samplers have
entry variance 1/N and orthogonal is a Haar matrix (singular values all 1).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import jax
import jax.numpy as jnp

from . import names

# Std of a unit normal truncated to [-2, 2]; dividing by it restores unit variance,
# as jax.nn.initializers.variance_scaling does.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def _identity(key, width, dtype):
    return jnp.eye(width, dtype=dtype)


def _gaussian(key, width, dtype):
    return jax.random.normal(key, (width, width), dtype) * jnp.asarray(width**-0.5, dtype)


def _uniform(key, width, dtype):
    bound = (3.0 / width) ** 0.5
    return jax.random.uniform(key, (width, width), dtype, -bound, bound)


def _truncated_normal(key, width, dtype):
    scale = 1.0 / (_TRUNCATED_NORMAL_STD * width**0.5)
    return jax.random.truncated_normal(key, -2.0, 2.0, (width, width), dtype) * jnp.asarray(
        scale, dtype
    )


def _orthogonal(key, width, dtype):
    # Haar measure: QR of a Gaussian matrix with the signs of R's diagonal folded into Q.
    gaussian = jax.random.normal(key, (width, width), jnp.float32)
    q, r = jnp.linalg.qr(gaussian)
    return (q * jnp.sign(jnp.diagonal(r))[None, :]).astype(dtype)


INITS: dict[str, Callable[[jax.Array, int, jnp.dtype], jax.Array]] = {
    "identity": _identity,
    "gaussian": _gaussian,
    "uniform": _uniform,
    "truncated_normal": _truncated_normal,
    "orthogonal": _orthogonal,
}

assert tuple(INITS) == names.INITS
# Inits whose weights are random, and so depend on seed and layer keys.
DETERMINISTIC = frozenset({"identity"})


def init_code(name: str) -> int:
    """A stable integer for folding an init's name into PRNG keys."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def get(name: str):
    """The sampler called `name`, (key, width, dtype) -> Ŵ (N, N); ValueError otherwise."""
    try:
        return INITS[name]
    except KeyError:
        raise ValueError(f"unknown init {name!r}; accepted: {', '.join(INITS)}") from None
