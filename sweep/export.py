"""Results for notebooks and for people outside Python: an xarray Dataset with one
dimension per axis, and CSV files (written whole or not at all)."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd

from . import store

# The dimensions of a Dataset: the axes, in the order rows are loaded; sigma_w2 and
# sigma_b2 ride along as coordinates of sigma_w and sigma_b.
DIMENSIONS = store.SORT_KEYS
SQUARES = {"sigma_w2": "sigma_w", "sigma_b2": "sigma_b"}


def to_xarray(frame: pd.DataFrame):
    """The rows as an xarray.Dataset: one dimension per axis (size 1 when the sweep has
    one value), each scalar column a variable over them, NaN where the grid has no row
    (a non-residual architecture's residual scales, a depth a shard did not compute).
    residual_scale is null for non-residual rows; here it reads 0 there.

    >>> ds = to_xarray(sweep.load("results/lecture"))
    >>> ds.log10_backward_gain.median("seed").sel(init="orthogonal").plot()
    """
    try:
        import xarray  # noqa: F401  (pandas' to_xarray needs it)
    except ImportError:
        raise ImportError(
            "as_xarray needs xarray: pip install 'sweep[xarray]' (or pip install xarray)"
        ) from None
    dims = [d for d in DIMENSIONS if d in frame.columns]
    if "learning_rate" in dims and frame["learning_rate"].isna().all():
        dims.remove("learning_rate")
    scalar = [
        c
        for c in frame.columns
        if c not in dims and c not in SQUARES and c != "config_id" and _is_scalar(frame[c])
    ]
    table = frame[dims + scalar + [c for c in SQUARES if c in frame.columns]].copy()
    table["residual_scale"] = table["residual_scale"].fillna(0.0)
    squares = {c: table.groupby(SQUARES[c])[c].first() for c in SQUARES if c in table.columns}
    ds = table.drop(columns=list(squares)).set_index(dims).to_xarray()
    for name, values in squares.items():
        ds = ds.assign_coords({name: (SQUARES[name], values.reindex(ds[SQUARES[name]]).to_numpy())})
    return ds


def _is_scalar(series: pd.Series) -> bool:
    return series.dtype != object or series.map(lambda v: isinstance(v, str) or v is None).all()


def write_csv(out_dir: str, path: str, layers: bool = False) -> int:
    """The rows of a results directory as CSV (the per-layer table when `layers`: one row
    per config and layer), written to a temporary name and renamed, so `path` is whole or
    absent. Per-layer lists are left out of the config table. Returns the rows written."""
    if layers:
        from . import layers as layers_module

        frame = layers_module.load_long(out_dir)
    else:
        frame = store.load(out_dir)
        frame = frame[[c for c in frame.columns if _is_scalar(frame[c])]]
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        frame.to_csv(
            tmp, index=False, float_format=lambda x: repr(float(x)) if np.isfinite(x) else str(x)
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return len(frame)
