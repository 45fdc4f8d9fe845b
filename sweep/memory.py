"""The memory model: how many units a chunk may hold within a budget of bytes.

The per-unit estimate is an upper bound checked against XLA's own memory analysis of
the compiled program in tests/test_planner.py (and for training, tests/test_train.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import blocks, network, plan, train
from .errors import SpecError

FLOOR_BYTES = 64 * 2**20


def unit_bytes(program: network.Program) -> int:
    """Peak memory one unit (family, or config with independent draws) adds to a chunk's
    program, in bytes."""
    item = np.dtype(jnp.dtype(program.dtype)).itemsize
    layers, batch, width = program.n_layers, program.batch, program.width
    streams = program.n_streams
    block = blocks.BLOCKS[program.block]
    # a_hat, cotangents, the block's Saved arrays (at least 4 bytes: LayerNorm's output is
    # kept in the compute dtype) and their log-scales, per layer
    vectors = 2 * width * item + block.saved_vectors * width * max(item, 4)
    stored = (layers + 1) * batch * (vectors + (2 + block.saved_scales) * 8)
    # the stream carry and its temporaries (a residual block sums in float64)
    residual = 3 * 8 if block.per_family_inverse else 0
    backward = streams * batch * width * (2 * item + 2 * 8 + residual)
    outputs = 3 * streams * layers * 8  # per-layer gradient norms, with their copies
    # J, J^-1, temporaries; each measured depth's, twice; a per-family M_l and its inverse
    inverse = 6 if block.per_family_inverse else 0
    jacobian = (8 + inverse + 4 * (streams + 1)) * width * width * 8 if program.jacobian else 0
    # Ŵ, W^-1 and their float64 copies, when each unit draws its own
    own_weights = 6 * width * width * 8 if program.draws == "independent" else 0
    return int(2.5 * stored) + backward + outputs + jacobian + own_weights


def host_row_bytes(program: network.Program) -> int:
    """Peak host memory one row of a chunk adds while its columns are assembled and
    written (columns.measurements, store.to_table, the Parquet writer): its two per-layer
    lists, each held about three times (gathered, in Arrow, encoded), their gather
    indices, and the scalar columns and id. Measured in tests/test_host_scale.py."""
    return 6 * 8 * (program.n_layers + 1) + 1024


def default_memory_budget() -> int:
    """A quarter of the memory the devices have free: GPU/TPU memory when the backend
    reports it, else the host's available RAM."""
    devices = jax.local_devices()
    stats = devices[0].memory_stats() if devices[0].platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        free = sum(
            d.memory_stats()["bytes_limit"] - d.memory_stats().get("bytes_in_use", 0)
            for d in devices
        )
    else:
        free = host_available_bytes()
    return max(FLOOR_BYTES, free // 4)


def host_available_bytes() -> int:
    """MemAvailable from /proc/meminfo (4 GiB where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 4 * 2**30


def units_per_chunk(
    program: network.Program,
    rows_per_unit: int,
    memory_budget: int,
    chunk_size: int | None = None,
    train_settings=None,
) -> int:
    """Units per chunk: from chunk_size (in rows: configs) if given, else from the budget.
    rows_per_unit: measured depths x learning rates (every one of them trains)."""
    if chunk_size is not None:
        return max(1, chunk_size // rows_per_unit)
    return max(1, int(memory_budget // per_unit_bytes(program, rows_per_unit, train_settings)))


def per_unit_bytes(program: network.Program, rows_per_unit: int, train_settings=None) -> int:
    """unit_bytes, with the host's rows (host_row_bytes) and each trained config's
    parameters and optimizer state: on the CPU they share the memory of the budget, and
    elsewhere the host is rarely larger than the device."""
    per_unit = unit_bytes(program) + rows_per_unit * host_row_bytes(program)
    if train_settings is not None:
        per_unit += rows_per_unit * train.train_bytes_per_config(program, train_settings)
    return per_unit


def check_fits(programs, rows_per_unit: int, memory_budget: int, train_settings=None) -> None:
    """Refuses, in one line and before anything is allocated, a sweep whose smallest chunk
    (plan.MIN_UNITS_PER_DEVICE units: families, or configs) would not fit the budget."""
    for program in programs:
        need = plan.MIN_UNITS_PER_DEVICE * per_unit_bytes(program, rows_per_unit, train_settings)
        if need > memory_budget:
            raise SpecError(
                f"one network of width {program.width}, depth {program.n_layers} and probe "
                f"batch {program.batch} needs about {need / 2**20:,.0f} MiB, more than the "
                f"memory budget of {memory_budget / 2**20:,.0f} MiB; give a larger "
                "--memory-budget, or a smaller width, depth or batch"
            )
