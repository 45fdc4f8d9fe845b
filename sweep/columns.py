"""Column providers: a chunk's rows as numpy columns, keyed by the store's column names.

Each provider has one shape, (chunk, rows, ...) -> {column: values}, where values are a
numpy array (R,), a numpy masked array (masked = null), or a store.Ragged list column.
`measurements` gives the ids, axes and measured columns, `theory` the mean-field
predictions; sweep.train.train_columns gives the trainability probe's. sweep.store owns
the schema and turns the columns into Arrow.

Axes: F units (families), S measured depths, R rows, L layers.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from . import names, plan, ranges, store, theory


class Rows(NamedTuple):
    """Where each row of a chunk comes from: unit-major, then depth, then learning rate."""

    depth: np.ndarray  # (R,) int64
    unit: np.ndarray  # (R,) the unit (family) slot in the chunk, 0..F-1
    measured: np.ndarray  # (R,) the (unit, depth) in the chunk's F x S measurements
    learning_rate: np.ndarray  # (R,) each row's rate; None without [train]


def chunk_rows(chunk: plan.Chunk) -> Rows:
    """The rows of a chunk's valid units."""
    n_rates = len(chunk.learning_rates)
    unit_depths = np.broadcast_to(chunk.depths, (len(chunk.sigma_w), chunk.depths.shape[-1]))
    n_depths = unit_depths.shape[1]
    rates = np.asarray(
        chunk.learning_rates, dtype=object if None in chunk.learning_rates else float
    )
    measured = (chunk.valid_units[:, None] * n_depths + np.arange(n_depths)).reshape(-1)
    return Rows(
        depth=np.repeat(unit_depths.reshape(-1)[measured], n_rates).astype(np.int64),
        unit=np.repeat(chunk.valid_units, n_depths * n_rates),
        measured=np.repeat(measured, n_rates),
        learning_rate=np.tile(rates, len(measured)),
    )


def _first_layer(flags: np.ndarray) -> np.ndarray:
    """1-based index of the first True along the last axis, or 0 when none."""
    return np.where(flags.any(axis=-1), flags.argmax(axis=-1) + 1, 0)


def _nullable_layer(first: np.ndarray) -> np.ma.MaskedArray:
    return np.ma.masked_array(first, mask=first == 0)


def measurements(chunk: plan.Chunk, rows: Rows, result: dict[str, np.ndarray]) -> dict:
    """The ids, axes and measured columns of each row; result: engine.evaluate_chunk's.

    The rows of one (unit, depth) share their measurements and differ in training. Row
    arrays are never (R, L+1) copies of the unit's activations: at 1,000 depths a chunk
    has 10^5 rows, and such copies were most of a run's peak memory.
    """
    bucket, n_rows = chunk.bucket, len(rows.depth)
    act = result["log10_act_norm"]  # (F, L+1)
    unit, depth = rows.unit, rows.depth

    def per_row(x):  # (F, S, ...) measurements -> (R, ...); no copy when each is one row
        flat = x.reshape(-1, *x.shape[2:])
        identity = len(rows.measured) == len(flat) and (np.diff(rows.measured) == 1).all()
        return flat if identity else flat[rows.measured]

    grad = per_row(result["log10_grad_norm"])  # (R, L)
    jac = per_row(result["log10_jac_sv"])  # (R, 2); NaN when the sweep skips the Jacobian
    jacobian = chunk.program.jacobian
    gain_bwd = per_row(result["log10_backward_gain"])
    with np.errstate(invalid="ignore"):  # a dead net: -inf - -inf, no condition (NaN)
        condition = jac[:, 0] - jac[:, 1]

    def first_within_depth(flags):
        first = _first_layer(flags)[unit]
        return np.where((first > 0) & (first <= depth), first, 0)

    overflow = first_within_depth(result["overflow"])
    dead = np.isneginf(act[unit, depth])  # every output activation exactly 0
    underflow = first_within_depth(result["underflow"] & ~result["dead"])
    precision_loss = first_within_depth(result["precision_loss"])
    # NaN anywhere within the row's depth (-inf is a real answer: a dead net). Activation
    # l = 0..L is "layer" l + 1 for _first_layer; gradient norms above a row's depth are NaN
    # by design, so only a first NaN at or below it counts.
    first_nan_act = _first_layer(np.isnan(act))[unit]
    first_nan_grad = _first_layer(np.isnan(grad))
    nonfinite = (
        ((first_nan_act > 0) & (first_nan_act <= depth + 1))
        | ((first_nan_grad > 0) & (first_nan_grad <= depth))
        | np.isnan(gain_bwd)
        | (np.isnan(jac).any(axis=1) & jacobian)
    )
    status = np.select(
        [nonfinite, dead, overflow > 0, underflow > 0],
        ["nonfinite", "dead", "overflow", "underflow"],
        "ok",
    )
    return {
        "config_id": chunk.row_ids,
        "depth": depth,
        "width": np.full(n_rows, bucket.width),
        "sigma_w": chunk.sigma_w[unit],
        "sigma_b": chunk.sigma_b[unit],
        "sigma_w2": ranges.canonical_squares(chunk.sigma_w)[unit],
        "sigma_b2": ranges.canonical_squares(chunk.sigma_b)[unit],
        "init": np.full(n_rows, bucket.init, dtype=object),
        "activation": np.full(n_rows, bucket.activation, dtype=object),
        "seed": chunk.unit_seeds[unit],
        "architecture": np.full(n_rows, bucket.architecture, dtype=object),
        "residual_scale": np.ma.masked_array(
            chunk.residual_scale[unit],
            mask=np.full(n_rows, bucket.architecture not in names.RESIDUAL_ARCHITECTURES),
        ),
        "dtype": np.full(n_rows, chunk.program.dtype, dtype=object),
        "log10_act_norm": store.Ragged.prefixes(act, unit, depth + 1),
        "log10_forward_gain": act[unit, depth] - act[unit, 0],
        "log10_grad_norm": store.Ragged.rows(grad, depth),
        "log10_backward_gain": gain_bwd,
        "log10_jac_sv_max": np.ma.masked_array(jac[:, 0], mask=np.full(n_rows, not jacobian)),
        "log10_jac_sv_min": np.ma.masked_array(jac[:, 1], mask=np.full(n_rows, not jacobian)),
        "log10_jac_condition": np.ma.masked_array(condition, mask=np.full(n_rows, not jacobian)),
        "overflow_layer": _nullable_layer(overflow),
        "underflow_layer": _nullable_layer(underflow),
        "precision_loss_layer": _nullable_layer(precision_loss),
        "status": status,
    }


def theory_columns(chunk: plan.Chunk, rows: Rows) -> dict:
    """Mean-field predictions for each row. They hold for i.i.d. inits and share chi1 with
    orthogonal; the identity init is deterministic, so only identity+linear mlp (where the
    prediction, a gain of sigma_w per layer, is exact) gets values, others get null. A
    column an architecture does not define (theory.DEFINED) is null in its rows."""
    bucket = chunk.bucket
    exact = bucket.activation == "linear" and bucket.architecture == "mlp"
    if bucket.init == "identity" and not exact:
        return {}  # nothing to predict: the store writes null
    grid = tuple(
        np.ascontiguousarray(v, dtype).tobytes()
        for v, dtype in (
            (chunk.sigma_w[rows.unit], float),
            (chunk.sigma_b[rows.unit], float),
            (chunk.residual_scale[rows.unit], float),
            (rows.depth, np.int64),
        )
    )
    predicted = dict(_predicted(bucket.architecture, bucket.activation, *grid))
    phase_code = predicted.pop("theory_phase")
    phases = np.asarray(theory.PHASES + ("",), dtype=object)[phase_code]
    defined = theory.DEFINED[bucket.architecture]
    out = {
        key: value if key in defined else np.ma.masked_all(value.shape)
        for key, value in predicted.items()
    }
    return {**out, "theory_phase": np.ma.masked_array(phases, mask=phase_code < 0)}


@functools.lru_cache(maxsize=8)
def _predicted(
    architecture: str, activation: str, sigma_w: bytes, sigma_b: bytes, alpha: bytes, depth: bytes
) -> tuple:
    """theory.predict of a chunk's rows, kept for the next chunk with the same grid: the
    prediction does not depend on init or width, and a sweep repeats it for each."""
    arrays = (np.frombuffer(sigma_w), np.frombuffer(sigma_b), np.frombuffer(depth, np.int64))
    predicted = theory.predict(
        activation, *arrays, architecture=architecture, residual_scale=np.frombuffer(alpha)
    )
    return tuple((k, np.asarray(v)) for k, v in predicted.items())
