"""The grid streamed in blocks: blocks cover it once in whole families, rows do not
depend on the blocking, resume and shards work block by block, and ids are numbers."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from sweep import api, engine, plan, spec, store

AXES = {
    "depth": [1, 2, 3],
    "sigma_w": [0.8, 1.0, 1.2, 1.4, 1.6],
    "sigma_b": [0.0, 0.1],
    "width": [3, 4],
    "init": ["gaussian", "orthogonal"],
    "seed": [0, 1, 2],
}


@pytest.mark.parametrize("draws", ["shared", "independent"])
@pytest.mark.parametrize("max_rows", [1, 4, 7, 40, 200, 10**6])
def test_blocks_cover_the_grid_once_in_whole_families(max_rows, draws):
    sweep = spec.from_dict({"axes": AXES, "settings": {"draws": draws}})
    blocks = [spec.grid_table(levels) for levels in sweep.config_blocks(max_rows)]
    rows = pd.concat(blocks)
    assert sorted(rows["config_id"]) == sorted(sweep.configs()["config_id"])
    families = [a for a in spec.FAMILY_AXES if a in sweep.axes]
    for block in blocks:  # every family whole: all its depths
        per_family = block.groupby(families, dropna=False)["depth"].nunique()
        assert (per_family == len(AXES["depth"])).all()
    if max_rows == 40:  # room for 13 families: one whole seed (10 families) a block
        assert {len(b) // 3 for b in blocks} == {10}
    if max_rows == 10**6:
        assert len(blocks) == 1
    assert max(len(b) for b in blocks) <= max(max_rows, 3)


def test_rows_do_not_depend_on_the_blocking(tmp_path, monkeypatch):
    raw = {"axes": AXES}
    whole = api.run(raw, str(tmp_path / "whole"), chunk_size=6)
    monkeypatch.setattr(api, "BLOCK_ROWS", 1)
    monkeypatch.setattr(api, "CHUNKS_PER_BLOCK", 1)  # blocks of one chunk: 2 families
    blocks = list(spec.from_dict(raw).config_blocks(6))
    assert len(blocks) == 60
    streamed = api.run(raw, str(tmp_path / "streamed"), chunk_size=6)
    pd.testing.assert_frame_equal(whole, streamed)


def test_resume_and_shards_work_block_by_block(tmp_path, monkeypatch):
    raw = {"axes": AXES}
    monkeypatch.setattr(api, "BLOCK_ROWS", 1)
    monkeypatch.setattr(api, "CHUNKS_PER_BLOCK", 1)
    full = api.run(raw, str(tmp_path / "full"), chunk_size=6)
    shards = [api.run(raw, str(tmp_path / "shared"), chunk_size=6, shard=(i, 3)) for i in range(3)]
    assert [len(s) for s in shards] == sorted(len(s) for s in shards)  # each adds its slice
    pd.testing.assert_frame_equal(full, shards[-1])
    # Each shard's families are the ones the documented per-unit hash gives.
    sweep = spec.from_dict(raw)
    units = sweep.configs()[list(sweep.unit_axes)].drop_duplicates()
    mine = api.shard_mask(units, 1, 3)
    alone = api.run(raw, str(tmp_path / "one"), chunk_size=6, shard=(1, 3))
    got = alone[list(sweep.unit_axes)].drop_duplicates()
    assert len(got) == int(mine.sum())

    def keys(frame):  # residual_scale is NaN (null) for mlp, and NaN != NaN in a set
        return set(map(tuple, frame.fillna(-1).to_numpy()))

    assert keys(got) == keys(units[mine])


def test_ids_as_numbers_and_the_done_set():
    ids = [hashlib.sha1(str(i).encode()).hexdigest()[:16] for i in range(1000)]
    numbers = spec.id_numbers(ids)
    assert numbers.dtype == np.uint64 and [int(n) for n in numbers] == [int(i, 16) for i in ids]
    done = store.IdSet(np.unique(numbers[::3]))
    assert done.count() == 334
    np.testing.assert_array_equal(done.contains(numbers), np.arange(1000) % 3 == 0)
    assert not store.IdSet(np.zeros(0, np.uint64)).contains(numbers).any()


def test_a_chunk_launched_ahead_gives_the_same_metrics():
    sweep = spec.from_dict({"axes": {**AXES, "width": [4], "init": ["gaussian"]}})
    chunks = plan.plan(sweep, sweep.configs(), lambda program: 4)
    assert len(chunks) > 2
    one_by_one = list(engine.evaluate(chunks, 0, lookahead=0))
    ahead = list(engine.evaluate(iter(chunks), 0, lookahead=2))
    for (a, metrics_a), (b, metrics_b) in zip(one_by_one, ahead, strict=True):
        assert a is b
        for name in metrics_a:
            np.testing.assert_array_equal(metrics_a[name], metrics_b[name])
