"""Batching must not change any number: padding, chunking, bucket order, compile count."""

import numpy as np
import pandas as pd
import pytest

from sweep import engine

AXES = {
    "depth": [3, 7, 12],
    "sigma_w": [0.8, 1.0, 1.3],
    "sigma_b": [0.0, 0.2],
    "width": [5],
    "init": ["gaussian", "orthogonal"],
    "activation": ["tanh", "relu"],
    "seed": [0, 1],
}
METRICS = [
    "log10_act_norm",
    "log10_forward_gain",
    "log10_grad_norm",
    "log10_backward_gain",
    "log10_jac_sv_max",
    "log10_jac_sv_min",
    "overflow_layer",
    "underflow_layer",
    "status",
]


def _by_id(frame):
    return frame.set_index("config_id").sort_index()


# The network itself (float32 here) is bit-for-bit the same however configs are batched.
# The float64 bookkeeping on top of it (reductions into log-scales, Jacobian norms) may
# sum in another order for another batch shape: a few float64 ulps, which never feed back
# into the float32 state, so they cannot grow with depth.
FLOAT64_RTOL = 1e-12


def assert_same_rows(a, b):
    a, b = _by_id(a), _by_id(b)
    ids = a.index
    assert set(ids) <= set(b.index)
    for column in METRICS:
        left, right = a.loc[ids, column], b.loc[ids, column]
        if left.dtype == object and isinstance(left.iloc[0], (list, np.ndarray)):
            left, right = np.concatenate(left.to_list()), np.concatenate(right.to_list())
            np.testing.assert_allclose(
                left, right, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL, err_msg=column
            )
        elif left.dtype == np.float64 and column.startswith("log10"):
            np.testing.assert_allclose(
                left, right, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL, err_msg=column
            )
        else:
            pd.testing.assert_series_equal(left, right, check_names=False, obj=column)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from sweep import api

    return api.run({"name": "ref", "axes": AXES}, str(tmp_path_factory.mktemp("ref")))


def test_one_row_per_config_with_stable_ids(reference):
    assert len(reference) == 3 * 3 * 2 * 2 * 2 * 2
    assert reference["config_id"].is_unique
    assert (reference["config_id"].str.len() == 16).all()


@pytest.mark.parametrize("chunk_size", [1, 1000], ids=["chunk1", "chunk1000"])
def test_chunk_size_does_not_change_results(reference, run_sweep, chunk_size):
    assert_same_rows(reference, run_sweep(AXES, chunk_size=chunk_size))


def test_bucket_order_and_composition_do_not_change_results(reference, run_sweep):
    reordered = {
        **AXES,
        "init": ["orthogonal", "gaussian"],
        "activation": ["relu", "tanh"],
        "seed": [1, 0],
    }
    assert_same_rows(reference, run_sweep(reordered))
    alone = run_sweep(
        {**AXES, "init": ["orthogonal"], "activation": ["relu"], "sigma_w": [1.3], "seed": [1]}
    )
    assert_same_rows(alone, reference)


def test_padded_equals_unpadded(reference, run_sweep):
    # Depth 3 computed alone (no padding to 12, no other streams) equals depth 3 inside
    # the family that runs to 12.
    shallow = run_sweep({**AXES, "depth": [3]})
    assert_same_rows(shallow, reference)


def test_one_program_per_width_compiles_once(run_sweep):
    engine.compiled.cache_clear()
    before = engine.TRACE_COUNT["families"]
    # 2 inits x 2 activations x 2 seeds x 5 sigma values, in chunks of 2 families: 24
    # chunks, the last of each (bucket, seed) padded, and one program (per width) compiles.
    axes = {**AXES, "sigma_w": [0.7, 0.8, 0.9, 1.0, 1.1], "sigma_b": [0.0]}
    run_sweep(axes, chunk_size=2 * len(AXES["depth"]))
    assert engine.TRACE_COUNT["families"] - before == 1


def test_a_bucket_alone_equals_its_branch_of_a_shared_program(reference, run_sweep):
    """orthogonal + relu run by a program of its own equals the same rows of the reference,
    whose program switches between 2 inits and 2 activations."""
    alone = run_sweep({**AXES, "init": ["orthogonal"], "activation": ["relu"]})
    assert_same_rows(alone, reference)


def test_shallower_depths_are_prefixes(reference):
    rows = reference.set_index(
        ["init", "activation", "seed", "sigma_w", "sigma_b", "depth"]
    ).sort_index()
    for key, group in rows.groupby(level=[0, 1, 2, 3, 4]):
        deepest = np.asarray(group["log10_act_norm"].iloc[-1])
        for depth, row in group.droplevel([0, 1, 2, 3, 4]).iterrows():
            np.testing.assert_array_equal(np.asarray(row["log10_act_norm"]), deepest[: depth + 1])


def test_all_dtypes_and_losses_run(run_sweep):
    for dtype in ["float64", "bfloat16", "float16"]:
        for loss in ["cotangent", "mse"]:
            frame = run_sweep(
                {"depth": [4], "sigma_w": [1.0], "width": [3], "activation": ["tanh"]},
                {"dtype": dtype, "loss": loss},
            )
            assert (frame["dtype"] == dtype).all()
            assert np.isfinite(
                frame[["log10_forward_gain", "log10_backward_gain"]].to_numpy()
            ).all()


def test_a_lone_wide_family_equals_the_same_family_in_a_chunk(tmp_path):
    """Regression: at B·N >= 512 XLA:CPU once miscompiled the batch Gram matrix of a chunk of
    one family (gradient norms off by ~0.6 decades); alone and in company must agree."""
    from sweep import api

    axes = {"depth": [2, 4], "sigma_w": [0.9, 1.2, 1.5], "width": [64], "activation": ["tanh"]}
    together = api.run({"name": "wide", "axes": axes}, str(tmp_path / "together"))
    alone = api.run(
        {"name": "wide", "axes": axes}, str(tmp_path / "alone"), chunk_size=2
    )  # one family per chunk
    assert_same_rows(alone, together)
