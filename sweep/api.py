"""The Python entry points: run a sweep into a directory, and load it back."""

from __future__ import annotations

import math
import os
import time

import pandas as pd

from . import (
    columns,
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
    sweep = _as_spec(sweep)
    if out is not None and not str(out).strip():
        raise spec_module.SpecError("--out: the results directory must not be empty")
    out = out or os.path.join("results", sweep.name)
    if chunk_size is not None and chunk_size < 1:
        raise spec_module.SpecError(f"--chunk-size: {chunk_size} must be >= 1")
    if overwrite and shard[1] > 1:
        raise spec_module.SpecError(
            "--overwrite with --shard would delete the other shards' results; "
            "clear the directory once, then run the shards"
        )
    configs = sweep.configs()
    unit_axes = list(sweep.unit_axes)
    rows_per_unit = len(configs) // math.prod(len(sweep.axes[a]) for a in unit_axes)
    budget = memory_budget or memory.default_memory_budget()
    memory.check_fits(plan.programs(sweep), rows_per_unit, budget, sweep.train)
    spec_dict = sweep.to_dict()
    done = None if overwrite else store.finished_ids(out, spec_dict, root_seed)
    if done is not None and _todo(sweep, configs, done, shard).empty:
        # Nothing to do: nothing is written (a finished sweep reruns on read-only media).
        if progress:
            print(f"sweep: 0 configs computed in 0.0 s; {len(done)} of {sweep.n_configs} in {out}")
        return out
    interrupts.check()
    with locks.writer(out, shard, overwrite):
        done = store.open_dir(out, spec_dict, root_seed, overwrite)
        todo = _todo(sweep, configs, done, shard)

        def units_per_chunk(program):
            return memory.units_per_chunk(program, rows_per_unit, budget, chunk_size, sweep.train)

        chunks = plan.plan(sweep, todo, units_per_chunk, devices.count())
        record = store.manifest(spec_dict, root_seed) | store.environment()
        started = time.perf_counter()
        total = sum(chunk.n_rows for chunk in chunks)
        bar = _progress_bar(total, progress)
        for chunk, result in engine.evaluate(chunks, root_seed):
            rows = columns.chunk_rows(chunk)
            table = store.to_table(
                {
                    **columns.measurements(chunk, rows, result),
                    **columns.theory_columns(chunk, rows),
                    **train.train_columns(chunk, rows, sweep.train, root_seed),
                },
                len(rows.depth),
            )
            fresh = ~pd.Series(chunk.row_ids).isin(done).to_numpy()
            store.write_part(out, table if fresh.all() else table.filter(fresh), record)
            bar.update(chunk.n_rows)
            interrupts.check()
        bar.close()
    if progress:
        elapsed = time.perf_counter() - started
        rate = f", {total / elapsed:.0f} configs/s" if total and elapsed > 0 else ""
        print(
            f"sweep: {total} configs computed in {elapsed:.1f} s{rate}; "
            f"{len(done) + total} of {sweep.n_configs} in {out}"
        )
    return out


def _todo(sweep, configs: pd.DataFrame, done: set[str], shard) -> pd.DataFrame:
    """Every row of each unit of this shard that misses a row. A unit (every depth of one
    family; one config with independent draws) is computed whole: one missing depth redoes
    it, and only its missing rows are written."""
    unit_axes = list(sweep.unit_axes)
    units = configs.loc[~configs["config_id"].isin(done), unit_axes].drop_duplicates()
    units = units[shard_mask(units, *shard)]
    return configs.merge(units, on=unit_axes)


def shard_mask(units: pd.DataFrame, index: int, count: int):
    """True for the units (families, or configs) in slice `index` of `count`, by a hash
    of their axis values."""
    if not 0 <= index < count:
        raise spec_module.SpecError(f"--shard: {index}/{count} needs 0 <= I < N")
    keys = [spec_module.config_id({"depth": 0, **row}) for row in units.to_dict("records")]
    return pd.Series([int(k, 16) % count == index for k in keys], index=units.index, dtype=bool)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="cfg", disable=not enabled, smoothing=0.1, dynamic_ncols=True)


def load(out: str, layers: bool = False) -> pd.DataFrame:
    """The rows of a results directory, as pandas.

    Args:
        out: a results directory written by `run` or `sweep run`.
        layers: False (default) for one row per config (seed included); True for the long
            per-layer table, one row per config and layer 0..L: ``config_id``, the axes
            (depth, sigma_w, sigma_b, width, init, activation, seed), ``learning_rate`` (null
            unless the sweep trains), ``layer``,
            ``log10_act_norm`` and ``log10_grad_norm`` (NaN at layer 0).
    """
    if layers:
        from . import layers as layers_module

        return layers_module.load_long(out)
    return store.load(out)
