"""The results directory: Parquet parts with a fixed schema, atomic writes, and resume.

    results/<name>/
      sweep.json                the spec, root seed, versions and device
      part-<16 hex>.parquet     one per evaluated chunk, written to a temp name and renamed

A part either exists whole or not at all, so a crash or kill never leaves a half-written
row, and a rerun computes only the configs whose ids are missing.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import time
import uuid
from importlib import metadata
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("config_id", pa.string()),
        ("depth", pa.int64()),
        ("width", pa.int64()),
        ("sigma_w", pa.float64()),
        ("sigma_b", pa.float64()),
        ("init", pa.string()),
        ("activation", pa.string()),
        ("seed", pa.int64()),
        ("dtype", pa.string()),
        ("log10_act_norm", pa.list_(pa.float64())),
        ("log10_forward_gain", pa.float64()),
        ("log10_grad_norm", pa.list_(pa.float64())),
        ("log10_backward_gain", pa.float64()),
        ("log10_jac_sv_max", pa.float64()),
        ("log10_jac_sv_min", pa.float64()),
        ("overflow_layer", pa.int64()),
        ("underflow_layer", pa.int64()),
        ("status", pa.string()),
        ("theory_q_star", pa.float64()),
        ("theory_chi1", pa.float64()),
        ("theory_c_star", pa.float64()),
        ("theory_xi_c", pa.float64()),
        ("theory_xi_q", pa.float64()),
        ("theory_log10_backward_gain", pa.float64()),
        ("theory_phase", pa.string()),
        # The trainability probe's (sweep.train; null for sweeps without [train]).
        ("learning_rate", pa.float64()),
        ("train_loss_initial", pa.float64()),
        ("train_loss_final", pa.float64()),
        ("train_accuracy_final", pa.float64()),
        ("train_steps_to_half_loss", pa.int64()),
        ("trainable", pa.bool_()),
        ("train_diverged", pa.bool_()),
        ("train_loss_curve", pa.list_(pa.float64())),
    ]
)
# How loaded rows are ordered (sweep.load, and the per-layer table).
SORT_KEYS = ("init", "activation", "width", "seed", "sigma_b", "sigma_w", "depth", "learning_rate")
TRAIN_COLUMNS = tuple(SCHEMA.names[SCHEMA.get_field_index("learning_rate") :])
MANIFEST = "sweep.json"
STALE_TEMP_SECONDS = 3600
PART_GLOB = "part-*.parquet"


class StoreError(ValueError):
    """A results directory that cannot be used as asked; the message says how to fix it."""


class Ragged(NamedTuple):
    """A list column: row r holds values[offsets[r]:offsets[r + 1]] (float64)."""

    offsets: np.ndarray  # (R + 1,) int32
    values: np.ndarray  # (K,) float64

    @classmethod
    def rows(cls, values: np.ndarray, lengths: np.ndarray) -> Ragged:
        """values (R, K), row r keeping its first lengths[r] entries."""
        mask = np.arange(values.shape[1])[None, :] < lengths[:, None]
        return cls(_offsets(lengths), values[mask])

    @classmethod
    def prefixes(cls, values: np.ndarray, row_of: np.ndarray, lengths: np.ndarray) -> Ragged:
        """values (F, K); row r is values[row_of[r], :lengths[r]] (no (R, K) copy)."""
        parts = [values[f, :n] for f, n in zip(row_of, lengths)]
        return cls(_offsets(lengths), np.concatenate(parts) if parts else np.zeros(0))


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def _arrow(values, kind: pa.DataType) -> pa.Array:
    if isinstance(values, Ragged):
        return pa.ListArray.from_arrays(
            pa.array(values.offsets), pa.array(values.values, pa.float64())
        )
    if isinstance(values, np.ndarray) and values.ndim == 2:  # a list of K per row
        return _arrow(Ragged.rows(values, np.full(len(values), values.shape[1])), kind)
    if isinstance(values, np.ma.MaskedArray):
        if values.mask.all():
            return pa.nulls(len(values), kind)
        return pa.array(values.data, kind, mask=np.ma.getmaskarray(values))
    return pa.array(values, kind)


def to_table(columns: dict, n_rows: int) -> pa.Table:
    """One Arrow table in SCHEMA from numpy columns of n_rows rows, as sweep.columns and
    sweep.train provide them: arrays, masked arrays (masked: null), 2-D arrays or Ragged
    for list columns. A column no provider gave is null (a sweep without [train], theory
    that does not apply)."""
    unknown = set(columns) - set(SCHEMA.names)
    if unknown:
        raise ValueError(f"to_table: no column {sorted(unknown)[0]!r} in the schema")
    return pa.table(
        [
            _arrow(columns[f.name], f.type) if f.name in columns else pa.nulls(n_rows, f.type)
            for f in SCHEMA
        ],
        schema=SCHEMA,
    )


def environment() -> dict:
    """Versions, device and PRNG settings of this process, recorded with the results."""
    import jax

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "sweep": version("sweep"),
        "jax": jax.__version__,
        "jaxlib": version("jaxlib"),
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        "device_count": jax.device_count(),
        "python": platform.python_version(),
        "prng_impl": str(jax.config.jax_default_prng_impl),
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
    }


def _write_atomic(path: str, write) -> None:
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def manifest(spec_dict: dict, root_seed: int) -> dict:
    """What decides a results directory's rows: the spec and the root seed."""
    return {"spec": spec_dict, "root_seed": root_seed}


def _grid(record: dict):
    """What decides a sweep's rows: the axes (as sets; order and name do not matter), the
    settings, [train] and the root seed."""
    spec = record.get("spec") if isinstance(record.get("spec"), dict) else {}
    axes = spec.get("axes") if isinstance(spec.get("axes"), dict) else {}
    return (
        {key: sorted(map(repr, values)) for key, values in axes.items()},
        spec.get("settings"),
        spec.get("train"),
        record.get("root_seed"),
    )


def open_dir(out_dir: str, spec_dict: dict, root_seed: int, overwrite: bool) -> set[str]:
    """Prepares out_dir for a run and returns the config ids already done there.

    Refuses a directory holding a different sweep unless overwrite, which clears it.
    """
    path = os.path.join(out_dir, MANIFEST)
    wanted = manifest(spec_dict, root_seed)
    if os.path.exists(path):
        try:
            with open(path) as f:
                found = json.load(f)
        except (OSError, json.JSONDecodeError):
            found = None
        same = isinstance(found, dict) and _grid(found) == _grid(wanted)
        if not same and not overwrite:
            raise StoreError(
                f"{out_dir} holds a different sweep (spec or --seed differ); "
                "use another --out, or --overwrite to replace it"
            )
        if not same:
            for part in glob.glob(os.path.join(out_dir, PART_GLOB)):
                os.remove(part)
    elif os.path.isdir(out_dir) and glob.glob(os.path.join(out_dir, PART_GLOB)) and not overwrite:
        raise StoreError(
            f"{out_dir} holds Parquet parts but no {MANIFEST}; use another --out, or --overwrite"
        )
    os.makedirs(out_dir, exist_ok=True)
    # Temp files left by a crash; young ones may be another shard's part being written.
    for stale in glob.glob(os.path.join(out_dir, "*.tmp")):
        if time.time() - os.path.getmtime(stale) > STALE_TEMP_SECONDS:
            os.remove(stale)
    if overwrite:
        for part in glob.glob(os.path.join(out_dir, PART_GLOB)):
            os.remove(part)
    record = {**wanted, **environment()}
    _write_atomic(path, lambda tmp: _dump_json(record, tmp))
    return done_ids(out_dir)


def _dump_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def read_manifest(out_dir: str) -> dict:
    """The sweep.json of a results directory; StoreError when it is not one."""
    path = os.path.join(out_dir, MANIFEST)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError):
        record = None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("spec"), dict)
        or "root_seed" not in record
    ):
        raise StoreError(
            f"{out_dir} is not a sweep results directory (no readable {MANIFEST}); give the --out "
            "of a run"
        )
    return record


def parts(out_dir: str) -> list[str]:
    """The Parquet parts of a results directory, sorted."""
    return sorted(glob.glob(os.path.join(out_dir, PART_GLOB)))


def done_ids(out_dir: str) -> set[str]:
    """The config ids already written to a results directory."""
    done: set[str] = set()
    for part in parts(out_dir):
        done.update(pq.read_table(part, columns=["config_id"]).column(0).to_pylist())
    return done


def read_parts(files, columns: list[str] | None = None, filters=None) -> pa.Table:
    """The rows of these parts in SCHEMA (or the given columns of it). A part written by
    an older version that lacks a column (learning_rate came later) reads it as nulls."""
    names = columns or SCHEMA.names
    tables = []
    for path in files:
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in names if c in present], filters=filters)
        for name in names:
            if name not in present:
                table = table.append_column(
                    SCHEMA.field(name), pa.nulls(len(table), SCHEMA.field(name).type)
                )
        tables.append(table.select(names))
    if not tables:
        return pa.schema([SCHEMA.field(n) for n in names]).empty_table()
    return pa.concat_tables(tables)


def read_column(out_dir: str, name: str) -> pa.ChunkedArray:
    """One column of every part, without reading the others."""
    return read_parts(parts(out_dir), [name]).column(name)


def write_part(out_dir: str, table: pa.Table, record: dict) -> str:
    """Writes one chunk's rows atomically, with the run's record in the file metadata."""
    table = table.replace_schema_metadata({b"sweep": json.dumps(record, sort_keys=True).encode()})
    path = os.path.join(out_dir, f"part-{uuid.uuid4().hex[:16]}.parquet")
    _write_atomic(path, lambda tmp: _write_synced(table, tmp))
    return path


def _write_synced(table: pa.Table, path: str) -> None:
    # On disk before the rename, so a power cut cannot leave a truncated part behind.
    with open(path, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())


def load(out_dir: str, where: dict | None = None) -> pd.DataFrame:
    """The rows of a results directory as pandas, sorted by config; NaN stays NaN.

    where: {column: value} filters applied while reading each part, so a slice of a huge
    sweep never loads the rest.
    """
    read_manifest(out_dir)
    files = parts(out_dir)
    if not files:
        return SCHEMA.empty_table().to_pandas()
    filters = [(column, "==", value) for column, value in (where or {}).items()] or None
    table = read_parts(files, filters=filters)
    # Integer columns with nulls (overflow_layer, underflow_layer) come back as float64 NaN;
    # so do boolean ones (the train columns of a sweep without [train]), not as objects.
    for index, field in enumerate(table.schema):
        if pa.types.is_boolean(field.type) and table.column(index).null_count:
            table = table.set_column(index, field.name, table.column(index).cast(pa.float64()))
    frame = table.to_pandas()
    return frame.sort_values(
        list(SORT_KEYS),
        kind="stable",
    ).reset_index(drop=True)
