"""Golden results of a git revision, and a row-by-row comparison of two golden sets.

A refactor of the numerical core must not change a single row. This script writes the
same sweeps with any revision of the code and compares them:

    python scripts/golden.py make b056ce7 /tmp/golden-old     # the old revision
    python scripts/golden.py make WORKTREE /tmp/golden-new    # the working tree
    python scripts/golden.py compare /tmp/golden-old /tmp/golden-new

`make` checks the revision out into a temporary git worktree (WORKTREE: the current
files) and runs each case in its own process with that revision first on sys.path, so
each writes exactly what that revision's `sweep run` writes. The cases: the lecture
preset, independent draws, a [train] sweep with two learning rates, and a sweep over
four CPU devices.

`compare` matches rows by config_id and requires the same ids, the same statuses, equal
integers and strings, and floats equal to 1e-12 relative (the float32 network state is
bit for bit; only float64 bookkeeping may differ by a few ulps). NaN matches NaN.
Exit 0 when every case matches; otherwise one line per difference and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CASES = {
    "lecture": {"spec": "lecture", "devices": 1},
    "independent": {
        "spec": {
            "name": "independent",
            "axes": {
                "depth": [1, 2, 5, 9, 17, 30],
                "sigma_w": [0.7, 1.0, 1.4],
                "sigma_b": [0.0, 0.3],
                "width": [4, 16],
                "init": ["gaussian", "orthogonal"],
                "activation": ["tanh", "relu"],
                "seed": [0, 3],
            },
            "settings": {"draws": "independent", "loss": "mse"},
        },
        "devices": 1,
    },
    "train": {
        "spec": {
            "name": "train",
            "axes": {
                "depth": [2, 5, 8],
                "sigma_w": [0.8, 1.3, 1.9],
                "sigma_b": [0.1],
                "width": [16],
                "activation": ["tanh"],
                "seed": [0, 1],
            },
            "train": {"steps": 40, "learning_rate": [0.01, 0.1], "batch_size": 16},
        },
        "devices": 1,
    },
    "devices4": {
        "spec": {
            "name": "devices4",
            "axes": {
                "depth": {"start": 1, "stop": 40, "step": 1},
                "sigma_w": {"start": 0.6, "stop": 1.8, "num": 13},
                "sigma_b": [0.0, 0.2],
                "width": [8, 32],
                "init": ["gaussian", "orthogonal", "identity"],
                "activation": ["linear", "tanh", "relu", "erf"],
                "seed": [0, 1],
            },
            "settings": {"batch": 4},
        },
        "devices": 4,
    },
}

RUN_CASE = """
import json, sys
import sweep.api as api
spec = json.loads(sys.argv[1])
api.execute(spec, sys.argv[2], overwrite=True)
"""


def make(revision: str, out: str, cases: list[str]) -> None:
    root = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        if revision == "WORKTREE":
            source = root
        else:
            source = os.path.join(scratch, "src")
            subprocess.run(
                ["git", "-C", root, "worktree", "add", "--detach", source, revision],
                check=True,
                capture_output=True,
            )
        try:
            for name in cases:
                case = CASES[name]
                env = {**os.environ, "PYTHONPATH": source, "JAX_PLATFORMS": "cpu"}
                env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={case['devices']}"
                spec_arg = json.dumps(case["spec"])  # a preset name or a spec dict
                target = os.path.join(out, name)
                print(f"golden: {name} with {revision} -> {target}", flush=True)
                subprocess.run(
                    [sys.executable, "-c", RUN_CASE, spec_arg, target],
                    env=env,
                    check=True,
                    cwd=scratch,
                )
        finally:
            if revision != "WORKTREE":
                subprocess.run(["git", "-C", root, "worktree", "remove", "--force", source])


def _rows(directory: str):
    import pandas as pd
    import pyarrow.parquet as pq

    parts = sorted(p for p in os.listdir(directory) if p.startswith("part-"))
    tables = [pq.read_table(os.path.join(directory, p)).to_pandas() for p in parts]
    frame = pd.concat(tables, ignore_index=True)
    return frame.set_index("config_id").sort_index()


def _float_close(a, b, rtol: float, atol: float = 0.0):
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)) + atol
    return bool(np.all(same | close))


def bit_differences(old: str, new: str) -> tuple[int, int, float]:
    """(float values compared, values whose bits differ, largest relative difference) over
    every float and float-list column of two results directories with the same ids."""
    import numpy as np

    a, b = _rows(old), _rows(new)
    b = b.loc[a.index]
    total, differ, worst = 0, 0, 0.0
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        if x.dtype == object:
            if not any(isinstance(v, (list, np.ndarray)) for v in x[:1]):
                continue
            x = np.concatenate([np.asarray(v, np.float64) for v in x])
            y = np.concatenate([np.asarray(v, np.float64) for v in y])
        elif x.dtype.kind != "f":
            continue
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        total, differ = total + x.size, differ + int((~same).sum())
        if (~same).any():
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.abs(x - y)[~same] / np.maximum(np.abs(x), np.abs(y))[~same]
            worst = max(worst, float(np.nanmax(rel)))
    return total, differ, worst


# log10 of the Jacobian's extremes: also equal when within 1e-14 (sigma to 2.3e-14
# relative). Near sigma = 1 a relative bound on the log is meaningless, and a change of
# solver (issue 12: eigvalsh -> tridiagonal bisection) moves sigma by float64 ulps.
SV_ATOL = 1e-14


def compare_dirs(old: str, new: str, rtol: float = 1e-12) -> list[str]:
    """Differences between two results directories, one line each (empty: the same rows)."""
    import numpy as np

    a, b = _rows(old), _rows(new)
    problems = []
    if a.index.has_duplicates or b.index.has_duplicates:
        problems.append("duplicate config ids")
    if set(a.index) != set(b.index):
        only_a, only_b = len(set(a.index) - set(b.index)), len(set(b.index) - set(a.index))
        problems.append(f"config ids differ: {only_a} only in old, {only_b} only in new")
        return problems
    if not set(a.columns) <= set(b.columns):
        problems.append(f"columns missing in new: {sorted(set(a.columns) - set(b.columns))}")
        return problems
    # Columns added since (architecture, residual_scale, theory_q_depth) are not compared:
    # the old rows have nothing to match them with.
    b = b.loc[a.index]
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        sample = next((v for v in x if v is not None and not _is_nan(v)), None)
        if isinstance(sample, (list, np.ndarray)):
            bad = [i for i, (u, v) in enumerate(zip(x, y)) if not _lists_close(u, v, rtol)]
        elif x.dtype.kind == "f" or isinstance(sample, float):
            atol = SV_ATOL if column.startswith("log10_jac_sv") else 0.0
            ok = np.asarray(
                [_float_close([u], [v], rtol, atol) for u, v in zip(x, y)]
                if x.dtype == object
                else [_float_close(x, y, rtol, atol)] * len(x)
            )
            bad = [] if ok.all() else _bad_floats(x, y, rtol, atol)
        else:
            bad = [i for i, (u, v) in enumerate(zip(x, y)) if not _equal(u, v)]
        if bad:
            i = bad[0]
            problems.append(
                f"{column}: {len(bad)} rows differ, e.g. {a.index[i]}: {x[i]!r} vs {y[i]!r}"
            )
    return problems


def _is_nan(v) -> bool:
    return isinstance(v, float) and v != v


def _equal(u, v) -> bool:
    return u == v or (_is_nan(u) and _is_nan(v)) or (u is None and v is None)


def _lists_close(u, v, rtol: float) -> bool:
    if u is None or v is None:
        return u is None and v is None
    return _float_close(u, v, rtol)


def _bad_floats(x, y, rtol: float, atol: float = 0.0) -> list[int]:
    return [i for i, (u, v) in enumerate(zip(x, y)) if not _float_close([u], [v], rtol, atol)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make_parser = commands.add_parser("make", help="write golden results with a revision")
    make_parser.add_argument("revision", help="a git revision, or WORKTREE for the current files")
    make_parser.add_argument("out")
    make_parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    compare_parser = commands.add_parser("compare", help="compare two golden sets row by row")
    compare_parser.add_argument("old")
    compare_parser.add_argument("new")
    compare_parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    if args.command == "make":
        make(args.revision, args.out, args.cases)
        return 0
    failed = False
    for name in args.cases:
        problems = compare_dirs(os.path.join(args.old, name), os.path.join(args.new, name))
        old, new = os.path.join(args.old, name), os.path.join(args.new, name)
        rows = len(_rows(old))
        summary = "DIFFERENT"
        if not problems:
            total, differ, worst = bit_differences(old, new)
            summary = f"same ({total} floats, {differ} not bit-identical, max rel diff {worst:.1e})"
        print(f"{name}: {rows} rows, {summary}")
        for line in problems:
            print(f"  {line}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
