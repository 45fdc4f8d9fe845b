"""The Python entry points: run a sweep into a directory, and load it back."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import (
    columns,
    cost,
    devices,
    engine,
    interrupts,
    locks,
    memory,
    plan,
    precision,
    spec as spec_module,
    store,
    train,
)
from .progress import Progress

# Rows of the config table held at once; a block holds at least CHUNKS_PER_BLOCK chunks.
BLOCK_ROWS = 2**18
CHUNKS_PER_BLOCK = 4


def _as_spec(sweep) -> spec_module.Spec:
    if isinstance(sweep, spec_module.Spec):
        return sweep
    if isinstance(sweep, dict):
        return spec_module.from_dict(sweep)
    if isinstance(sweep, (str, os.PathLike)):
        return spec_module.load(os.fspath(sweep))
    raise spec_module.SpecError(
        f"a sweep is a Spec, a dict or a TOML path, not {type(sweep).__name__}"
    )


def run(sweep, out: str | None = None, **options) -> pd.DataFrame:
    """Runs a sweep (a Spec, a dict or a TOML path) into `out` and returns its rows.

    Configs already in `out` are skipped, so an interrupted run resumes where it stopped.
    `out` defaults to results/<name>. The keyword options are execute's.

    >>> df = run({"name": "tiny", "axes": {"depth": [1, 2], "sigma_w": [1.5], "width": [2],
    ...          "init": ["identity"]}}, out="/tmp/sweep-doctest", overwrite=True)
    >>> round(float(df.log10_forward_gain.iloc[-1]), 6)
    0.352183
    """
    return store.load(execute(sweep, out, **options))


@precision.x64
def execute(
    sweep,
    out: str | None = None,
    *,
    root_seed: int = 0,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> str:
    """run() without loading the results back: streams chunk by chunk to `out` with bounded
    memory however large the sweep, and returns `out`.

    The pipeline: spec (the config table and its ids) -> plan (chunks) -> engine (numpy
    metrics per chunk) -> columns, theory and train (numpy columns) -> store (Parquet).

    Args:
      root_seed: the root of every PRNG key (the CLI's --seed).
      chunk_size: configs per compiled batch; default from memory_budget.
      memory_budget: bytes a chunk may use; default a quarter of free device memory.
      overwrite: replace a different sweep found in `out`.
      progress: show a progress bar and a summary line.
      shard: (i, n) runs only the i-th of n disjoint, stable slices of the families, so n
        hosts can share one sweep with no scheduler.
    """
    sweep, out = _checked(sweep, out, chunk_size, overwrite, shard)
    planner = Planner.of(sweep, memory_budget, chunk_size)
    spec_dict = sweep.to_dict()
    done = None if overwrite else store.finished_ids(out, spec_dict, root_seed)
    if done is not None and not any(len(t) for t in _todo(sweep, planner.block_rows, done, shard)):
        # Nothing to do: nothing is written (a finished sweep reruns on read-only media).
        if progress:
            print(
                f"sweep: 0 configs computed in 0.0 s; {done.count()} of {sweep.n_configs} in {out}"
            )
        return out
    interrupts.check()
    with locks.writer(out, shard, overwrite):
        done = store.open_dir(out, spec_dict, root_seed, overwrite)
        chunks = planner.chunks(done, shard)
        record = store.manifest(spec_dict, root_seed) | store.environment()
        started = time.perf_counter()
        left = (sweep.n_configs - done.count()) / sweep.n_configs / shard[1]
        bar = Progress(sweep, left, progress, planner.units_per_chunk)
        computed = 0
        for chunk, result in engine.evaluate(bar.announce(chunks), root_seed):
            rows = columns.chunk_rows(chunk)
            table = store.to_table(
                {
                    **columns.measurements(chunk, rows, result),
                    **columns.theory_columns(chunk, rows),
                    **train.train_columns(chunk, rows, sweep.train, root_seed),
                },
                len(rows.depth),
            )
            fresh = ~done.contains(spec_module.id_numbers(chunk.row_ids))
            store.write_part(out, table if fresh.all() else table.filter(fresh), record)
            computed += int(fresh.sum())
            bar.done(chunk, int(fresh.sum()))
            interrupts.check()
        bar.close()
    if progress:
        elapsed = time.perf_counter() - started
        rate = f", {computed / elapsed:,.3g} configs/s" if computed and elapsed > 0 else ""
        print(
            f"sweep: {computed} configs computed in {elapsed:.1f} s{rate}; "
            f"{done.count() + computed} of {sweep.n_configs} in {out}"
        )
    return out


def _checked(sweep, out, chunk_size, overwrite, shard) -> tuple[spec_module.Spec, str]:
    """(the spec, the results directory) of a run request; SpecError (one line) for a bad
    one, before anything is planned or written (execute and dry_run alike)."""
    sweep = _as_spec(sweep)
    if out is not None and not str(out).strip():
        raise spec_module.SpecError("--out: the results directory must not be empty")
    if chunk_size is not None and chunk_size < 1:
        raise spec_module.SpecError(f"--chunk-size: {chunk_size} must be >= 1")
    if overwrite and shard[1] > 1:
        raise spec_module.SpecError(
            "--overwrite with --shard would delete the other shards' results; "
            "clear the directory once, then run the shards"
        )
    if not 0 <= shard[0] < shard[1]:
        raise spec_module.SpecError(f"--shard: {shard[0]}/{shard[1]} needs 0 <= I < N")
    return sweep, out or os.path.join("results", sweep.name)


class Planner(NamedTuple):
    """How execute cuts a sweep into chunks: the memory budget's units per chunk of each
    program, and the rows of a block of the config table."""

    sweep: spec_module.Spec
    budget: int
    chunk_size: int | None
    block_rows: int

    @classmethod
    def of(cls, sweep, memory_budget: int | None, chunk_size: int | None) -> Planner:
        """Refuses, in one line, a sweep whose smallest chunk does not fit the budget."""
        budget = memory_budget or memory.default_memory_budget()
        programs = plan.programs(sweep)
        memory.check_fits(programs, sweep.rows_per_unit, budget, sweep.train)
        planner = cls(sweep, budget, chunk_size, 0)
        # Blocks of at least a few chunks each: a block's last chunk may be short.
        most = max(planner.units_per_chunk(p) for p in programs) * sweep.rows_per_unit
        return planner._replace(block_rows=max(BLOCK_ROWS, CHUNKS_PER_BLOCK * most))

    def units_per_chunk(self, program) -> int:
        sweep = self.sweep
        return memory.units_per_chunk(
            program, sweep.rows_per_unit, self.budget, self.chunk_size, sweep.train
        )

    def per_unit_bytes(self, program) -> int:
        return memory.per_unit_bytes(program, self.sweep.rows_per_unit, self.sweep.train)

    def chunks(self, done: store.IdSet, shard) -> Iterator[plan.Chunk]:
        """The chunks of every unit of this shard that misses a row, block by block."""
        for todo in _todo(self.sweep, self.block_rows, done, shard):
            yield from plan.plan(self.sweep, todo, self.units_per_chunk, devices.count())


@precision.x64
def dry_run(
    sweep,
    out: str | None = None,
    *,
    root_seed: int = 0,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    overwrite: bool = False,
    shard: tuple[int, int] = (0, 1),
    timed: bool = True,
) -> cost.Preview:
    """What execute would do, without doing it: its configs, units, chunks, compiled
    programs and memory per chunk, and (timed) an estimate of its seconds from timing
    two small chunks of its heaviest program (sweep.cost). Refuses what execute refuses,
    and writes nothing."""
    sweep, out = _checked(sweep, out, chunk_size, overwrite, shard)
    planner = Planner.of(sweep, memory_budget, chunk_size)
    spec_dict = sweep.to_dict()
    done = None if overwrite else store.check_dir(out, spec_dict, root_seed)
    empty = store.IdSet(np.zeros(0, np.uint64))
    return cost.preview(sweep, planner, done or empty, shard, root_seed, timed)


def _todo(sweep, block_rows: int, done: store.IdSet, shard) -> Iterator[pd.DataFrame]:
    """The rows to compute, block by block (Spec.config_blocks): every row of each unit
    of this shard that misses a row. A unit (every depth of one family; one config with
    independent draws) is computed whole: one missing depth redoes it, and only its
    missing rows are written. Blocks with nothing to do are skipped."""
    for levels in sweep.config_blocks(block_rows):
        # The levels a unit spans (depth and learning rate for a family; learning rate
        # for a config with independent draws): a unit is missing if any of its rows is.
        spans = tuple(i for i, lv in enumerate(levels) if lv.names[0] not in sweep.unit_axes)
        table = spec_module.grid_table(levels)
        shape = tuple(len(level.options) for level in levels)
        numbers = spec_module.id_numbers(table["config_id"].to_numpy())
        missing = ~done.contains(numbers).reshape(shape)
        wanted = missing.any(axis=spans, keepdims=True)
        if shard[1] > 1:
            wanted &= _in_shard(levels, spans, *shard)
        rows = np.broadcast_to(wanted, shape).reshape(-1)
        if rows.any():
            yield table[rows] if not rows.all() else table


def _in_shard(levels: list, spans: tuple, index: int, count: int) -> np.ndarray:
    """Whether each unit of a block (the product of `levels`; the levels in `spans` are
    the ones a unit spans) is in slice `index` of `count`, by the unit's id: the config
    id of its axis values with depth 0 for a family, without the learning rate."""
    unit_levels = [
        level._replace(options=((0,),), parts=("depth=0",)) if i in spans else level
        for i, level in enumerate(levels)
        if i not in spans or level.names == ("depth",)
    ]
    keys = spec_module.id_numbers(spec_module.grid_ids(unit_levels))
    shape = [1 if i in spans else len(level.options) for i, level in enumerate(levels)]
    return (keys % np.uint64(count) == index).reshape(shape)


def shard_mask(units: pd.DataFrame, index: int, count: int):
    """True for the units (families, or configs; a frame of their axis values) in slice
    `index` of `count`, by a hash of their axis values (what execute's blocks compute)."""
    keys = [spec_module.config_id({"depth": 0, **row}) for row in units.to_dict("records")]
    return pd.Series([int(k, 16) % count == index for k in keys], index=units.index, dtype=bool)


def load(out: str, layers: bool = False, as_xarray: bool = False):
    """The rows of a results directory, as pandas.

    Args:
        out: a results directory written by `run` or `sweep run`.
        layers: False (default) for one row per config (seed included); True for the long
            per-layer table, one row per config and layer 0..L: ``config_id``, the axes
            (depth, sigma_w, sigma_b, width, init, activation, seed, architecture,
            residual_scale, dtype), ``learning_rate`` (null
            unless the sweep trains), ``layer``,
            ``log10_act_norm`` and ``log10_grad_norm`` (NaN at layer 0).
        as_xarray: an xarray.Dataset instead, one dimension per axis and each scalar
            column a variable (sweep.export.to_xarray; needs the xarray extra), e.g.
            ``ds.log10_backward_gain.median("seed").sel(init="orthogonal").plot()``.
    """
    if as_xarray:
        from . import export

        if layers:
            raise ValueError("as_xarray holds the config rows; give layers=False")
        return export.to_xarray(store.load(out))
    if layers:
        from . import layers as layers_module

        return layers_module.load_long(out)
    return store.load(out)
