"""The trainability probe: critical nets train and deep ordered ones do not, a config trains
to the same bits alone or padded in a vmapped chunk, runs repeat, the memory estimate
bounds XLA's, and bad [train] values are one line with exit code 2."""

import math

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from sweep import cli, columns, memory, network, plan, spec, store, tasks, train

TEACHER = spec.TrainSettings(
    steps=100, optimizer="sgd", learning_rate=0.2, batch_size=32, task="teacher"
)
DIGITS = spec.TrainSettings(
    steps=30, optimizer="adam", learning_rate=0.01, batch_size=16, task="digits"
)


def bucket(width=16, activation="tanh", depths=(1,)):
    return helpers.program(width, "gaussian", activation, depths)


@pytest.fixture(scope="module")
def critical_and_ordered():
    """tanh at sigma_b = 0: critical at sigma_w = 1 (depth 2), deep in order at sigma_w = 0.5,
    sigma_b = 0.3 (depth 24, xi_c ~ 1.5 layers). One chunk, two depth groups."""
    return train.train_chunk(
        [1.0, 0.5], [0.0, 0.3], [2, 24], 0, jax.random.key(0), bucket(), TEACHER
    )


def test_shallow_critical_network_trains(critical_and_ordered):
    r = {k: v[0] for k, v in critical_and_ordered.items()}
    assert r["train_loss_final"] <= 0.5 * r["train_loss_initial"]
    assert r["trainable"] and not r["train_diverged"]
    assert 0 < r["train_steps_to_half_loss"] <= TEACHER.steps
    assert np.isnan(r["train_accuracy_final"])  # regression
    curve = critical_and_ordered["train_loss_curve"][0]
    assert len(curve) == 50 and curve[-1] < curve[0]  # 100 steps in windows of 2: <= 64 points


def test_deep_ordered_network_does_not_train(critical_and_ordered):
    r = {k: v[1] for k, v in critical_and_ordered.items()}
    assert r["train_loss_final"] > 0.5 * r["train_loss_initial"]
    assert not r["trainable"] and not r["train_diverged"]
    assert r["train_steps_to_half_loss"] == 0


def test_initial_loss_is_that_of_the_measurement_weights(critical_and_ordered):
    """W_l = sigma_w Ŵ_l, b_l = sigma_b b̂_l from network.layer_weights, rebuilt here in float64."""
    keys = network.family_keys(jax.random.key(0), 0, 16, ("gaussian",))
    readout = (
        jax.random.normal(
            train.train_keys(jax.random.key(0), 0, 16)["readout"], (10, 16), jnp.float32
        )
        / 4.0
    )
    x, y = tasks.teacher_data(16)
    for config, (sigma_w, sigma_b, depth) in enumerate([(1.0, 0.0, 2), (0.5, 0.3, 24)]):
        a = x.astype(np.float64)
        for layer in range(1, depth + 1):
            w_hat, b_hat = (
                np.asarray(t, np.float64) for t in network.layer_weights(keys, layer, bucket())
            )
            a = np.tanh(a @ (np.float32(sigma_w) * w_hat).T + np.float32(sigma_b) * b_hat)
        expected = np.mean(0.5 * np.mean((a @ np.asarray(readout, np.float64).T - y) ** 2, axis=-1))
        assert critical_and_ordered["train_loss_initial"][config] == pytest.approx(
            expected, rel=1e-5
        )


def test_alone_equals_padded_vmapped_chunk():
    """Depth 3 padded to 7 layers of identity beside other depths, one group: same bits."""
    sigma_w, sigma_b, depth = [0.9, 1.2, 1.1, 2.0], [0.1, 0.2, 0.0, 0.3], [5, 3, 7, 1]
    chunk = train.train_chunk(
        sigma_w, sigma_b, depth, 0, jax.random.key(0), bucket(), DIGITS, max_groups=1
    )
    alone = train.train_chunk(
        sigma_w[1:2], sigma_b[1:2], depth[1:2], 0, jax.random.key(0), bucket(), DIGITS
    )
    assert set(alone) == set(store.TRAIN_COLUMNS)
    for name, values in alone.items():
        np.testing.assert_array_equal(values[0], chunk[name][1], err_msg=name)
    assert 0 < chunk["train_accuracy_final"][1] <= 1


def test_same_seed_same_result_other_seed_differs(critical_and_ordered):
    again = train.train_chunk(
        [1.0, 0.5], [0.0, 0.3], [2, 24], 0, jax.random.key(0), bucket(), TEACHER
    )
    for name, values in again.items():
        np.testing.assert_array_equal(values, critical_and_ordered[name], err_msg=name)
    other = train.train_chunk(
        [1.0, 0.5], [0.0, 0.3], [2, 24], 1, jax.random.key(0), bucket(), TEACHER
    )
    assert other["train_loss_initial"][0] != critical_and_ordered["train_loss_initial"][0]


def test_rmsprop_trains_a_shallow_net():
    """sgd, adam and momentum train in the tests above and below; rmsprop here."""
    settings = spec.TrainSettings(
        steps=60, optimizer="rmsprop", learning_rate=0.003, batch_size=32, task="teacher"
    )
    r = train.train_chunk(
        [1.0, 1.0], [0.0, 0.0], [2, 2], 0, jax.random.key(0), bucket(width=8), settings
    )
    assert (
        np.all(r["train_loss_final"] < 0.75 * r["train_loss_initial"])
        and not r["train_diverged"].any()
    )


def test_divergence_is_flagged_and_untrainable():
    settings = spec.TrainSettings(
        steps=10, optimizer="sgd", learning_rate=10.0, batch_size=16, task="teacher"
    )
    r = train.train_chunk(
        [3.0, 3.0],
        [0.0, 0.0],
        [6, 6],
        0,
        jax.random.key(0),
        bucket(width=8, activation="relu"),
        settings,
    )
    assert (
        r["train_diverged"].all()
        and not r["trainable"].any()
        and np.isnan(r["train_loss_final"]).all()
    )


def test_train_columns_pick_rows_and_split_by_memory():
    """A measured chunk's rows (family-major, depth-minor), padded with a copy: whole, split
    into one-family programs by a tiny budget, and one family through train_chunk, all the
    same; without [train] the columns are left to the store, which writes null."""
    sweep = spec.from_dict(
        {
            "axes": {"depth": [1, 3], "sigma_w": [1.0, 1.5, 2.0], "sigma_b": [0.2], "width": [8]},
            "train": {
                "steps": 12,
                "optimizer": "momentum",
                "learning_rate": 0.05,
                "batch_size": 8,
                "task": "digits",
            },
        }
    )
    chunk = plan.plan(sweep, sweep.configs(), lambda program: 2)[1]  # 2.0 and its copy
    assert chunk.n_valid == 1 and len(chunk.sigma_w) == 2
    rows = columns.chunk_rows(chunk)
    whole = train.train_columns(chunk, rows, sweep.train, 0)
    split = train.train_columns(chunk, rows, sweep.train, 0, memory_budget=1)
    assert set(whole) == set(store.TRAIN_COLUMNS)
    for name in whole:
        assert len(whole[name]) == 2
        np.testing.assert_array_equal(np.ma.filled(whole[name], -1), np.ma.filled(split[name], -1))
    program = train.single_program(chunk.program, "gaussian", "linear")
    alone = train.train_chunk(
        [2.0, 2.0], [0.2, 0.2], [1, 3], 0, jax.random.key(0), program, sweep.train
    )
    np.testing.assert_array_equal(whole["train_loss_final"], alone["train_loss_final"])
    table = store.to_table(whole, 2)
    assert table.column("train_loss_curve").null_count == 0
    assert table.column("train_accuracy_final").null_count == 0
    assert train.train_columns(chunk, rows, None, 0) == {}
    assert store.to_table({}, 2).column("trainable").null_count == 2


def xla_bytes(b, settings, n_configs):
    x, y = tasks.get(settings.task).data(b.width)
    depths = (b.n_layers,) * n_configs
    program = train.compiled(b, settings, depths, train.DEFAULT_DEPTH_GROUPS)
    per_config = (
        jnp.ones(n_configs),
        jnp.zeros(n_configs),
        jnp.ones(n_configs),
        jnp.full(n_configs, 0.01),
    )
    args = (*per_config, jnp.int32(0), jax.random.key(0), jnp.asarray(x), jnp.asarray(y))
    return helpers.xla_temp_and_argument_bytes(program.lower(*args).compile())


def test_memory_estimate_bounds_xla_memory_analysis():
    b = bucket(width=16, depths=(12,))
    settings = spec.TrainSettings(
        steps=30, optimizer="adam", learning_rate=0.01, batch_size=16, task="teacher"
    )
    two, six = xla_bytes(b, settings, 2), xla_bytes(b, settings, 6)
    estimate = train.train_bytes_per_config(b, settings)
    assert (six - two) / 4 <= estimate <= 4 * (six - two) / 4
    assert two <= 2 * estimate and six <= 6 * estimate


def test_digits_task_is_the_sklearn_set_at_any_width():
    x64, labels = tasks.digits_data(64)
    x100, _ = tasks.digits_data(100)
    x16, _ = tasks.digits_data(16)
    assert (
        x64.shape == (1797, 64)
        and x16.shape == (1797, 16)
        and sorted(set(labels)) == list(range(10))
    )
    np.testing.assert_allclose(np.mean(x16.astype(np.float64) ** 2, axis=1), 1.0, rtol=1e-6)
    # N >= 64 embeds isometrically: inner products survive up to the unit-RMS scaling.
    np.testing.assert_allclose(x64 @ x64.T / 64, x100 @ x100.T / 100, atol=1e-5)
    assert tasks.reference_loss(tasks.TASKS["digits"], 64) == pytest.approx(math.log(10), abs=1e-3)


def test_spec_round_trip_and_a_changed_train_is_a_different_sweep(tmp_path):
    raw = {
        "name": "t",
        "axes": {"depth": [1], "sigma_w": [1.0], "width": [8]},
        "train": {"steps": 5, "task": "teacher"},
    }
    sweep = spec.from_dict(raw)
    assert sweep.train == spec.TrainSettings(steps=5, task="teacher")
    assert spec.from_dict(sweep.to_dict()) == sweep
    assert "train" not in spec.from_dict({k: v for k, v in raw.items() if k != "train"}).to_dict()
    store.open_dir(str(tmp_path), sweep.to_dict(), 0, overwrite=False)
    changed = spec.from_dict({**raw, "train": {"steps": 6, "task": "teacher"}})
    with pytest.raises(store.StoreError, match="different sweep"):
        store.open_dir(str(tmp_path), changed.to_dict(), 0, overwrite=False)


def test_trainability_preset():
    preset = spec.preset("trainability")
    assert preset.train.task == "digits" and preset.axes["activation"] == ("tanh",)
    assert preset.axes["sigma_b"][0] ** 2 == pytest.approx(0.05, rel=1e-6)
    sigma_w2 = np.square(preset.axes["sigma_w"])
    assert sigma_w2.min() == pytest.approx(1.0) and sigma_w2.max() == pytest.approx(4.0)
    assert 80 <= max(preset.axes["depth"]) <= 128
    assert spec.load("trainability") == preset  # `sweep run trainability`: a preset name for a path


AXES = "[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [8]\n"
BAD_TRAIN = {
    "unknown-optimizer": ('[train]\noptimizer = "lion"\n', "lion"),
    "unknown-task": ('[train]\ntask = "mnist"\n', "mnist"),
    "zero-steps": ("[train]\nsteps = 0\n", "train.steps"),
    "negative-steps": ("[train]\nsteps = -3\n", "train.steps"),
    "float-steps": ("[train]\nsteps = 2.5\n", "train.steps"),
    "zero-learning-rate": ("[train]\nlearning_rate = 0\n", "train.learning_rate"),
    "negative-learning-rate": ("[train]\nlearning_rate = -0.1\n", "train.learning_rate"),
    "nan-learning-rate": ("[train]\nlearning_rate = nan\n", "train.learning_rate"),
    "empty-learning-rates": ("[train]\nlearning_rate = []\n", "train.learning_rate"),
    "negative-learning-rate-in-list": (
        "[train]\nlearning_rate = [0.1, -0.01]\n",
        "train.learning_rate",
    ),
    "learning-rate-range-without-num": (
        "[train]\nlearning_rate = {start = 0.1, stop = 1}\n",
        "train.learning_rate",
    ),
    "zero-batch-size": ("[train]\nbatch_size = 0\n", "train.batch_size"),
    "unknown-key": ("[train]\nepochs = 3\n", "epochs"),
    "not-a-table": ('train = "yes"\n' + AXES, "train"),
}


@pytest.mark.parametrize("text, expected", BAD_TRAIN.values(), ids=BAD_TRAIN.keys())
def test_bad_train_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, text, expected):
    path = tmp_path / "spec.toml"
    path.write_text(text if text.startswith("train =") else AXES + text)
    out = tmp_path / "out"
    code = cli.main(["run", str(path), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert lines[0].startswith("sweep: error:") and expected in lines[0], lines[0]
    assert "Traceback" not in captured.err and captured.out == "" and not out.exists()


def test_learning_rate_axis_rows_equal_single_rate_sweeps(tmp_path):
    """[train] learning_rate as a list: one row per (config, rate), measurements repeated,
    and each rate's training equal, bit for bit, to a sweep with only that rate."""
    import sweep

    axes = {"depth": [1, 3], "sigma_w": [0.8, 1.2], "width": [8], "activation": ["tanh"]}
    train_table = {"steps": 20, "optimizer": "momentum", "batch_size": 16, "task": "teacher"}
    rates = [0.02, 0.3]
    both = sweep.run(
        {"name": "lr", "axes": axes, "train": {**train_table, "learning_rate": rates}},
        out=str(tmp_path / "both"),
    )
    assert len(both) == 2 * 2 * 2 and both["config_id"].is_unique
    assert sorted(set(both["learning_rate"])) == rates
    per_config = both.groupby(["sigma_w", "depth"])
    assert (per_config["log10_backward_gain"].nunique() == 1).all() and (
        per_config.size() == 2
    ).all()
    train_names = [name for name in store.TRAIN_COLUMNS if name != "train_loss_curve"]
    for rate in rates:
        alone = sweep.run(
            {"name": "lr1", "axes": axes, "train": {**train_table, "learning_rate": rate}},
            out=str(tmp_path / f"r{rate}"),
        )
        mine = both[both["learning_rate"] == rate].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            mine[train_names], alone[train_names], check_exact=True, check_dtype=False
        )
        np.testing.assert_array_equal(
            np.stack(mine["train_loss_curve"]), np.stack(alone["train_loss_curve"])
        )
    # Resume: the ids written are the ids the spec asks for, so a rerun computes nothing.
    assert set(both["config_id"]) == set(
        spec.from_dict({"axes": axes, "train": {**train_table, "learning_rate": rates}}).configs()[
            "config_id"
        ]
    )
    # A larger rate trains the shallow critical-ish nets further in these few steps.
    final = both.pivot_table(
        index=["sigma_w", "depth"], columns="learning_rate", values="train_loss_final"
    )
    assert (final[0.3] < final[0.02]).all()


def test_learning_rate_range_table():
    sweep_spec = spec.from_dict(
        {
            "axes": {"depth": [1], "sigma_w": [1.0], "width": [8]},
            "train": {"learning_rate": {"start": 0.001, "stop": 0.1, "num": 3, "log": True}},
        }
    )
    assert sweep_spec.train.learning_rate == pytest.approx((0.001, 0.01, 0.1))
    assert sweep_spec.n_configs == 3 and list(sweep_spec.configs().columns) == [
        *(a for a in spec.AXES if a != "dtype"),  # a setting here, so not a column
        "learning_rate",
        "config_id",
    ]


def test_chunk_size_counts_rows_of_every_learning_rate():
    """--chunk-size is in configs (rows): a family of 2 depths at 2 rates is 4 of them."""
    b = bucket(depths=(1, 3))
    two_rates = spec.TrainSettings(steps=5, task="teacher", learning_rate=(0.1, 0.2))
    assert memory.units_per_chunk(b, 2 * 2, 2**30, 8, two_rates) == 2
    assert memory.units_per_chunk(b, 2, 2**30, 8, None) == 4
