"""The long per-layer table: one row per (config, layer), for seaborn and groupby.

Each config row carries two list columns: ``log10_act_norm`` with L+1 entries (layers
0..L, layer 0 being the input) and ``log10_grad_norm`` with L entries (layers 1..L). The
long table has one row per layer l = 0..L of every config:

    config_id, depth, sigma_w, sigma_b, width, init, activation, seed,
    layer, log10_act_norm, log10_grad_norm

with ``log10_grad_norm`` NaN at layer 0 (there is no W_0). It is built with Arrow list
kernels and numpy index arithmetic, never a Python loop over rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import spec as spec_module, store

ID_COLUMNS = (
    "config_id",
    *spec_module.AXES,
    "learning_rate",
)  # learning_rate: null unless the sweep trains
# Kept when present: frames from before these columns lack them.
OPTIONAL_COLUMNS = ("architecture", "residual_scale", "dtype", "learning_rate")
LIST_COLUMNS = ("log10_act_norm", "log10_grad_norm")


def _as_list_array(column) -> pa.ListArray:
    """One Arrow list<float64> array from a chunked column; nulls become empty lists."""
    if isinstance(column, pa.ChunkedArray):
        column = (
            column.combine_chunks() if column.num_chunks else pa.array([], pa.list_(pa.float64()))
        )
    column = column.cast(pa.list_(pa.float64()))
    if column.null_count:
        column = pc.if_else(pc.is_null(column), pa.scalar([], pa.list_(pa.float64())), column)
    return column


def long_table(configs: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """Per-layer rows from config rows (a loaded DataFrame or an Arrow table).

    Args:
        configs: one row per config with ``config_id``, the axes (depth, sigma_w, sigma_b,
            width, init, activation, seed) and the list columns ``log10_act_norm`` (layers
            0..L) and ``log10_grad_norm`` (layers 1..L).

    Returns:
        One row per config and layer 0..L, in the input's config order then by layer:
        the config's id and axes, ``layer`` (int64), ``log10_act_norm`` and
        ``log10_grad_norm`` (float64; the latter NaN at layer 0).

    Raises:
        ValueError: a column is missing, or a row's gradient list is not one entry
            shorter than its activation list.
    """
    present = configs.columns if isinstance(configs, pd.DataFrame) else configs.column_names
    needed = [c for c in (*ID_COLUMNS, *LIST_COLUMNS) if c not in OPTIONAL_COLUMNS or c in present]
    if isinstance(configs, pd.DataFrame):
        missing = [c for c in needed if c not in configs.columns]
        if missing:
            raise ValueError(
                f"per-layer table needs column {missing[0]!r}; give rows loaded with sweep.load"
            )
        table = pa.Table.from_pandas(configs[needed], preserve_index=False)
    else:
        missing = [c for c in needed if c not in configs.column_names]
        if missing:
            raise ValueError(f"per-layer table needs column {missing[0]!r}")
        table = configs.select(needed)

    act = _as_list_array(table.column("log10_act_norm"))
    grad = _as_list_array(table.column("log10_grad_norm"))
    act_len = pc.list_value_length(act).to_numpy(zero_copy_only=False).astype(np.int64)
    grad_len = pc.list_value_length(grad).to_numpy(zero_copy_only=False).astype(np.int64)
    bad = np.flatnonzero(grad_len != np.maximum(act_len - 1, 0))
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"config {table.column('config_id')[row].as_py()}: log10_grad_norm has {grad_len[row]} "
            "entries, "
            f"log10_act_norm {act_len[row]}; expected L and L+1"
        )

    # Row r of the long table belongs to config parent[r] and sits at layer r - start[parent[r]].
    parent = pc.list_parent_indices(act).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(act_len)[:-1]])
    layer = np.arange(parent.size, dtype=np.int64) - starts[parent]
    act_values = pc.list_flatten(act).to_numpy(zero_copy_only=False).astype(np.float64)
    grad_values = np.full(parent.size, np.nan)
    grad_values[layer > 0] = pc.list_flatten(grad).to_numpy(zero_copy_only=False)

    ids = table.select([c for c in ID_COLUMNS if c in table.column_names]).take(pa.array(parent))
    ids = ids.append_column("layer", pa.array(layer))
    ids = ids.append_column("log10_act_norm", pa.array(act_values))
    ids = ids.append_column("log10_grad_norm", pa.array(grad_values))
    return ids.to_pandas()


def load_long(out_dir: str) -> pd.DataFrame:
    """The per-layer table of a results directory, sorted like ``sweep.load`` then by layer.

    Reads only the id, axis and list columns of each Parquet part.
    """
    table = store.read_rows(out_dir, [*ID_COLUMNS, *LIST_COLUMNS])
    order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in store.SORT_KEYS])
    return long_table(table.take(order))
