"""The 1,000,000-config sweep of issue 5, measured: width 16, depths 1..1000, 100 values of
sigma_w, 10 seeds (gaussian, tanh, sigma_b^2 = 0.05, sigma_w^2 in [1, 4]).

    python scripts/million.py [--seeds 10] [--memory-budget 2G] [--out DIR]

Streams the sweep into DIR (default a temporary directory, deleted after) and writes the
wall time, configs/s, peak RSS and row count to results/bench/million-<date>.json. Each
family (one sigma_w and seed) is every depth 1..1000: one forward pass and 1,000
backward streams. --seeds runs a slice (the same per-seed work, fewer seeds).
"""

import argparse
import datetime
import json
import math
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402

from sweep import api, cli, spec, store  # noqa: E402


def million_spec(seeds: int) -> spec.Spec:
    return spec.from_dict(
        {
            "name": "million",
            "axes": {
                "depth": {"start": 1, "stop": 1000, "step": 1},
                "sigma_w": {"start": 1.0, "stop": 2.0, "num": 100},
                "sigma_b": [math.sqrt(0.05)],
                "width": [16],
                "init": ["gaussian"],
                "activation": ["tanh"],
                "seed": list(range(seeds)),
            },
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--memory-budget", default=None, help="bytes, e.g. 2G; default: sweep's default"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sweep = million_spec(args.seeds)
    budget = cli._bytes(args.memory_budget) if args.memory_budget else None
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "million")
        start = time.perf_counter()
        api.execute(sweep, out, memory_budget=budget, progress=True)
        seconds = time.perf_counter() - start
        rows = len(store.read_column(out, "config_id"))
        statuses = store.read_column(out, "status").value_counts().to_pylist()
    figures = {
        "date": datetime.date.today().isoformat(),
        "configs": sweep.n_configs,
        "rows": rows,
        "seconds": seconds,
        "configs_per_s": rows / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "memory_budget": args.memory_budget or "default",
        "statuses": {s["values"]: s["counts"] for s in statuses},
        "device": str(jax.devices()[0].device_kind),
        "jax": jax.__version__,
    }
    path = os.path.join(
        "results",
        "bench",
        f"million-{figures['date']}{'' if args.seeds == 10 else f'-{args.seeds}seeds'}.json",
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(figures, f, indent=2)
        f.write("\n")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
