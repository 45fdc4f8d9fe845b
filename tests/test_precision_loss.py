"""precision_loss_layer: the first layer where the plain dtype pass leaves the exact one by
more than blocks.PRECISION_LOSS_THRESHOLD, or either pass's RMS is subnormal (README)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from sweep import blocks

THRESHOLD = blocks.PRECISION_LOSS_THRESHOLD
NO_JACOBIAN = {"jacobian": False}  # the flag is a forward quantity; the Jacobian costs N³


def log10_tiny(dtype: str) -> float:
    return math.log10(float(jnp.finfo(jnp.dtype(dtype)).tiny))


def first_subnormal_layer(row) -> int | None:
    """The first layer l >= 1 whose exact activation RMS is below the dtype's smallest
    normal number, from the row's own log10_act_norm; None if none."""
    below = np.flatnonzero(np.asarray(row["log10_act_norm"])[1:] < log10_tiny(row["dtype"]))
    return int(below[0]) + 1 if below.size else None


def layer(row) -> int | None:
    value = row["precision_loss_layer"]
    return None if np.isnan(value) else int(value)


@pytest.fixture(scope="module")
def float16_relu(tmp_path_factory):
    """The issue's case: width 128, relu, gaussian, sigma_b 0, depth 2000, float16;
    sigma_w 1.35 (as in the issue) and 1.375 (exactly a float16)."""
    from sweep import api

    raw = {
        "name": "fp16",
        "axes": {
            "depth": [2000],
            "sigma_w": [1.35, 1.375],
            "width": [128],
            "activation": ["relu"],
            "init": ["gaussian"],
        },
        "settings": {"dtype": "float16", **NO_JACOBIAN},
    }
    frame = api.run(raw, str(tmp_path_factory.mktemp("fp16")))
    return {row["sigma_w"]: row for _, row in frame.iterrows()}


def test_the_float16_case_is_flagged_though_status_says_ok(float16_relu):
    """What the issue found: status ok and no underflow, while the exact RMS is dozens of
    decades below float16's range. precision_loss_layer reports it, at the latest where
    the exact RMS crosses finfo(float16).tiny."""
    for row in float16_relu.values():
        assert row["status"] == "ok"
        assert np.isnan(row["underflow_layer"]) and np.isnan(row["overflow_layer"])
        assert row["log10_act_norm"][-1] < log10_tiny("float16") - 20
        crossing = first_subnormal_layer(row)
        assert crossing is not None and layer(row) is not None
        assert layer(row) <= crossing


def test_float16_sigma_w_rounding_compounds_in_a_relu_net(float16_relu):
    """sigma_w = 1.35 is 1.349609375 in float16, and the plain pass forms W = sigma_w Ŵ in
    the dtype. relu is homogeneous and sigma_b = 0, so the plain pass's RMS is the exact
    one times r^l, r = float16(sigma_w) / sigma_w, up to rounding noise; its relative
    error is at least |1 - r^l| (||p - e|| >= | ||p|| - ||e|| |). So the flag comes where
    that drift reaches the threshold: after it is half the threshold (the noise alone,
    ~1e-3 at these depths, cannot make up the rest) and before it is twice the threshold;
    well before the subnormal range."""
    row = float16_relu[1.35]
    ratio = float(np.float16(row["sigma_w"])) / row["sigma_w"]
    assert ratio < 1

    def drift_reaches(x):
        return math.log1p(-x) / math.log(ratio)

    assert drift_reaches(THRESHOLD / 2) < layer(row) <= drift_reaches(2 * THRESHOLD)
    assert layer(row) < first_subnormal_layer(row)


def test_an_exact_float16_sigma_w_is_flagged_where_the_rms_turns_subnormal(float16_relu):
    """sigma_w = 1.375 is exact in float16: no drift, the plain pass tracks the exact one to
    its rounding noise until the activations enter float16's subnormal range, the layer
    read off log10_act_norm."""
    row = float16_relu[1.375]
    assert float(np.float16(row["sigma_w"])) == row["sigma_w"]
    assert layer(row) == first_subnormal_layer(row)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_no_false_alarm_on_ordered_configs_at_depth_1000(run_sweep, dtype):
    """Ordered nets whose activations stay in the normal range (q* > 0), and a relu net
    that vanishes by 28 decades but stays normal in float32: never flagged."""
    axes = {
        "depth": [1000],
        "sigma_w": [1.2],
        "sigma_b": [0.3],
        "width": [64],
        "activation": ["tanh", "relu"],
        "init": ["gaussian", "orthogonal"],
    }
    ordered = run_sweep(axes, {"dtype": dtype, **NO_JACOBIAN})
    # The same program (inits, activations): tanh at sigma_b = 0 is chaotic, left out.
    vanishing = run_sweep(
        {**axes, "sigma_w": [1.35], "sigma_b": [0.0]}, {"dtype": dtype, **NO_JACOBIAN}
    )
    vanishing = vanishing[vanishing["activation"] == "relu"]
    assert (ordered["theory_phase"] == "ordered").all()
    assert (vanishing["log10_forward_gain"] < -20).all()
    for frame in (ordered, vanishing):
        assert (frame["status"] == "ok").all()
        assert frame["precision_loss_layer"].isna().all(), frame["precision_loss_layer"]


def test_chaos_parts_the_two_passes_at_the_lyapunov_rate(run_sweep):
    """In the chaotic phase a difference between two passes grows by chi1^(1/2) a layer
    (theory_chi1), so they part (reach the threshold) ln(theta / (c eps)) / (½ ln chi1)
    layers after they start: float32 parts later than float16 by ln(eps16 / eps32) in
    those units, less up to ln sqrt(N) (a float32 dot product accumulates its rounding
    over N terms; float16's products are summed in float32) and give or take ln 2 of
    noise. The activations stay at O(1): the flag is the trajectories parting. An
    ordered float16 net beside it is never flagged."""
    axes = {
        "depth": [200],
        "sigma_w": [1.0, 3.0],
        "sigma_b": [0.1],
        "width": [128],
        "activation": ["tanh"],
        "seed": [0, 1],
    }
    runs = {
        dtype: run_sweep(axes, {"dtype": dtype, **NO_JACOBIAN}) for dtype in ("float16", "float32")
    }
    first = {}
    for dtype, frame in runs.items():
        assert (frame["status"] == "ok").all()
        ordered = frame[frame["sigma_w"] == 1.0]
        chaotic = frame[frame["sigma_w"] == 3.0]
        assert (ordered["theory_phase"] == "ordered").all()
        assert ordered["precision_loss_layer"].isna().all()
        assert (chaotic["theory_phase"] == "chaotic").all()
        assert chaotic["log10_act_norm"].map(lambda a: np.abs(a).max() < 1).all()
        assert chaotic["precision_loss_layer"].notna().all()
        first[dtype] = chaotic.set_index("seed")["precision_loss_layer"]
    rate = 0.5 * math.log(runs["float16"]["theory_chi1"].max())
    eps = {dtype: float(jnp.finfo(jnp.dtype(dtype)).eps) for dtype in first}
    expected = math.log(eps["float16"] / eps["float32"])
    gap = (first["float32"] - first["float16"]) * rate
    low, high = expected - math.log(math.sqrt(128)) - math.log(2), expected + math.log(2)
    assert ((gap > low) & (gap < high)).all(), (gap.to_dict(), low, high)


def test_never_later_than_overflow_or_underflow(run_sweep):
    """An inf, NaN or all-zero plain pass is as far from the exact one as can be: the
    lecture's W = s·I nets in float32, which overflow at 218 (s = 1.5) and underflow at
    127 (s = 0.5), are flagged there or before (s = 0.5: where its RMS 2^-l turns
    subnormal, or before, when the plain pass flushes its smallest entries)."""
    frame = run_sweep(
        {
            "depth": [300],
            "sigma_w": [0.5, 1.5],
            "width": [2],
            "init": ["identity"],
            "activation": ["linear"],
        },
        NO_JACOBIAN,
    ).set_index("sigma_w")
    big, small = frame.loc[1.5], frame.loc[0.5]
    assert big["overflow_layer"] == 218 and small["underflow_layer"] == 127
    assert layer(big) <= 218
    assert layer(small) <= first_subnormal_layer(small) <= 127
