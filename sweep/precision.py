"""sweep's float64 scope: log-scales and theory run in float64, the user's JAX is untouched.

`import sweep` changes no JAX option. sweep's own entry points (running a sweep, the
theory functions, the benchmark) are wrapped in `x64`, which turns on float64 for the
duration of the call only, with `jax.enable_x64`, a thread-local context manager. Arrays
inside name their dtypes explicitly, so the networks still run in the spec's dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax

F = TypeVar("F", bound=Callable)


def x64(fn: F) -> F:
    """`fn` with float64 enabled while it runs (and restored to the caller's after)."""

    @functools.wraps(fn)
    def scoped(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return scoped  # type: ignore[return-value]
