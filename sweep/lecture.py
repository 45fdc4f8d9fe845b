"""The lecture's running example: 2-unit linear layers with W = s·I, so ŷ = s^L·x."""

from __future__ import annotations

import math

import pandas as pd

TABLE_DEPTHS = (2, 3, 5, 10, 20, 50, 100, 150)
TABLE_SCALES = (1.5, 0.5)
TABLE_ROWS = {"init": "identity", "activation": "linear", "width": 2, "sigma_b": 0.0}


def format_log10(value: float) -> str:
    """10**value in scientific notation, without ever forming 10**value (no overflow)."""
    if not math.isfinite(value):
        return "0" if value == -math.inf else str(10**value)
    exponent = math.floor(value)
    mantissa = 10 ** (value - exponent)
    if mantissa >= 9.9995:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.4f}e{exponent:+d}"


def lecture_table(frame: pd.DataFrame) -> str:
    """The exploding/vanishing table for W = 1.5·I and 0.5·I, x = [1, 1], from engine rows.

    ŷ = s^L·x, so each entry of ŷ is 10**log10_forward_gain; the row is the engine's own
    measurement, read off the identity/linear/width-2 configs.
    """
    rows = frame[
        (frame["init"] == "identity") & (frame["activation"] == "linear") & (frame["width"] == 2)
    ]
    rows = rows[(rows["sigma_b"] == 0.0) & rows["depth"].isin(TABLE_DEPTHS)]
    header = f"{'L':>5}  " + "  ".join(f"{'ŷ = ' + str(s) + '^L·x':>24}" for s in TABLE_SCALES)
    lines = [
        "The lecture's example, measured: every layer is W = s·I (2 units, linear), x = [1, 1]",
        header,
    ]
    for depth in TABLE_DEPTHS:
        cells = []
        for scale in TABLE_SCALES:
            match = rows[(rows["depth"] == depth) & (rows["sigma_w"] == scale)]
            if match.empty:
                cells.append(f"{'(not in sweep)':>24}")
                continue
            entry = format_log10(float(match["log10_forward_gain"].iloc[0]))
            cells.append(f"{'[' + entry + ', ' + entry + ']':>24}")
        lines.append(f"{depth:>5}  " + "  ".join(cells))
    lines.append(
        "(The lecture writes s^(L-1) because it sets W[L] aside; here all L layers are s·I.)"
    )
    return "\n".join(lines)
