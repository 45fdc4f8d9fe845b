"""The researcher's workflow: sigma^2 axes, sweeps that grow, compact info, error hints."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from sweep import api, cli, engine, spec, store

AXES = {"depth": [2, 5], "sigma_w": [0.9, 1.4], "width": [4], "activation": ["tanh"]}


def _bad(raw):
    with pytest.raises(spec.SpecError) as err:
        spec.from_dict(raw)
    return str(err.value)


def test_sigma_squared_axes_are_the_same_configs_and_rows():
    squared = spec.from_dict(
        {"axes": {"depth": [2], "sigma_w2": [0.81, 2.0], "sigma_b2": [0.05], "width": [4]}}
    )
    plain = spec.from_dict(
        {"axes": {"depth": [2], "sigma_w": [0.9, 2**0.5], "sigma_b": [0.05**0.5], "width": [4]}}
    )
    assert squared.axes == plain.axes
    assert list(squared.configs()["config_id"]) == list(plain.configs()["config_id"])
    # A range of sigma_w2 is a range of the squares.
    ranged = spec.from_dict(
        {"axes": {"depth": [1], "sigma_w2": {"start": 1, "stop": 4, "num": 4}, "width": [2]}}
    )
    np.testing.assert_allclose(np.square(ranged.axes["sigma_w"]), [1, 2, 3, 4], rtol=1e-11)


def test_rows_carry_the_squares_as_written(run_sweep):
    frame = run_sweep({"depth": [3], "sigma_w2": [0.5, 2.0], "sigma_b2": [0.05], "width": [4]})
    assert sorted(frame["sigma_w2"]) == [0.5, 2.0] and set(frame["sigma_b2"]) == {0.05}
    np.testing.assert_allclose(frame["sigma_w"] ** 2, frame["sigma_w2"], rtol=1e-11)
    np.testing.assert_array_equal(
        frame["log10_jac_condition"], frame["log10_jac_sv_max"] - frame["log10_jac_sv_min"]
    )


@pytest.mark.parametrize(
    "axes, expected",
    [
        ({**AXES, "sigma_w2": [1.0]}, "give sigma_w or sigma_w2, not both"),
        ({"depth": [1], "width": [2]}, "axes.sigma_w (or sigma_w2) is missing"),
        ({**AXES, "sigma_b2": [-1.0]}, "axes.sigma_b2: -1.0 must be a finite number >= 0"),
        ({**AXES, "sigmaw": [1.0]}, "unknown axis 'sigmaw'; did you mean 'sigma_w'?"),
        ({**AXES, "activation": ["rleu"]}, "unknown activation 'rleu'; did you mean 'relu'?"),
        ({**AXES, "init": ["he"]}, "He (Kaiming) init is init = gaussian with sigma_w2 = 2"),
        ({**AXES, "init": ["xavier_uniform"]}, "Glorot (Xavier) init of square layers is"),
        ({**AXES, "init": ["lecun"]}, "LeCun init is init = gaussian with sigma_w2 = 1"),
        ({**AXES, "dtype": ["float61"]}, "unknown dtype 'float61'; did you mean 'float64'?"),
    ],
)
def test_bad_axes_get_one_line_with_the_fix(axes, expected):
    message = _bad({"axes": axes})
    assert expected in message and "\n" not in message


def test_misplaced_and_misspelt_keys_get_a_hint():
    assert "put the axes under an [axes] header" in _bad({"depth": [1], "sigma_w": [1]})
    assert "put it under a [settings] header" in _bad({"axes": AXES, "batch": 4})
    assert "it is an axis; put it under [axes]" in _bad({"axes": AXES, "settings": {"seed": [1]}})
    assert "did you mean 'dtype'?" in _bad({"axes": AXES, "settings": {"dtpye": "float16"}})
    assert "did you mean 'float16'?" in _bad({"axes": AXES, "settings": {"dtype": "floa16"}})
    assert "did you mean 'steps'?" in _bad({"axes": AXES, "train": {"step": 3}})
    both = {"axes": {**AXES, "dtype": ["float16"]}, "settings": {"dtype": "float32"}}
    assert "dtype is also an axis; give the dtypes as one axis" in _bad(both)
    assert "put it under a [settings] header" in _bad({"axes": AXES, "dtype": "float16"})
    with pytest.raises(spec.SpecError, match="did you mean 'lecture'"):
        spec.preset("lectur")


def _count_computed(monkeypatch):
    computed = []
    evaluate = engine.evaluate

    def counting(chunks, *args, **kwargs):
        for chunk, result in evaluate(chunks, *args, **kwargs):
            computed.extend(chunk.row_ids)
            yield chunk, result

    monkeypatch.setattr(engine, "evaluate", counting)
    return computed


def _ids(raw):
    return set(spec.from_dict(raw).configs()["config_id"])


def _written_since(out, before):
    return [
        i
        for p in store.parts(out)
        if p not in before
        for i in store.pq.read_table(p)["config_id"].to_pylist()
    ]


def test_a_sweep_grows_computing_exactly_its_new_configs(tmp_path, monkeypatch):
    out = str(tmp_path / "grown")
    small = {"name": "g", "axes": AXES}
    api.run(small, out)
    computed = _count_computed(monkeypatch)
    # New sigmas and seeds: new families, computed and written, and nothing else.
    wider = {"name": "g", "axes": {**AXES, "sigma_w": [0.9, 1.2, 1.4], "seed": [0, 1]}}
    before = store.parts(out)
    api.run(wider, out)
    assert sorted(computed) == sorted(_ids(wider) - _ids(small))
    assert sorted(_written_since(out, before)) == sorted(computed)
    # A new depth: each family computes its depths in one program, so the old families are
    # computed again, but only the new depth's rows are written.
    deeper = {"name": "g", "axes": {**wider["axes"], "depth": [2, 3, 5]}}
    before = store.parts(out)
    grown = api.run(deeper, out)
    assert sorted(_written_since(out, before)) == sorted(_ids(deeper) - _ids(wider))
    assert set(grown["config_id"]) == _ids(deeper) and len(grown) == len(_ids(deeper))
    assert store.read_manifest(out)["spec"]["axes"]["depth"] == [2, 3, 5]
    fresh = api.run(deeper, str(tmp_path / "fresh"))
    a = grown.set_index("config_id").sort_index()
    b = fresh.set_index("config_id").sort_index()
    # Other chunks, other programs: float64 bookkeeping to a few ulps (see test_engine).
    np.testing.assert_array_equal(a["status"], b["status"])
    for column in ("log10_backward_gain", "log10_forward_gain", "log10_jac_sv_min"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-12, atol=1e-12, err_msg=column)

    # The small spec again: within the directory, so nothing is computed and the manifest
    # keeps the large grid.
    computed.clear()
    assert len(api.run(small, out)) == len(_ids(deeper)) and computed == []
    assert store.read_manifest(out)["spec"]["axes"]["depth"] == [2, 3, 5]


def test_a_refusal_names_the_key_and_both_values(tmp_path):
    out = str(tmp_path / "d")
    api.run({"name": "g", "axes": AXES}, out)
    cases = [
        ({"axes": AXES, "settings": {"dtype": "float16"}}, "settings.dtype is 'float32' there"),
        ({"axes": AXES, "settings": {"dtype": "float16"}}, "'float16' in the spec"),
        ({"axes": {**AXES, "sigma_w": [0.9, 1.3]}}, "axes.sigma_w has 1.4 there"),
        ({"axes": {**AXES, "width": [8]}}, "axes.width has 4 there, which the spec lacks"),
    ]
    for raw, expected in cases:
        with pytest.raises(store.StoreError, match="different sweep") as err:
            api.run({"name": "g", **raw}, out)
        assert expected in str(err.value) and "--overwrite" not in str(err.value)
    with pytest.raises(store.StoreError, match="--seed is 0 there and 1 in the spec"):
        api.run({"name": "g", "axes": AXES}, out, root_seed=1)


def test_info_is_compact_unless_full(tmp_path, capsys):
    out = str(tmp_path / "i")
    axes = {**AXES, "depth": {"start": 1, "stop": 40, "step": 1}}
    api.run({"name": "i", "axes": axes}, out)
    capsys.readouterr()
    assert cli.main(["info", out]) == 0
    compact = capsys.readouterr().out
    assert "depth           40 values from 1 to 40, step 1" in compact
    assert "rows: 80 of 80 configs" in compact and len(compact.splitlines()) < 15
    assert cli.main(["info", out, "--full"]) == 0
    assert len(capsys.readouterr().out.splitlines()) > 40  # the JSON spec, a depth a line


def test_version_and_theory_with_sigma_b_squared(capsys):
    done = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("sweep ") and "jax" in done.stdout
    assert cli.main(["theory", "--activation", "tanh", "--sigma-b2", "0.05"]) == 0
    squared = capsys.readouterr().out
    assert "sigma_b^2=0.05)" in squared and "critical sigma_w^2 = 1.760955" in squared
    assert cli.main(["theory", "--sigma-b", "0.1", "--sigma-b2", "0.01"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_a_dry_run_writes_nothing_and_estimates_the_run(tmp_path, capsys):
    import time

    axes = {"depth": [1, 8, 24], "sigma_w": [0.5, 1.0, 1.5, 2.0], "width": [16], "seed": [0, 1]}
    raw = {"name": "d", "axes": axes, "settings": {"batch": 4}}
    fresh = tmp_path / "fresh"
    preview = api.dry_run(raw, str(fresh), timed=False)
    assert not fresh.exists()
    assert (preview.configs, preview.to_compute, preview.units) == (24, 24, 8)
    assert preview.chunks >= 1 and preview.programs == 1 and preview.chunk_bytes > 0

    # The estimate against the run itself, each from cold caches, as in a fresh process.
    # The machine is shared: a pair outside a factor 2 is measured once more, side by side.
    for attempt in range(2):
        jax.clear_caches()
        estimate = api.dry_run(raw, str(tmp_path / f"other{attempt}"))
        jax.clear_caches()
        out = str(tmp_path / f"run{attempt}")
        started = time.perf_counter()
        api.execute(raw, out)
        took = time.perf_counter() - started
        if took / 2 <= estimate.total_s <= 2 * took:
            break
    assert took / 2 <= estimate.total_s <= 2 * took, (estimate, took)

    # A finished directory: nothing to compute, nothing touched; another sweep refused.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / out).iterdir()}
    done = api.dry_run(raw, out, timed=False)
    assert (done.to_compute, done.done) == (0, 24)
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / out).iterdir()}
    with pytest.raises(store.StoreError, match="different sweep"):
        api.dry_run({**raw, "axes": {**axes, "width": [8]}}, out, timed=False)
    spec_file = tmp_path / "d.toml"
    spec_file.write_text('name = "d"\n[axes]\ndepth = [1, 2]\nsigma_w2 = [1, 2]\nwidth = [4]\n')
    assert cli.main(["run", str(spec_file), "--dry-run", "--out", out]) == 2
    assert cli.main(["run", str(spec_file), "--dry-run", "--out", str(tmp_path / "cli")]) == 0
    report = capsys.readouterr().out
    assert "configs   4 (4 to compute" in report and "estimate  about" in report
    assert not (tmp_path / "cli").exists()


def test_notebooks_get_an_xarray_dataset_and_others_a_csv(tmp_path, capsys):
    import pandas as pd

    out = str(tmp_path / "x")
    axes = {**AXES, "init": ["gaussian", "orthogonal"], "seed": [0, 1, 2]}
    frame = api.run({"name": "x", "axes": axes}, out)
    ds = api.load(out, as_xarray=True)
    assert dict(ds.sizes) == {
        "architecture": 1,
        "residual_scale": 1,
        "dtype": 1,
        "init": 2,
        "activation": 1,
        "width": 1,
        "seed": 3,
        "sigma_b": 1,
        "sigma_w": 2,
        "depth": 2,
    }
    median = ds.log10_backward_gain.median("seed").sel(init="orthogonal")
    rows = frame[frame["init"] == "orthogonal"]
    expected = rows.groupby(["sigma_w", "depth"])["log10_backward_gain"].median()
    for (sigma_w, depth), value in expected.items():
        assert float(median.sel(sigma_w=sigma_w, depth=depth).squeeze()) == value
    np.testing.assert_allclose(ds["sigma_w2"], ds["sigma_w"] ** 2, rtol=1e-10)

    csv = tmp_path / "rows.csv"
    assert cli.main(["export", out, "--csv", str(csv)]) == 0
    back = pd.read_csv(csv)
    assert len(back) == len(frame) and "log10_act_norm" not in back.columns
    ordered = frame.sort_values("config_id").reset_index(drop=True)
    back = back.sort_values("config_id").reset_index(drop=True)
    np.testing.assert_array_equal(back["log10_backward_gain"], ordered["log10_backward_gain"])
    assert cli.main(["export", out, "--csv", str(tmp_path / "long.csv"), "--layers"]) == 0
    assert len(pd.read_csv(tmp_path / "long.csv")) == sum(frame["depth"] + 1)
    assert cli.main(["export", str(tmp_path), "--csv", str(tmp_path / "no.csv")]) == 2
    assert not (tmp_path / "no.csv").exists()
    assert "not a sweep results directory" in capsys.readouterr().err


def test_a_dry_run_refuses_what_a_run_refuses(tmp_path):
    raw = {"name": "r", "axes": AXES}
    for kwargs, expected in [
        ({"chunk_size": 0}, "--chunk-size: 0 must be >= 1"),
        ({"shard": (2, 2)}, "--shard: 2/2 needs 0 <= I < N"),
        ({"overwrite": True, "shard": (0, 2)}, "--overwrite with --shard"),
    ]:
        for entry in (api.dry_run, api.execute):
            with pytest.raises(spec.SpecError, match=expected):
                entry(raw, str(tmp_path / "r"), **kwargs)
    assert not (tmp_path / "r").exists()


def test_dtype_as_an_axis_gives_each_dtype_the_rows_of_its_own_sweep(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "dtypes")
    api.run({"name": "d", "axes": {**AXES, "dtype": ["float16"]}}, out)
    computed = _count_computed(monkeypatch)
    both = {"name": "d", "axes": {**AXES, "dtype": ["float16", "float32"]}}
    grown = api.run(both, out)  # grows: only the float32 configs are computed
    assert sorted(computed) == sorted(_ids(both) - _ids({"axes": {**AXES, "dtype": ["float16"]}}))
    assert len(grown) == 8 and grown.groupby("dtype").size().to_dict() == {
        "float16": 4,
        "float32": 4,
    }
    # Each dtype's rows are those of a sweep with that dtype as its setting (the same
    # draws: common random numbers across dtypes), but for their ids, which name the dtype.
    keys = ["depth", "sigma_w"]
    for dtype in ("float16", "float32"):
        alone = api.run({"axes": AXES, "settings": {"dtype": dtype}}, str(tmp_path / dtype))
        a = grown[grown["dtype"] == dtype].sort_values(keys).reset_index(drop=True)
        b = alone.sort_values(keys).reset_index(drop=True)
        for column in ("log10_backward_gain", "log10_act_norm", "precision_loss_layer", "status"):
            assert a[column].equals(b[column]), column
        assert not set(a["config_id"]) & set(b["config_id"])
    # A dtype setting keeps the ids of sweeps from before the axis: they name no dtype.
    assert set(alone["config_id"]) == _ids({"axes": AXES})
    sweep = spec.from_dict(both)
    assert spec.from_dict(sweep.to_dict()) == sweep and "dtype" not in sweep.to_dict()["settings"]
    for row in sweep.configs().to_dict("records"):
        assert row["config_id"] == spec.config_id(row)
    blocks = list(sweep.config_blocks(1))
    assert all(spec.grid_table(b)["dtype"].nunique() == 1 for b in blocks)  # a block, a dtype
    # Growing across the two forms is refused: their ids differ.
    with pytest.raises(store.StoreError, match="dtype is an axis there and a setting in the spec"):
        api.run({"name": "d", "axes": AXES, "settings": {"dtype": "float32"}}, out)
    # Rows of two dtypes never pool silently in a plot: pick one or facet.
    assert cli.main(["plot", out, "--out", str(tmp_path / "p.png")]) == 2
    assert "pick one with --where dtype=float16 or add it to --facet" in capsys.readouterr().err
    assert cli.main(["plot", out, "--facet", "dtype", "--out", str(tmp_path / "p.png")]) == 0
    ds = api.load(out, as_xarray=True)
    assert ds.sizes["dtype"] == 2


@pytest.mark.parametrize(
    "preset, chunk_size",
    [("lecture", None), ("lecture", 7), ("resnet", None), ("trainability", None)],
)
def test_the_progress_bar_ends_where_its_chunks_add_up(preset, chunk_size, monkeypatch):
    """The bar's whole, estimated from the spec, is the sum of what its chunks advance it
    (their work, scan steps and padding), within 1%: it neither stalls nor jumps at the end."""
    from sweep import cost, progress

    sweep = spec.preset(preset)
    planner = api.Planner.of(sweep, None, chunk_size)
    bar = progress.Progress(sweep, 1.0, False, planner.units_per_chunk)
    steps = []
    monkeypatch.setattr(bar.bar, "update", steps.append)
    bar.total = float("inf")
    chunks = list(planner.chunks(store.IdSet.of([]), (0, 1)))
    for chunk in chunks:
        bar.done(chunk, chunk.n_rows)
    assert sum(steps) == pytest.approx(cost.grid_work(sweep, planner.units_per_chunk), rel=0.01)
    assert bar.configs == sweep.n_configs and len(steps) == len(chunks)
