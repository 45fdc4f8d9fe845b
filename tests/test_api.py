"""The notebook API: sweep.run / sweep.load, the per-layer table, and DuckDB / polars reads."""

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import sweep
from sweep import layers, spec as spec_module, store

N_CONFIGS = 3 * 7 * 2 * 2
INT_COLUMNS = ("depth", "width", "seed")
FLOAT_COLUMNS = (
    "sigma_w",
    "sigma_b",
    "log10_forward_gain",
    "log10_backward_gain",
    "log10_jac_sv_max",
    "log10_jac_sv_min",
    "overflow_layer",
    "underflow_layer",
    "theory_q_star",
    "theory_chi1",
    "theory_c_star",
    "theory_xi_c",
    "theory_xi_q",
    "theory_log10_backward_gain",
)


def test_run_from_a_dict_returns_what_load_reads(tiny):
    out, frame = tiny
    assert len(frame) == N_CONFIGS and frame["config_id"].is_unique
    assert sorted(frame["seed"].unique()) == [0, 1]
    pd.testing.assert_frame_equal(frame, sweep.load(out))


def test_run_from_a_spec_object_resumes_and_returns_the_same_frame(tiny, tiny_spec):
    out, frame = tiny
    again = sweep.run(spec_module.from_dict(tiny_spec), out=out)  # nothing left to compute
    pd.testing.assert_frame_equal(frame, again)


def test_plain_columns_are_plain_dtypes(tiny):
    _, frame = tiny
    for column in INT_COLUMNS:
        assert frame[column].dtype == np.int64, column
    for column in FLOAT_COLUMNS:
        assert frame[column].dtype == np.float64, column
    for column in frame.columns:
        assert not isinstance(frame[column].dtype, pd.CategoricalDtype), column
    scalar = [
        c
        for c in frame.columns
        if c not in ("log10_act_norm", "log10_grad_norm", "train_loss_curve")
    ]
    assert not [c for c in scalar if frame[c].dtype == object]
    # No overflow in a depth-6 network: null in Parquet, NaN (not None or pd.NA) here.
    assert (
        frame["overflow_layer"].isna().all() and np.isnan(frame["overflow_layer"].to_numpy()).all()
    )


def test_nan_stays_nan_through_the_store(tmp_path):
    spec = spec_module.from_dict(
        {"name": "nan", "axes": {"depth": [2], "sigma_w": [1.0], "width": [2]}}
    )
    out = str(tmp_path / "nan")
    store.open_dir(out, spec.to_dict(), 0, False)
    row = {name: [None] for name in store.SCHEMA.names}
    row.update(
        config_id=["0" * 16],
        depth=[2],
        width=[2],
        sigma_w=[1.0],
        sigma_b=[0.0],
        init=["gaussian"],
        activation=["linear"],
        seed=[0],
        dtype=["float32"],
        status=["nonfinite"],
        log10_act_norm=[[0.0, float("nan"), 1.0]],
        log10_grad_norm=[[float("nan"), 2.0]],
        log10_forward_gain=[float("nan")],
        log10_jac_sv_min=[float("-inf")],
    )
    store.write_part(out, pa.table(row, schema=store.SCHEMA), store.manifest(spec.to_dict(), 0))
    frame = sweep.load(out)
    assert frame["log10_forward_gain"].dtype == np.float64 and np.isnan(
        frame["log10_forward_gain"].iloc[0]
    )
    assert np.isnan(frame["log10_backward_gain"].iloc[0])  # null in Parquet
    assert frame["log10_jac_sv_min"].iloc[0] == -np.inf
    long = sweep.load(out, layers=True)
    assert list(long["layer"]) == [0, 1, 2]
    assert long["log10_act_norm"].isna().tolist() == [False, True, False]
    assert long["log10_grad_norm"].isna().tolist() == [True, True, False]


def test_layers_table_is_long_and_matches_the_list_columns(tiny):
    out, frame = tiny
    long = sweep.load(out, layers=True)
    assert list(long.columns) == [
        "config_id",
        "depth",
        "sigma_w",
        "sigma_b",
        "width",
        "init",
        "activation",
        "seed",
        "architecture",
        "residual_scale",
        "dtype",
        "learning_rate",
        "layer",
        "log10_act_norm",
        "log10_grad_norm",
    ]
    assert len(long) == int((frame["depth"] + 1).sum())
    assert long["layer"].dtype == np.int64 and long["log10_act_norm"].dtype == np.float64
    assert long["log10_grad_norm"].dtype == np.float64
    assert long.loc[long["layer"] == 0, "log10_grad_norm"].isna().all()
    assert long.loc[long["layer"] > 0, "log10_grad_norm"].notna().all()
    # Config order as in sweep.load, layers 0..L within each config.
    assert list(long["config_id"].drop_duplicates()) == list(frame["config_id"])
    assert (
        long.groupby("config_id", sort=False)["layer"].max()
        == long.groupby("config_id", sort=False)["depth"].first()
    ).all()
    for _, row in frame.sample(5, random_state=0).iterrows():
        rows = long[long["config_id"] == row["config_id"]]
        np.testing.assert_array_equal(rows["log10_act_norm"], row["log10_act_norm"])
        np.testing.assert_array_equal(rows["log10_grad_norm"].iloc[1:], row["log10_grad_norm"])
        assert (
            (rows[["sigma_w", "activation", "seed"]] == row[["sigma_w", "activation", "seed"]])
            .all()
            .all()
        )
    # The same table from an in-memory frame, e.g. one filtered in a notebook.
    pd.testing.assert_frame_equal(layers.long_table(frame), long)


def test_layers_table_refuses_mismatched_lists():
    frame = pd.DataFrame(
        {
            "config_id": ["a"],
            "depth": [2],
            "sigma_w": [1.0],
            "sigma_b": [0.0],
            "width": [2],
            "init": ["gaussian"],
            "activation": ["linear"],
            "seed": [0],
            "log10_act_norm": [[0.0, 1.0, 2.0]],
            "log10_grad_norm": [[1.0]],
        }
    )
    with pytest.raises(
        ValueError, match="config a: log10_grad_norm has 1 entries, log10_act_norm 3"
    ):
        layers.long_table(frame)
    with pytest.raises(ValueError, match="needs column 'log10_grad_norm'"):
        layers.long_table(frame.drop(columns=["log10_grad_norm"]))


def test_duckdb_reads_the_directory(tiny):
    out, frame = tiny
    parts = f"{out}/**/*.parquet"
    ((count,),) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{parts}')").fetchall()
    assert count == len(frame)
    by_sigma = duckdb.sql(
        f"SELECT sigma_w, avg(log10_backward_gain) AS gain, sum(len(log10_act_norm)) AS n_layers "
        f"FROM read_parquet('{parts}') GROUP BY sigma_w ORDER BY sigma_w"
    ).df()
    expected = frame.groupby("sigma_w")["log10_backward_gain"].mean()
    np.testing.assert_allclose(by_sigma["gain"], expected.to_numpy(), rtol=1e-12)
    assert by_sigma["n_layers"].sum() == int((frame["depth"] + 1).sum())
    ((overflow_nulls,),) = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{parts}') WHERE overflow_layer IS NULL"
    ).fetchall()
    assert overflow_nulls == len(frame)


def test_polars_reads_the_directory(tiny):
    out, frame = tiny
    table = pl.read_parquet(f"{out}/*.parquet")
    assert table.height == len(frame)
    assert table.schema["depth"] == pl.Int64 and table.schema["log10_act_norm"] == pl.List(
        pl.Float64
    )
    lazy = (
        pl.scan_parquet(f"{out}/**/*.parquet")
        .group_by("activation")
        .agg(pl.col("log10_forward_gain").median())
        .sort("activation")
    )
    result = lazy.collect()
    expected = frame.groupby("activation")["log10_forward_gain"].median()
    assert result["activation"].to_list() == list(expected.index)
    np.testing.assert_allclose(
        result["log10_forward_gain"].to_numpy(), expected.to_numpy(), rtol=1e-12
    )
