"""Nonlinearities by name.

Each entry is one line: the function, and two facts the log-space forward pass needs
to evaluate phi(exp(m) * u) exactly when exp(m) is far outside the dtype's range:

- ``homogeneous``: phi(s * u) = s * phi(u) for every s > 0 (linear, relu, leaky relu),
  so the scale passes through untouched.
- ``grows``: phi grows linearly for large |x| on at least one side (gelu, selu, ...), so
  for a huge scale phi(exp(m) u) = exp(m - M) phi(exp(M) u) to rounding. Bounded
  functions (tanh, erf, ...) saturate instead and keep no scale.

Whether phi(0) == 0 (so tiny inputs stay tiny and keep their scale) is read off the
function itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from . import names


@dataclasses.dataclass(frozen=True)
class Activation:
    """A nonlinearity phi and the facts the log-space forward pass needs (module docstring)."""

    name: str
    fn: Callable[[jax.Array], jax.Array]
    homogeneous: bool = False
    grows: bool = False

    @property
    def zero_at_origin(self) -> bool:
        """phi(0) == 0: tiny pre-activations then stay tiny and keep their scale."""
        with jax.ensure_compile_time_eval():
            return float(self.fn(jnp.float32(0.0))) == 0.0


def _hard_tanh(x):
    return jnp.clip(x, -1.0, 1.0)


def _leaky_relu(x):
    return jnp.where(x >= 0, x, 0.01 * x)


def _erf(x):
    return jax.lax.erf(x)


def _gelu(x):
    return jax.nn.gelu(x, approximate=False)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("linear", lambda x: x, homogeneous=True),
        Activation("relu", jax.nn.relu, homogeneous=True),
        Activation("leaky_relu", _leaky_relu, homogeneous=True),
        Activation("tanh", jnp.tanh),
        Activation("erf", _erf),
        Activation("hard_tanh", _hard_tanh),
        Activation("sigmoid", jax.nn.sigmoid),
        Activation("gelu", _gelu, grows=True),
        Activation("swish", jax.nn.swish, grows=True),
        Activation("selu", jax.nn.selu, grows=True),
        Activation("elu", jax.nn.elu, grows=True),
        Activation("softplus", jax.nn.softplus, grows=True),
    ]
}

assert tuple(ACTIVATIONS) == names.ACTIVATIONS
# exp(±CLIP) * O(1) stays well inside float32; beyond it phi is linear (near 0) or
# at its asymptote (far out) to float32 rounding.
LOG_SCALE_CLIP = 30.0
assert math.exp(LOG_SCALE_CLIP) ** 2 < 3e38


def get(name: str) -> Activation:
    """The activation called `name`; ValueError naming the accepted ones otherwise."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; accepted: {', '.join(ACTIVATIONS)}"
        ) from None
