"""`sweep theory`'s text reports, built on sweep.theory's public functions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import theory

DEFAULT_SIGMA_W2_VALUES = tuple(float(v) for v in np.linspace(1.0, 4.0, 13))
DEFAULT_SIGMA_B2_VALUES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def theory_table(
    activation: str, sigma_b: float, sigma_w2_values: Sequence[float] = DEFAULT_SIGMA_W2_VALUES
) -> pd.DataFrame:
    """q*, chi1 and xi_c over sigma_w^2 at fixed sigma_b.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b: bias scale (not squared).
      sigma_w2_values: sigma_w^2 values (squared), shape (R,).

    Returns:
      DataFrame with R rows and columns sigma_w2, q_star, chi1, xi_c.
    """
    return _table_and_phases(activation, sigma_b, sigma_w2_values)[0]


def _table_and_phases(activation, sigma_b, sigma_w2_values) -> tuple[pd.DataFrame, list[str]]:
    """theory_table, and the phase name of each of its rows (from the same solve)."""
    sigma_w2 = np.asarray(sigma_w2_values, np.float64)
    mf = theory.mean_field(activation, np.sqrt(sigma_w2), sigma_b, 1.0)
    table = pd.DataFrame(
        {
            "sigma_w2": sigma_w2,
            "q_star": np.asarray(mf.q_star),
            "chi1": np.asarray(mf.chi1),
            "xi_c": np.asarray(mf.xi_c),
        }
    )
    return table, [theory.PHASES[int(code)] for code in np.asarray(mf.phase)]


def format_theory_report(
    activation: str, sigma_b: float, sigma_w2_values: Sequence[float] = DEFAULT_SIGMA_W2_VALUES
) -> str:
    """Text report: the critical sigma_w^2 at this sigma_b, then q*, chi1, xi_c over sigma_w^2.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b: bias scale (NOT squared; the report prints both sigma_b and sigma_b^2).
      sigma_w2_values: sigma_w^2 values for the table (default 1..4 in 13 steps).

    Returns:
      Multi-line string.
    """
    sigma_b = float(sigma_b)
    critical = theory.critical_sigma_w2(activation, sigma_b**2)
    critical_sigma_w = math.sqrt(critical) if critical == critical else float("nan")
    table, phases = _table_and_phases(activation, sigma_b, sigma_w2_values)
    lines = [
        f"mean-field theory: activation={activation}, "
        f"sigma_b={sigma_b:.6g} (sigma_b^2={sigma_b**2:.6g}), q0=1",
        f"critical sigma_w^2 = {critical:.6f} (sigma_w = {critical_sigma_w:.6f}), "
        f"where chi1 = 1; critical means |ln chi1| < {theory.CRITICAL_LOG_CHI1_TOLERANCE:g}",
        f"{'sigma_w^2':>10} {'q*':>12} {'chi1':>10} {'xi_c':>10}  phase",
    ]
    for row, phase in zip(table.itertuples(index=False), phases):
        lines.append(
            f"{row.sigma_w2:>10.4g} {row.q_star:>12.6g} {row.chi1:>10.6f} {row.xi_c:>10.4g}"
            f"  {phase}"
        )
    return "\n".join(lines)


def format_critical_line(
    activation: str, sigma_b2_values: Sequence[float] = DEFAULT_SIGMA_B2_VALUES
) -> str:
    """Text table of the critical line: sigma_w^2 (chi1 = 1) against sigma_b^2.

    Args:
      activation: a name in sweep.activations.ACTIVATIONS.
      sigma_b2_values: sigma_b^2 values (squared), shape (B,).

    Returns:
      Multi-line string with columns sigma_b^2, sigma_b, sigma_w^2, sigma_w.
    """
    sigma_b2 = np.asarray(sigma_b2_values, np.float64)
    sigma_w2 = theory.critical_line(activation, sigma_b2)
    lines = [
        f"critical line (chi1 = 1): activation={activation}",
        f"{'sigma_b^2':>10} {'sigma_b':>10} {'sigma_w^2':>12} {'sigma_w':>10}",
    ]
    for b2, w2 in zip(sigma_b2, sigma_w2):
        sigma_w = math.sqrt(w2) if w2 == w2 else float("nan")
        lines.append(f"{b2:>10.4g} {math.sqrt(b2):>10.4g} {w2:>12.6f} {sigma_w:>10.6f}")
    return "\n".join(lines)
