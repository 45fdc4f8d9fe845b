"""Agreement between the engine and a float32 or float64 peer, within float32 rounding.

Used by the benchmark's peers (sweep.bench_torch in float64, sweep.bench_naive in
float32) to check that they computed the same metrics as the engine before their speed
is compared.
"""

from __future__ import annotations

import math

import numpy as np

EPS32 = 2.0**-24  # float32 unit roundoff
SAFETY = 16.0  # c in the tolerance: see tolerances


def tolerances(m: dict, depth: int, peers_in_float32: int = 1) -> tuple[float, float]:
    """(forward, backward) agreement tolerances in log10 units between the engine (float32
    arithmetic, float64 log bookkeeping) and this float64 reference, for one config.

    The engine's error is float32 rounding, a few EPS32 relative per layer (one matmul, phi,
    a renormalisation), amplified on its way to the output by at most about G = max(1,
    sigma_max(J)), the Jacobian's largest growth: relative error c·EPS32·G·L for the forward
    metrics (activation norms, forward gain). The backward metrics (gradient norms, backward
    gain, singular values) also see phi' in float32: tanh' = 1 - tanh² there has an absolute
    error of up to 8.7 EPS32 (measured on XLA:CPU over |x| <= 12; tanh itself is within
    4.4 EPS32), a relative error of that over |phi'|. It multiplies J and the cotangents
    through D_l, so every singular value and gradient norm moves by at most
    Σ_l max_{B,N} |relative error of phi'_l| <= c·EPS32·kappa: relative error
    c·EPS32·(G·L + kappa) in all. A relative error r is at most -log10(1 - r) in log10;
    r >= 1 means float32 fixes no digit of the metric (a deep chaotic net, or a phi' that
    float32 rounds to 0) and the tolerance is infinite.
    c = SAFETY = 16, about twice tanh's 8.7. Measured on the bench's grids (tanh, widths
    16 and 64, depths 1..128), the worst difference needed c = 3.1 (sv_min, through kappa),
    the forward metrics c = 0.7. peers_in_float32: how many of the two sides round in
    float32 (2 for the naive float32 peer: the errors add).
    """
    growth = peers_in_float32 * max(1.0, 10.0 ** m["log10_jac_sv_max"]) * depth
    as_log10 = lambda r: -math.log10(1 - r) if r < 1 else math.inf  # noqa: E731
    kappa = peers_in_float32 * m["kappa"]
    return as_log10(SAFETY * EPS32 * growth), as_log10(SAFETY * EPS32 * (growth + kappa))


FORWARD = ("log10_act_norm", "log10_forward_gain")
BACKWARD = ("log10_grad_norm", "log10_backward_gain", "log10_jac_sv_max", "log10_jac_sv_min")


def difference(
    m: dict, row, peers_in_float32: int = 1, backward=BACKWARD
) -> tuple[float, float, bool]:
    """How m (from `metrics`) differs from the engine's row (a mapping with the store's
    metric columns) over the metrics float32 determines (finite tolerance).

    Returns (largest |difference| in log10, largest |difference| / tolerance, whether the
    backward metrics were checked). Equal infinities are no difference; a NaN is infinite.
    backward: the backward metrics to check (a float32 peer cannot give sigma_min).
    """
    forward_tol, backward_tol = tolerances(m, len(m["log10_grad_norm"]), peers_in_float32)
    worst, fraction = 0.0, 0.0
    for names, tol in ((FORWARD, forward_tol), (backward, backward_tol)):
        if math.isinf(tol):
            continue
        for name in names:
            ours, theirs = np.atleast_1d(m[name]), np.atleast_1d(np.asarray(row[name], np.float64))
            with np.errstate(invalid="ignore"):  # -inf - -inf: equal, no difference
                diff = np.where(ours == theirs, 0.0, np.abs(ours - theirs))
            diff = float(np.max(np.nan_to_num(diff, nan=math.inf)))
            worst, fraction = max(worst, diff), max(fraction, diff / tol)
    return worst, fraction, not math.isinf(backward_tol)
