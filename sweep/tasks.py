"""Training tasks for the trainability probe (sweep.train), by name.

A task is a fixed data set at the network's width N, the number of outputs K that a
linear readout maps the last layer's N units to, and a per-example loss. The data never
depend on the sweep's seeds: every config, seed and root seed trains on the same
examples (seeds vary the initial weights, the readout and the order of minibatches).

- ``teacher`` (regression, K = 10): P = 1024 inputs x in R^N, Gaussian rows scaled to
  ||x||^2 / N = 1 (as the probe inputs), and targets y = V tanh(U x) of a fixed random
  one-hidden-layer teacher, U (N, N) with entries N(0, 2 / N) and V (K, N) with entries
  N(0, 1 / N), each output then standardised to mean 0 and variance 1 over the P
  examples. Loss: ½ (ŷ - y)^2 averaged over the K outputs.
- ``digits`` (classification, K = 10): the 1,797 8x8 images of
  sklearn.datasets.load_digits (shipped inside scikit-learn's wheel, no download).
  Pixels are scaled to [0, 1] and centred per pixel over the data set; the 64 pixels
  are then mapped to N units by a fixed random partial isometry M (N, 64): for N >= 64
  M has orthonormal columns (an exact isometric embedding, distances kept), for N < 64
  orthonormal rows (the orthogonal projection onto a random N-dimensional subspace). M
  is the Q of a QR factorisation of a Gaussian matrix from a fixed key per N. Each
  example is then scaled to ||x||^2 / N = 1. Loss: softmax cross-entropy of the K = 10
  logits against the label.

The readout (K, N) itself belongs to the network being trained (sweep.train). Add a task
by adding a Task to TASKS; spec validation and the engine pick it up by name.

Axes: P examples, N width, K outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import names

DATA_KEY = 20240601  # the fixed key every task's data come from (never a sweep seed)
TAG_TEACHER_INPUTS, TAG_TEACHER_HIDDEN, TAG_TEACHER_OUTPUT, TAG_DIGITS_PROJECTION = 1, 2, 3, 4
TEACHER_EXAMPLES = 1024
DIGITS_PIXELS = 64


@dataclasses.dataclass(frozen=True)
class Task:
    """One training task.

    data: width N -> (x (P, N) float32, y): targets (P, K) float32 for regression or
      labels (P,) int32 for classification; fixed for every seed.
    loss: (outputs (..., K), targets (..., K) or (...,)) -> per-example loss (...,).
    """

    name: str
    n_outputs: int
    classification: bool
    data: Callable[[int], tuple[np.ndarray, np.ndarray]]
    loss: Callable[[jax.Array, jax.Array], jax.Array]


def _data_key(width: int, tag: int):
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(DATA_KEY), width), tag)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows rescaled to ||x||^2 / N = 1."""
    return (x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True))).astype(np.float32)


def _sum_last(v):
    """Sum over the last (small) axis as a fixed chain of additions. XLA may order a
    reduction differently with the number of configs vmapped around it; a chain of
    elementwise adds gives every config the same bits in a chunk of any size."""
    total = v[..., 0]
    for k in range(1, v.shape[-1]):
        total = total + v[..., k]
    return total


def _max_last(v):
    top = v[..., 0]
    for k in range(1, v.shape[-1]):
        top = jnp.maximum(top, v[..., k])
    return top


def half_squared_error(outputs, targets):
    """½ (ŷ - y)^2 averaged over the K outputs: (..., K), (..., K) -> (...,)."""
    return 0.5 * _sum_last((outputs - targets) ** 2) / outputs.shape[-1]


def cross_entropy(logits, labels):
    """Softmax cross-entropy: logits (..., K), integer labels (...,) -> (...,)."""
    shifted = logits - jax.lax.stop_gradient(_max_last(logits))[..., None]
    log_norm = jnp.log(_sum_last(jnp.exp(shifted)))
    picked = _sum_last(jnp.where(jnp.arange(logits.shape[-1]) == labels[..., None], shifted, 0))
    return log_norm - picked


@functools.partial(jax.jit, static_argnums=0)
def _teacher_normals(width: int):
    """The teacher's Gaussian draws, in one compiled call: inputs (P, N), U (N, N), V (10, N)."""
    draw = lambda tag, shape: jax.random.normal(_data_key(width, tag), shape, jnp.float32)  # noqa: E731
    return (
        draw(TAG_TEACHER_INPUTS, (TEACHER_EXAMPLES, width)),
        draw(TAG_TEACHER_HIDDEN, (width, width)),
        draw(TAG_TEACHER_OUTPUT, (10, width)),
    )


@functools.cache
def teacher_data(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs x (P, N) and standardised teacher outputs y (P, 10) for width N."""
    inputs, hidden_weights, output_weights = (
        np.asarray(a, np.float64) for a in _teacher_normals(width)
    )
    x = _unit_rows(inputs)
    hidden = np.tanh(x @ (hidden_weights * math.sqrt(2.0 / width)).T)
    y = hidden @ (output_weights / math.sqrt(width)).T
    y = (y - y.mean(axis=0)) / y.std(axis=0)
    return x, y.astype(np.float32)


def partial_isometry(rows: int, columns: int, key) -> np.ndarray:
    """A random (rows, columns) matrix with orthonormal columns (rows >= columns) or
    orthonormal rows (rows < columns): Q of the QR factorisation of a Gaussian matrix,
    with the signs of R's diagonal folded in (Haar-distributed)."""
    tall = max(rows, columns), min(rows, columns)
    gaussian = np.asarray(
        jax.jit(jax.random.normal, static_argnums=(1, 2))(key, tall, jnp.float32), np.float64
    )
    q, r = np.linalg.qr(gaussian)
    q = q * np.sign(np.diagonal(r))[None, :]
    return q if rows >= columns else q.T


@functools.cache
def digits_data(width: int) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits mapped to width N, x (P, N) with ||x||^2 / N = 1, and labels (P,)."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn; read on first use

    images, labels = load_digits(return_X_y=True)
    pixels = images / 16.0
    pixels = pixels - pixels.mean(axis=0)
    embed = partial_isometry(
        width, DIGITS_PIXELS, _data_key(width, TAG_DIGITS_PROJECTION)
    )  # (N, 64)
    return _unit_rows(pixels @ embed.T), labels.astype(np.int32)


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("teacher", 10, False, teacher_data, half_squared_error),
        Task("digits", 10, True, digits_data, cross_entropy),
    ]
}

assert tuple(TASKS) == names.TASKS


def get(name: str) -> Task:
    """The task called `name`; ValueError naming the accepted ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; accepted: {', '.join(TASKS)}") from None


def reference_loss(task: Task, width: int) -> float:
    """The loss of the best input-independent prediction on the task's data: the entropy
    of the label frequencies (classification; ln 10 for balanced classes) or ½ the mean
    variance of the targets (regression; ½ here, the targets being standardised)."""
    _, y = task.data(width)
    if task.classification:
        freq = np.bincount(y, minlength=task.n_outputs) / len(y)
        freq = freq[freq > 0]
        return float(-np.sum(freq * np.log(freq)))
    return float(0.5 * np.mean(np.var(y, axis=0)))
