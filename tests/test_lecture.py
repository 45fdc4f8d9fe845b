"""The lecture's example, W = s·I with 2-unit linear layers: the engine must be exact."""

import math
import re

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweep import lecture, network

DEPTHS = list(range(1, 151)) + [10_000]
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def lecture_rows(tmp_path_factory):
    from sweep import api

    out = tmp_path_factory.mktemp("lecture")
    axes = {
        "depth": DEPTHS,
        "sigma_w": [0.5, 1.5],
        "width": [2],
        "init": ["identity"],
        "activation": ["linear"],
    }
    return api.run({"name": "lecture-exact", "axes": axes}, str(out))


@pytest.mark.parametrize(
    "column", ["log10_forward_gain", "log10_backward_gain", "log10_jac_sv_max", "log10_jac_sv_min"]
)
def test_gain_is_depth_times_log_sigma(lecture_rows, column):
    expected = lecture_rows["depth"] * np.log10(lecture_rows["sigma_w"])
    # Each layer rounds a unit vector to float32 once; the norm is charged exactly, so
    # only the direction's rounding (eps/2 per entry) can leak, once per layer at most.
    tolerance = lecture_rows["depth"] * EPS32 / math.log(10)
    np.testing.assert_array_less(np.abs(lecture_rows[column] - expected), tolerance)


def test_act_norm_trajectory_is_geometric(lecture_rows):
    deepest = lecture_rows[lecture_rows["depth"] == 150]
    for _, row in deepest.iterrows():
        trajectory = np.asarray(row["log10_act_norm"])
        assert len(trajectory) == 151 and len(row["log10_grad_norm"]) == 150
        steps = np.diff(trajectory)
        np.testing.assert_allclose(steps, math.log10(row["sigma_w"]), atol=4 * EPS32)


def test_float32_overflow_layer_is_where_sigma_power_passes_the_max(lecture_rows):
    bucket = helpers.program(2, "identity", "linear")
    keys = network.family_keys(jax.random.key(0), 0, 2, ("identity",))
    max_abs = float(jnp.max(jnp.abs(network.probe_inputs(keys, bucket))))
    log_excess = (
        np.arange(1, 10_001) * math.log(1.5)
        + math.log(max_abs)
        - math.log(np.finfo(np.float32).max)
    )
    expected = int(np.argmax(log_excess > 0)) + 1
    # The plain pass rounds once per layer; make sure the crossing is not within that noise.
    assert (
        abs(log_excess[expected - 1]) > expected * EPS32
        and abs(log_excess[expected - 2]) > expected * EPS32
    )
    rows = lecture_rows[lecture_rows["sigma_w"] == 1.5]
    assert (rows.loc[rows["depth"] >= expected, "overflow_layer"] == expected).all()
    assert rows.loc[rows["depth"] < expected, "overflow_layer"].isna().all()
    assert set(rows.loc[rows["depth"] >= expected, "status"]) == {"overflow"}


def test_float32_underflow_is_flagged_and_metrics_stay_exact(lecture_rows):
    deep = lecture_rows[(lecture_rows["sigma_w"] == 0.5) & (lecture_rows["depth"] == 10_000)].iloc[
        0
    ]
    assert deep["status"] == "underflow" and deep["underflow_layer"] > 0
    assert deep["log10_forward_gain"] == pytest.approx(10_000 * math.log10(0.5), abs=10_000 * EPS32)


def test_lecture_table_prints_exact_powers(lecture_rows):
    lines = lecture.lecture_table(lecture_rows).splitlines()
    body = [line for line in lines if line.strip() and line.split()[0].isdigit()]
    assert [int(line.split()[0]) for line in body] == list(lecture.TABLE_DEPTHS)
    for line in body:
        depth = int(line.split()[0])
        numbers = [float(x) for x in re.findall(r"\d\.\d{4}e[+-]\d+", line)]
        expected = [s**depth for s in lecture.TABLE_SCALES for _ in range(2)]  # ŷ = [s^L, s^L]
        np.testing.assert_allclose(numbers, expected, rtol=1e-4)  # printed to 5 digits


@pytest.mark.parametrize("value", [0.0, 1.0, -3.5, 26.4136888, 1761.4, -2000.25])
def test_format_log10_matches_python_where_python_can(value):
    text = lecture.format_log10(value)
    mantissa, exponent = text.split("e")
    assert 1 <= float(mantissa) < 10
    if abs(value) < 300:
        assert float(text) == pytest.approx(10**value, rel=1e-4)
