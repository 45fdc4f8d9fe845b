"""Parquet round trip, resume after an interruption, and refusing a different sweep."""

import glob
import math
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweep import api, engine, store

AXES = {
    "depth": [2, 5],
    "sigma_w": [0.9, 1.1, 1.4],
    "width": [4],
    "activation": ["tanh", "relu"],
    "seed": [0, 1],
}
SPEC = {"name": "store-test", "axes": AXES}


def test_nan_survives_the_round_trip(tmp_path):
    store.open_dir(str(tmp_path), SPEC, 0, overwrite=False)
    columns = {field.name: [None] for field in store.SCHEMA}
    columns.update(
        config_id=["x"],
        depth=[1],
        width=[1],
        sigma_w=[1.0],
        sigma_b=[0.0],
        seed=[0],
        init=["gaussian"],
        activation=["tanh"],
        dtype=["float32"],
        status=["nonfinite"],
        log10_act_norm=[[0.0, math.nan]],
        log10_grad_norm=[[math.nan]],
        log10_forward_gain=[math.nan],
        log10_backward_gain=[-math.inf],
        log10_jac_sv_max=[math.nan],
    )
    table = pa.table(columns, schema=store.SCHEMA)
    path = store.write_part(str(tmp_path), table, store.manifest(SPEC, 0))
    raw = pq.read_table(path)
    assert raw.column("log10_forward_gain").null_count == 0  # NaN, not null
    assert raw.column("log10_jac_sv_min").null_count == 1  # a real null stays null
    frame = store.load(str(tmp_path))
    assert (
        math.isnan(frame["log10_forward_gain"][0]) and frame["log10_backward_gain"][0] == -math.inf
    )
    assert math.isnan(frame["log10_act_norm"][0][1]) and math.isnan(frame["log10_grad_norm"][0][0])
    assert frame["depth"].dtype == np.int64 and frame["sigma_w"].dtype == np.float64
    assert b"sweep" in pq.read_schema(path).metadata


def test_resume_after_interruption_has_no_gaps_and_no_duplicates(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    full = api.run(SPEC, str(tmp_path / "full"), chunk_size=2)
    written = []
    real_write = store.write_part

    def write_then_die(*args, **kwargs):
        if len(written) == 3:
            raise KeyboardInterrupt  # a kill between two chunks
        written.append(real_write(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(store, "write_part", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        api.run(SPEC, out, chunk_size=2)
    monkeypatch.undo()
    partial = store.load(out)
    assert 0 < len(partial) < len(full)
    # A crash mid-write leaves at most a temp file, which must be ignored and, once old,
    # cleaned up; a young one may be another shard's part in flight and is left alone.
    stale, young = (
        os.path.join(out, "part-deadbeef.parquet.1234.tmp"),
        os.path.join(out, "part-young.parquet.5.tmp"),
    )
    for path in (stale, young):
        open(path, "wb").write(b"half a file")
    os.utime(stale, (time.time() - 2 * store.STALE_TEMP_SECONDS,) * 2)

    computed = []
    real_launch = engine.launch
    monkeypatch.setattr(
        engine, "launch", lambda chunk, seed: computed.append(chunk) or real_launch(chunk, seed)
    )
    resumed = api.run(SPEC, out, chunk_size=2)
    assert len(resumed) == len(full) and resumed["config_id"].is_unique
    assert set(resumed["config_id"]) == set(full["config_id"])
    assert sum(c.n_rows for c in computed) == len(full) - len(partial)
    assert glob.glob(os.path.join(out, "*.tmp")) == [young]
    a, b = full.set_index("config_id").sort_index(), resumed.set_index("config_id").sort_index()
    np.testing.assert_array_equal(a["log10_backward_gain"], b["log10_backward_gain"])

    # A finished run resumes to a no-op.
    computed.clear()
    api.run(SPEC, out, chunk_size=2)
    assert computed == []


def test_a_different_spec_is_refused_unless_overwrite(tmp_path):
    out = str(tmp_path)
    api.run(SPEC, out)
    other = {**SPEC, "axes": {**AXES, "width": [3]}}
    with pytest.raises(store.StoreError, match="different sweep"):
        api.run(other, out)
    with pytest.raises(store.StoreError, match="different sweep"):
        api.run(SPEC, out, root_seed=1)
    frame = api.run(other, out, overwrite=True)
    assert set(frame["width"]) == {3}


def test_manifest_records_spec_versions_and_device(tmp_path):
    api.run(SPEC, str(tmp_path))
    record = store.read_manifest(str(tmp_path))
    assert record["spec"]["axes"]["sigma_w"] == [0.9, 1.1, 1.4]
    for key in ["jax", "jaxlib", "sweep", "device", "prng_impl"]:
        assert record[key]
    metadata = pq.read_schema(store.parts(str(tmp_path))[0]).metadata[b"sweep"]
    assert b'"jax"' in metadata


def test_shards_partition_the_sweep(tmp_path):
    frames = [api.run(SPEC, str(tmp_path / f"s{i}"), shard=(i, 3)) for i in range(3)]
    ids = [set(f["config_id"]) for f in frames]
    assert sum(len(s) for s in ids) == len(set().union(*ids))  # disjoint
    assert set().union(*ids) == set(api.run(SPEC, str(tmp_path / "all"))["config_id"])  # complete
    # Shards can also share one directory: each run adds its slice, the last completes it.
    for i in range(3):
        together = api.run(SPEC, str(tmp_path / "shared"), shard=(i, 3))
    assert len(together) == len(set().union(*ids))


def test_the_same_grid_reordered_or_renamed_resumes(tmp_path):
    out = str(tmp_path)
    api.run(SPEC, out)
    reordered = {
        "name": "renamed",
        "axes": {**AXES, "activation": ["relu", "tanh"], "sigma_w": [1.4, 0.9, 1.1]},
    }
    assert len(api.run(reordered, out)) == len(api.run(SPEC, out))


def test_a_part_from_before_the_learning_rate_column_still_loads(tmp_path):
    """A directory resumed across versions: an older part lacks learning_rate; it reads as null."""
    import sweep

    out = str(tmp_path / "mixed")
    api.run(SPEC, out)
    first = store.parts(out)[0]
    old = pq.read_table(first)
    pq.write_table(old.drop_columns(["learning_rate"]), first)
    frame = sweep.load(out)
    assert len(frame) == 24 and frame["learning_rate"].isna().all()
    assert len(sweep.load(out, layers=True)) == int((frame["depth"] + 1).sum())
    assert len(store.read_column(out, "learning_rate")) == 24
