"""What the Jacobian extremes cost per architecture, and what `jacobian = false` saves.

    python scripts/bench_architecture_jacobian.py [--json FILE]

For each architecture, one sweep of width 64, tanh, depths 1..128 (every depth), 8 values
of sigma_w and 4 seeds (32 families, 4,096 configs), run with and without the Jacobian.
Each is timed after a warm-up run in the same process (compiling excluded), repeats
interleaved, the minimum of 3 kept: the machine is shared and noisy. The residual blocks
invert a per-family matrix I + alpha W D every layer where mlp shares W^-1 across a seed
group's sigmas; the ratio of the Jacobian's share to mlp's says what that costs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time

from sweep import api

ARCHITECTURES = ("mlp", "resnet", "resnet_prenorm", "mlp_layernorm")
REPEATS = 3


def spec(architecture: str, jacobian: bool) -> dict:
    return {
        "name": "jacobian-cost",
        "axes": {
            "depth": {"start": 1, "stop": 128, "step": 1},
            "sigma_w": [0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0],
            "width": [64],
            "activation": ["tanh"],
            "seed": [0, 1, 2, 3],
            "architecture": [architecture],
        },
        "settings": {"jacobian": jacobian},
    }


def seconds(architecture: str, jacobian: bool) -> float:
    started = time.perf_counter()
    api.execute(spec(architecture, jacobian), tempfile.mkdtemp())
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    today = datetime.date.today().isoformat()
    parser.add_argument("--json", default=f"results/bench/{today}-architecture-jacobian.json")
    args = parser.parse_args(argv)
    cases = [(a, j) for a in ARCHITECTURES for j in (True, False)]
    for case in cases:  # warm-up: compile every program once
        seconds(*case)
    times = {case: [] for case in cases}
    for _ in range(REPEATS):
        for case in cases:
            times[case].append(round(seconds(*case), 2))
    rows = {}
    for (architecture, jacobian), values in times.items():
        rows.setdefault(architecture, {})[f"jacobian_{str(jacobian).lower()}"] = min(values)
    for row in rows.values():
        row["jacobian_share_s"] = round(row["jacobian_true"] - row["jacobian_false"], 2)
        row["saved_by_jacobian_false"] = round(row["jacobian_share_s"] / row["jacobian_true"], 2)
    mlp_share = rows["mlp"]["jacobian_share_s"]
    out = {
        "date": today,
        "what": __doc__.split("\n\n")[2].replace("\n", " "),
        "seconds": rows,
        "jacobian_cost_vs_mlp": {
            k: round(v["jacobian_share_s"] / mlp_share, 2) for k, v in rows.items()
        },
        "repeats": {f"{a} jacobian={j}": v for (a, j), v in times.items()},
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
