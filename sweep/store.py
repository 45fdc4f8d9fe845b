"""The results directory: Parquet parts with a fixed schema, atomic writes, and resume.

    results/<name>/
      sweep.json                the spec, root seed, versions and device
      part-<16 hex>.parquet     one per evaluated chunk, written to a temp name and renamed

A part either exists whole or not at all, so a crash or kill never leaves a half-written
row, and a rerun computes only the configs whose ids are missing.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import platform
import time
import uuid
import warnings
from importlib import metadata
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import locks, ranges, spec as spec_module
from .errors import StoreError as StoreError

SCHEMA = pa.schema(
    [
        ("config_id", pa.string()),
        ("depth", pa.int64()),
        ("width", pa.int64()),
        ("sigma_w", pa.float64()),
        ("sigma_b", pa.float64()),
        ("sigma_w2", pa.float64()),
        ("sigma_b2", pa.float64()),
        ("init", pa.string()),
        ("activation", pa.string()),
        ("seed", pa.int64()),
        ("architecture", pa.string()),
        ("residual_scale", pa.float64()),
        ("dtype", pa.string()),
        ("log10_act_norm", pa.list_(pa.float64())),
        ("log10_forward_gain", pa.float64()),
        ("log10_grad_norm", pa.list_(pa.float64())),
        ("log10_backward_gain", pa.float64()),
        ("log10_jac_sv_max", pa.float64()),
        ("log10_jac_sv_min", pa.float64()),
        ("log10_jac_condition", pa.float64()),
        ("overflow_layer", pa.int64()),
        ("underflow_layer", pa.int64()),
        ("precision_loss_layer", pa.int64()),
        ("status", pa.string()),
        ("theory_q_star", pa.float64()),
        ("theory_chi1", pa.float64()),
        ("theory_c_star", pa.float64()),
        ("theory_xi_c", pa.float64()),
        ("theory_xi_q", pa.float64()),
        ("theory_log10_backward_gain", pa.float64()),
        ("theory_phase", pa.string()),
        ("theory_q_depth", pa.float64()),
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
# Columns of a few distinct strings; dictionary encoding of the others (ids, floats and
# their lists) costs a third of a part's write time and saves nothing.
DICTIONARY_COLUMNS = ["init", "activation", "architecture", "dtype", "status", "theory_phase"]
# How loaded rows are ordered (sweep.load, and the per-layer table).
SORT_KEYS = (
    "architecture",
    "residual_scale",
    "dtype",
    "init",
    "activation",
    "width",
    "seed",
    "sigma_b",
    "sigma_w",
    "depth",
    "learning_rate",
)
# What a part from before a column existed holds there (others read as null, or are
# derived from the columns it has: DERIVED_COLUMNS).
OLD_PART_VALUES = {"architecture": "mlp"}
# Columns that are functions of others, (their inputs, the function): what sweep.columns
# writes, and what a part from before them reads there.
DERIVED_COLUMNS = {
    "sigma_w2": (("sigma_w",), ranges.canonical_squares),
    "sigma_b2": (("sigma_b",), ranges.canonical_squares),
    "log10_jac_condition": (("log10_jac_sv_max", "log10_jac_sv_min"), np.subtract),
}
TRAIN_COLUMNS = tuple(SCHEMA.names[SCHEMA.get_field_index("learning_rate") :])
MANIFEST = "sweep.json"
STALE_TEMP_SECONDS = 3600
PART_GLOB = "part-*.parquet"


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
        offsets = _offsets(lengths)
        # Entry j of row r sits at flat index row_of[r] * K + j = start_r + (position - offsets[r]).
        shift = np.repeat(row_of * values.shape[1] - offsets[:-1], lengths)
        return cls(offsets, values.reshape(-1)[np.arange(offsets[-1]) + shift])


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
    """write(tmp), then rename tmp to path: a reader sees the whole file or none. A failed
    write (a full disk) is an OSError naming path."""
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
        _sync_directory(os.path.dirname(path) or ".")
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _sync_directory(path: str) -> None:
    # The rename itself on disk, so a power cut cannot lose a finished part.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def manifest(spec_dict: dict, root_seed: int) -> dict:
    """What decides a results directory's rows: the spec and the root seed."""
    return {"spec": spec_dict, "root_seed": root_seed}


def _rows_key(record: dict) -> dict:
    """What decides the value of each row besides its own config: the settings, [train]
    but its learning rates (an axis), and the root seed."""
    spec = record.get("spec") if isinstance(record.get("spec"), dict) else {}
    train = spec.get("train")
    return {
        "settings": spec.get("settings"),
        "train": {k: v for k, v in train.items() if k != "learning_rate"}
        if isinstance(train, dict)
        else train,
        "--seed": record.get("root_seed"),
    }


@functools.lru_cache(maxsize=64)
def _grid_of(text: str) -> tuple[str, dict[str, frozenset]] | None:
    """(rows key as JSON, each grid level's option set) of a record given as JSON text;
    None when it is not a valid spec. Cached: every part of a run carries the same record."""
    record = json.loads(text)
    try:
        sweep = spec_module.from_dict(record["spec"])
    except (spec_module.SpecError, KeyError, TypeError):
        return None
    levels = {
        ",".join(level.names): frozenset(map(repr, level.options)) for level in sweep.levels()
    }
    return json.dumps(_rows_key(record), sort_keys=True), levels


def _grid(record: dict):
    return _grid_of(json.dumps({k: record.get(k) for k in ("spec", "root_seed")}, sort_keys=True))


def _within(small: dict, large: dict) -> bool:
    """Whether every row of the sweep `small` is a row of the sweep `large` (records)."""
    a, b = _grid(small), _grid(large)
    return (
        a is not None
        and b is not None
        and a[0] == b[0]
        and all(a[1][k] <= b[1].get(k, frozenset()) for k in a[1])
    )


def _difference(found: dict, wanted: dict) -> str:
    """The first thing that tells two sweeps apart, with both values, in one phrase."""
    axis = [spec_module.DTYPE_AXIS in (r["spec"].get("axes") or {}) for r in (found, wanted)]
    if axis[0] != axis[1]:
        where = ("there", "in the spec") if axis[0] else ("in the spec", "there")
        return f"dtype is an axis {where[0]} and a setting {where[1]}, which give other config ids"
    a, b = _rows_key(found), _rows_key(wanted)
    for key in a:
        for name in sorted(set(a[key] or {}) | set(b[key] or {})) if key != "--seed" else [""]:
            x = a[key] if not name else (a[key] or {}).get(name)
            y = b[key] if not name else (b[key] or {}).get(name)
            if x != y:
                label = key if not name else f"{key}.{name}"
                return f"{label} is {x!r} there and {y!r} in the spec"
    grid_a, grid_b = _grid(found), _grid(wanted)
    if grid_a is None or grid_b is None:
        return "its manifest is not a valid spec"
    for level in grid_a[1]:
        extra = sorted(grid_a[1][level] - grid_b[1].get(level, frozenset()))
        if extra:
            shown = ", ".join(v.strip("(),") for v in extra[:4])
            shown += ", ..." if len(extra) > 4 else ""
            return f"axes.{level} has {shown} there, which the spec lacks"
    return "the grids differ"


def _read_record(path: str) -> dict:
    """sweep.json as a dict; StoreError (one line) when it cannot be read."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise StoreError(f"{path} cannot be read ({reason}); give another --out") from None
    if not isinstance(record, dict) or not isinstance(record.get("spec"), dict):
        raise StoreError(f"{path} is not a sweep manifest; give another --out")
    return record


def finished_ids(out_dir: str, spec_dict: dict, root_seed: int) -> IdSet | None:
    """The config ids done in out_dir when it holds this very sweep, without writing
    anything (a rerun with nothing to do works on read-only media); None otherwise."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        found = _read_record(path)
    except StoreError:
        return None
    wanted = manifest(spec_dict, root_seed)
    if not (_within(found, wanted) or _within(wanted, found)):
        return None
    return done_ids(out_dir)


def open_dir(out_dir: str, spec_dict: dict, root_seed: int, overwrite: bool) -> IdSet:
    """Prepares out_dir for a run and returns the config ids already done there. The
    caller holds locks.writer(out_dir, ...).

    A sweep grows: a spec whose grid holds the directory's (same settings, [train] and
    root seed) becomes its manifest, and only its new configs are computed; a spec whose
    grid lies within the directory's computes what it misses and leaves the manifest.
    Refuses, in one line, a directory holding a different sweep (naming what differs), an
    unreadable manifest or parts without one, unless overwrite, which clears it. No
    message suggests --overwrite: it deletes finished results.
    """
    path = os.path.join(out_dir, MANIFEST)
    os.makedirs(out_dir, exist_ok=True)
    with locks.manifest_section(out_dir):
        wanted = (
            manifest(spec_dict, root_seed) if overwrite else _kept(out_dir, spec_dict, root_seed)
        )
        # Temp files left by a crash; young ones may be another shard's part being written.
        for stale in glob.glob(os.path.join(out_dir, "*.tmp")):
            if time.time() - os.path.getmtime(stale) > STALE_TEMP_SECONDS:
                os.remove(stale)
        if overwrite:
            for part in parts(out_dir):
                os.remove(part)
        record = {**wanted, **environment()}
        _write_atomic(path, lambda tmp: _dump_json(record, tmp))
    return done_ids(out_dir)


def _kept(out_dir: str, spec_dict: dict, root_seed: int) -> dict:
    """The manifest out_dir keeps when this sweep runs there (its own, or the directory's
    when the sweep lies within it); StoreError when they cannot share the directory."""
    path = os.path.join(out_dir, MANIFEST)
    wanted = manifest(spec_dict, root_seed)
    if os.path.exists(path):
        found = _read_record(path)
        if _within(wanted, found):
            return {k: found[k] for k in wanted}  # a slice of it: the manifest stays
        if not _within(found, wanted):
            raise StoreError(
                f"{out_dir} holds a different sweep ({_difference(found, wanted)}); give "
                "another --out, or a spec whose grid holds the directory's to grow it"
            )
    elif parts(out_dir):
        raise StoreError(f"{out_dir} holds Parquet parts but no {MANIFEST}; give another --out")
    return wanted


def check_dir(out_dir: str, spec_dict: dict, root_seed: int) -> IdSet | None:
    """What open_dir would refuse, refused the same way, reading only; the ids done there
    (None for a directory that does not exist yet)."""
    if not os.path.isdir(out_dir):
        if os.path.exists(out_dir):
            raise StoreError(f"{out_dir} is not a directory; give another --out")
        return None
    _kept(out_dir, spec_dict, root_seed)
    return done_ids(out_dir) if os.path.exists(os.path.join(out_dir, MANIFEST)) else None


def _dump_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def read_manifest(out_dir: str) -> dict:
    """The sweep.json of a results directory; StoreError when it is not one."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        raise StoreError(
            f"{out_dir} is not a sweep results directory (no {MANIFEST}); give the --out of a run"
        )
    record = _read_record(path)
    if "root_seed" not in record:
        raise StoreError(f"{path} is not a sweep manifest; give the --out of a run")
    return record


def parts(out_dir: str) -> list[str]:
    """The Parquet parts of a results directory, sorted."""
    return sorted(glob.glob(os.path.join(out_dir, PART_GLOB)))


def _check_part(path: str, record: dict) -> set[str]:
    """The columns of a part whose rows belong to the sweep of manifest `record` (the
    same settings and root seed, its grid within the manifest's: a grown sweep keeps its
    older parts); StoreError naming the file for anything else (another sweep's part, a
    foreign or corrupt file)."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StoreError(f"{path} is not a readable Parquet part ({reason})") from None
    metadata = schema.metadata or {}
    try:
        written = json.loads(metadata[b"sweep"])
    except (KeyError, ValueError):
        raise StoreError(f"{path} was not written by sweep; move it out of the directory") from None
    if not isinstance(written, dict) or not _within(written, record):
        raise StoreError(
            f"{path} belongs to another sweep (spec or --seed differ); move it out of the directory"
        )
    return set(schema.names)


def _read_part(path: str, columns: list[str], filters=None) -> pa.Table:
    try:
        return pq.read_table(
            path, columns=columns, filters=filters, page_checksum_verification=True
        )
    except (OSError, pa.ArrowException) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StoreError(f"{path} is corrupt ({reason}); move it away and rerun") from None


class IdSet(NamedTuple):
    """Config ids as sorted unique 64-bit numbers (spec.id_numbers): 8 bytes an id, so
    resuming a directory of 10^7 rows holds 80 MB, not a Python set of strings."""

    numbers: np.ndarray  # (R,) uint64, sorted, unique

    @classmethod
    def of(cls, ids) -> IdSet:
        return cls(np.unique(spec_module.id_numbers(ids)))

    def count(self) -> int:
        return len(self.numbers)

    def contains(self, numbers: np.ndarray) -> np.ndarray:
        """(R,) bool: which of these id numbers are in the set."""
        if not len(self.numbers):
            return np.zeros(len(numbers), bool)
        at = np.searchsorted(self.numbers, numbers).clip(max=len(self.numbers) - 1)
        return self.numbers[at] == numbers


def done_ids(out_dir: str) -> IdSet:
    """The config ids already written to a results directory, from verified parts."""
    record = read_manifest(out_dir)
    numbers = []
    for part in parts(out_dir):
        _check_part(part, record)
        column = _read_part(part, ["config_id"]).column(0).to_numpy(zero_copy_only=False)
        numbers.append(spec_module.id_numbers(column))
    return IdSet(np.unique(np.concatenate(numbers)) if numbers else np.zeros(0, np.uint64))


def read_rows(out_dir: str, columns: list[str] | None = None, filters=None) -> pa.Table:
    """The rows of a results directory in SCHEMA (or the given columns of it), each part
    verified against the manifest. A part written by an older version that lacks a column
    (learning_rate came later) reads it as nulls, architecture as "mlp". Rows whose
    config_id repeats (a part copied twice) are dropped, with a warning."""
    record = read_manifest(out_dir)
    names = list(columns or SCHEMA.names)
    wanted = names if "config_id" in names else ["config_id", *names]
    tables = []
    for path in parts(out_dir):
        present = _check_part(path, record)
        derived = [c for c in wanted if c not in present and c in DERIVED_COLUMNS]
        sources = {s for c in derived for s in DERIVED_COLUMNS[c][0]} - set(wanted)
        table = _read_part(path, [c for c in (*wanted, *sources) if c in present], filters)
        for name in derived:
            inputs, derive = DERIVED_COLUMNS[name]
            values = derive(*(table.column(c).to_numpy(zero_copy_only=False) for c in inputs))
            table = table.append_column(
                SCHEMA.field(name), pa.array(values, pa.float64(), from_pandas=True)
            )
        for name in wanted:
            if name not in present and name not in derived:
                field = SCHEMA.field(name)
                value = pa.scalar(OLD_PART_VALUES.get(name), field.type)
                table = table.append_column(field, pa.repeat(value, len(table)))
        tables.append(table.select(wanted))
    if not tables:
        return pa.schema([SCHEMA.field(n) for n in names]).empty_table()
    table = pa.concat_tables(tables)
    ids = table.column("config_id").to_numpy(zero_copy_only=False)
    first = ~pd.Series(ids).duplicated().to_numpy()
    if not first.all():
        warnings.warn(
            f"{out_dir}: {int((~first).sum())} rows repeat a config_id (a duplicated part?); "
            "reading each config once",
            stacklevel=2,
        )
        table = table.filter(pa.array(first))
    return table.select(names)


def read_column(out_dir: str, name: str) -> pa.ChunkedArray:
    """One column of every part, without reading the others."""
    return read_rows(out_dir, [name]).column(name)


def write_part(out_dir: str, table: pa.Table, record: dict) -> str:
    """Writes one chunk's rows atomically, with the run's record in the file metadata and
    page checksums that every read verifies."""
    table = table.replace_schema_metadata({b"sweep": json.dumps(record, sort_keys=True).encode()})
    path = os.path.join(out_dir, f"part-{uuid.uuid4().hex[:16]}.parquet")
    _write_atomic(path, lambda tmp: _write_synced(table, tmp))
    return path


def _write_synced(table: pa.Table, path: str) -> None:
    # On disk before the rename, so a power cut cannot leave a truncated part behind.
    with open(path, "wb") as f:
        pq.write_table(table, f, write_page_checksum=True, use_dictionary=DICTIONARY_COLUMNS)
        f.flush()
        os.fsync(f.fileno())


def load(out_dir: str, where: dict | None = None) -> pd.DataFrame:
    """The rows of a results directory as pandas, sorted by config; NaN stays NaN.

    where: {column: value} filters applied while reading each part, so a slice of a huge
    sweep never loads the rest.
    """
    filters = [(column, "==", value) for column, value in (where or {}).items()] or None
    table = read_rows(out_dir, filters=filters)
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
