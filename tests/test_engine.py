"""Batching must not change any number: padding, chunking, bucket order, compile count."""

import numpy as np
import pytest
from helpers import METRICS, assert_same_rows, count_compilations

from sweep import store

AXES = {
    "depth": [3, 7, 12],
    "sigma_w": [0.8, 1.0, 1.3],
    "sigma_b": [0.0, 0.2],
    "width": [5],
    "init": ["gaussian", "orthogonal"],
    "activation": ["tanh", "relu"],
    "seed": [0, 1],
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from sweep import api

    return api.run({"name": "ref", "axes": AXES}, str(tmp_path_factory.mktemp("ref")))


def test_one_row_per_config_with_stable_ids(reference):
    assert len(reference) == 3 * 3 * 2 * 2 * 2 * 2
    assert reference["config_id"].is_unique
    assert (reference["config_id"].str.len() == 16).all()


THEORY = [name for name in store.SCHEMA.names if name.startswith("theory_")]


@pytest.mark.parametrize("chunk_size", [1, 1000], ids=["chunk1", "chunk1000"])
def test_chunk_size_does_not_change_results(reference, run_sweep, chunk_size):
    """Measurements and theory alike: a resumed directory never mixes two roundings."""
    assert_same_rows(reference, run_sweep(AXES, chunk_size=chunk_size), [*METRICS, *THEORY])


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
    # 2 inits x 2 activations x 2 seeds x 5 sigma values, in chunks of 2 families: 24
    # chunks, the last of each (bucket, seed) padded, and one program (per width) compiles.
    # (The width 6 is new to this test session, so nothing is cached from before.)
    axes = {**AXES, "sigma_w": [0.7, 0.8, 0.9, 1.0, 1.1], "sigma_b": [0.0], "width": [6]}
    with count_compilations() as counts:
        run_sweep(axes, chunk_size=2 * len(AXES["depth"]))
    assert counts.get("run") == 1, counts


def test_a_bucket_alone_equals_its_branch_of_a_shared_program(reference, run_sweep):
    """orthogonal + relu run by a program of its own equals the same rows of the reference,
    whose program switches between 2 inits and 2 activations."""
    alone = run_sweep({**AXES, "init": ["orthogonal"], "activation": ["relu"]})
    assert_same_rows(alone, reference)


def test_shallower_depths_are_prefixes(reference):
    rows = reference.set_index(
        ["init", "activation", "seed", "sigma_w", "sigma_b", "depth"]
    ).sort_index()
    for _, group in rows.groupby(level=[0, 1, 2, 3, 4]):
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


def test_seed_packing_does_not_change_results(run_sweep):
    """A config's row is the same in a one-seed chunk and in a many-seed chunk (alone: in
    test_bucket_order_and_composition_do_not_change_results, a chunk of one seed)."""
    axes = {
        **AXES,
        "depth": [3, 7],
        "sigma_b": [0.2],
        "init": ["gaussian"],
        "activation": ["tanh"],
        "seed": [0, 1, 2, 3],
    }
    packed = run_sweep(axes)  # the four seeds' 3 families each: one chunk of 4 groups
    per_seed = run_sweep(axes, chunk_size=3 * 2)  # 3 families (x 2 depths): one seed a chunk
    assert_same_rows(per_seed, packed)
