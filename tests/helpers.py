"""What several test files share: row comparison, compile counting, XLA's memory figure."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
from jax import monitoring

METRICS = [
    "log10_act_norm",
    "log10_forward_gain",
    "log10_grad_norm",
    "log10_backward_gain",
    "log10_jac_sv_max",
    "log10_jac_sv_min",
    "overflow_layer",
    "underflow_layer",
    "precision_loss_layer",
    "status",
]
# The network itself (float32 here) is bit-for-bit the same however configs are batched.
# The float64 bookkeeping on top of it (reductions into log-scales, Jacobian norms) may
# sum in another order for another batch shape: a few float64 ulps, which never feed back
# into the float32 state, so they cannot grow with depth.
FLOAT64_RTOL = 1e-12


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("config_id").sort_index()


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame, columns=METRICS) -> None:
    """Every row of a is in b with the same metrics (float64 to FLOAT64_RTOL)."""
    a, b = by_id(a), by_id(b)
    ids = a.index
    assert set(ids) <= set(b.index)
    for column in columns:
        left, right = a.loc[ids, column], b.loc[ids, column]
        if left.dtype == object and isinstance(left.iloc[0], (list, np.ndarray)):
            left, right = np.concatenate(left.to_list()), np.concatenate(right.to_list())
            np.testing.assert_allclose(
                left, right, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL, err_msg=column
            )
        elif left.dtype == np.float64:
            np.testing.assert_allclose(
                left, right, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL, err_msg=column
            )
        else:
            pd.testing.assert_series_equal(left, right, check_names=False, obj=column)


@contextlib.contextmanager
def count_compilations():
    """Counts XLA compilations inside the block, by jitted function name:
    `with count_compilations() as counts: ...; counts["run"]` (as optax's
    test_utils.log_compilations, through jax.monitoring)."""
    counts: dict[str, int] = {}

    def listener(event, duration, **kwargs):
        if event.endswith("backend_compile_duration"):
            name = kwargs.get("fun_name", "")
            name = name[4:-1] if name.startswith("jit(") else name
            counts[name] = counts.get(name, 0) + 1

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        monitoring.unregister_event_duration_listener(listener)


def xla_temp_and_argument_bytes(compiled) -> int:
    """Bytes XLA's memory analysis of a compiled program reports for its temporaries,
    arguments and outputs."""
    analysis = compiled.memory_analysis()
    return (
        analysis.temp_size_in_bytes
        + analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
    )


def program(
    width: int,
    init: str = "gaussian",
    activation: str = "tanh",
    depths: tuple[int, ...] = (1,),
    draws: str = "shared",
    dtype: str = "float32",
    batch: int = 8,
    loss: str = "cotangent",
):
    """A network.Program of one init and one activation, as the planner would build it."""
    from sweep import network, plan

    groups = plan.stream_groups(depths) if draws == "shared" else ((0, 1, depths[-1]),)
    return network.Program(
        width, dtype, batch, loss, depths[-1], groups, (init,), (activation,), draws
    )
