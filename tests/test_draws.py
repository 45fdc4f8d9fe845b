"""Independent draws ([settings] draws = "independent"): each config its own weights,
measured at its own depth inside a depth group; exact where a closed form exists, the
same bits in any chunk, and truly not shared across depth or sigma."""

import helpers
import jax
import numpy as np
import pytest

import sweep
from sweep import network, plan, spec


def independent(axes, out, **options):
    return sweep.run(
        {"name": "ind", "axes": axes, "settings": {"draws": "independent"}}, out=str(out), **options
    )


def test_identity_linear_is_exact_at_every_depth_of_a_group(tmp_path):
    """W = s·I: every gain and singular value is depth·log10 s, read at each config's own
    depth from a group run to the deepest (float64 bookkeeping: a few ulps per layer)."""
    depths = [1, 2, 7, 40, 41]
    frame = independent(
        {"depth": depths, "sigma_w": [0.5, 1.5], "width": [2], "init": ["identity"]}, tmp_path
    )
    assert len(frame) == 10 and (frame["status"] == "ok").all()
    expected = frame["depth"] * np.log10(frame["sigma_w"])
    tolerance = 64 * np.finfo(np.float64).eps * frame["depth"] * np.abs(np.log10(frame["sigma_w"]))
    for column in [
        "log10_forward_gain",
        "log10_backward_gain",
        "log10_jac_sv_max",
        "log10_jac_sv_min",
    ]:
        assert (np.abs(frame[column] - expected) <= tolerance).all(), column
    assert (frame["log10_grad_norm"].map(len) == frame["depth"]).all()
    assert (frame["log10_act_norm"].map(len) == frame["depth"] + 1).all()


@pytest.fixture(scope="module")
def tanh_rows(tmp_path_factory):
    axes = {
        "depth": [2, 5],
        "sigma_w": [0.8, 1.3],
        "sigma_b": [0.0, 0.2],
        "width": [6],
        "activation": ["tanh"],
    }
    out = tmp_path_factory.mktemp("draws")
    whole = independent(axes, out / "whole").set_index("config_id").sort_index()
    one_by_one = independent(axes, out / "single", chunk_size=1).set_index("config_id").sort_index()
    shared = (
        sweep.run({"name": "sh", "axes": axes}, out=str(out / "shared"))
        .set_index("config_id")
        .sort_index()
    )
    return whole, one_by_one, shared


def test_a_config_gives_the_same_numbers_in_any_chunk(tanh_rows):
    """Alone (chunk of one) or with others: the float32 network is the same bits, the float64
    log bookkeeping agrees to a few ulps (as for shared draws, tests/test_engine.py)."""
    whole, one_by_one, _ = tanh_rows
    for column in [
        "log10_forward_gain",
        "log10_backward_gain",
        "log10_jac_sv_max",
        "log10_jac_sv_min",
    ]:
        np.testing.assert_allclose(
            whole[column], one_by_one[column], rtol=1e-12, atol=1e-14, err_msg=column
        )
    grads = [np.concatenate(f["log10_grad_norm"].to_list()) for f in (whole, one_by_one)]
    np.testing.assert_allclose(*grads, rtol=1e-12, atol=1e-14)


def test_weights_come_from_the_configs_own_key(tanh_rows):
    """A float64 numpy forward pass with Ŵ_l, b̂_l, x from network.config_keys(config_id)
    gives the engine's forward gain to float32 rounding over 5 layers of width 6."""
    whole, _, _ = tanh_rows
    for config, row in whole.iloc[[1, 6]].iterrows():
        words = np.array([int(config[:8], 16), int(config[8:16], 16)], np.uint32)
        bucket = helpers.program(6, depths=(int(row["depth"]),), draws="independent")
        keys = network.config_keys(jax.random.key(0), words, ("gaussian",))
        x = np.asarray(network.probe_inputs(keys, bucket), np.float64)
        a = x
        for layer in range(1, int(row["depth"]) + 1):
            w_hat, b_hat = (
                np.asarray(t, np.float64) for t in network.layer_weights(keys, layer, bucket)
            )
            a = np.tanh(
                a @ (np.float32(row["sigma_w"]) * w_hat).T + np.float32(row["sigma_b"]) * b_hat
            )
        rms = lambda v: np.sqrt(np.mean(np.sum(v**2, axis=1) / v.shape[1]))  # noqa: E731
        expected = np.log10(rms(a)) - np.log10(rms(x))
        # float32 products of width 6 over 5 layers: relative error ~ 5·6·eps32 per norm.
        assert row["log10_forward_gain"] == pytest.approx(expected, abs=1e-5)


def test_nothing_is_shared_across_depth_or_sigma(tanh_rows):
    """Shared draws: the depth-5 net's first two layers are the depth-2 net (prefix), and
    only sigma differs between cells. Independent: neither holds."""
    whole, _, shared = tanh_rows

    def act(frame, depth, sigma_w, sigma_b):
        row = frame[
            (frame["depth"] == depth)
            & (frame["sigma_w"] == sigma_w)
            & (frame["sigma_b"] == sigma_b)
        ]
        return np.asarray(row["log10_act_norm"].iloc[0])

    np.testing.assert_array_equal(act(shared, 5, 0.8, 0.2)[:3], act(shared, 2, 0.8, 0.2))
    assert not np.array_equal(act(whole, 5, 0.8, 0.2)[:3], act(whole, 2, 0.8, 0.2))
    assert whole["log10_forward_gain"].nunique() == len(whole)


def test_plan_groups_depths_and_pads_to_whole_chunks():
    sweep_spec = spec.from_dict(
        {
            "axes": {"depth": list(range(1, 41)), "sigma_w": [1.0, 2.0], "width": [4]},
            "settings": {"draws": "independent"},
        }
    )
    chunks = plan.plan(sweep_spec, sweep_spec.configs(), lambda program: 7)
    assert sum(c.n_valid for c in chunks) == 80 and 1 < len({c.program for c in chunks}) <= 4
    for c in chunks:
        assert c.depths.shape == (7, 1) and c.program.draws == "independent"
        assert c.depths.max() <= c.program.n_layers == c.bucket.depths[-1]
    # Each depth runs in the group of the smallest deepest depth that holds it.
    tops = {int(d): c.program.n_layers for c in chunks for d in c.depths[c.valid_units, 0]}
    assert sorted(tops) == list(range(1, 41)) and all(d <= top for d, top in tops.items())
    assert [tops[d] for d in sorted(tops)] == sorted(tops[d] for d in tops)


def test_wide_configs_give_the_same_numbers_alone(tmp_path):
    """Width 64: each config's own weights enter batched products (one per family), which
    XLA may special-case for a chunk of one; the float32 state must not notice."""
    axes = {"depth": [2, 4], "sigma_w": [0.9, 1.4], "width": [64], "activation": ["tanh"]}
    whole = independent(axes, tmp_path / "whole").set_index("config_id").sort_index()
    alone = independent(axes, tmp_path / "alone", chunk_size=1).set_index("config_id").sort_index()
    for column in [
        "log10_forward_gain",
        "log10_backward_gain",
        "log10_jac_sv_max",
        "log10_jac_sv_min",
    ]:
        np.testing.assert_allclose(
            whole[column], alone[column], rtol=1e-12, atol=1e-14, err_msg=column
        )
    grads = [np.concatenate(f["log10_grad_norm"].to_list()) for f in (whole, alone)]
    np.testing.assert_allclose(*grads, rtol=1e-12, atol=1e-14)
