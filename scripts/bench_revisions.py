"""The benchmark's engine figure of two git revisions, measured side by side.

    python scripts/bench_revisions.py b056ce7 WORKTREE --repeats 2

Runs `sweep bench`'s sweep (sweep.bench.benchmark_spec) end to end through api.execute,
compile and Parquet writing included, with the persistent compilation cache off, once
per revision per round, alternating the revisions (A B A B ...) so that the machine's
drift hits both alike. Each run is a fresh process with that revision first on sys.path.
Prints every run and the ratio of the revisions' best times; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

RUN = """
import json, sys, tempfile, time
from sweep import api, bench, spec
if sys.argv[1] in ("quick", "full"):
    sweep = bench.benchmark_spec(quick=sys.argv[1] == "quick")
else:  # a spec dict or preset name, as JSON, the same for both revisions
    sweep = api._as_spec(json.loads(sys.argv[1]))
with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    api.execute(sweep, out + "/bench")
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "configs": sweep.n_configs}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs=2, help="git revisions, or WORKTREE")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the small bench sweep")
    parser.add_argument(
        "--spec", help="a spec as JSON (a dict, or a preset name) instead of the bench sweep"
    )
    args = parser.parse_args()
    root = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
    ).stdout.strip()
    times: dict[str, list[float]] = {rev: [] for rev in args.revisions}
    with tempfile.TemporaryDirectory() as scratch:
        sources = {}
        for i, rev in enumerate(args.revisions):
            if rev == "WORKTREE":
                sources[rev] = root
                continue
            sources[rev] = os.path.join(scratch, f"src{i}")
            subprocess.run(
                ["git", "-C", root, "worktree", "add", "--detach", sources[rev], rev],
                check=True,
                capture_output=True,
            )
        try:
            for round_ in range(args.repeats):
                for rev in args.revisions:
                    env = {**os.environ, "PYTHONPATH": sources[rev], "SWEEP_CACHE_DIR": ""}
                    which = args.spec or ("quick" if args.quick else "full")
                    out = subprocess.run(
                        [sys.executable, "-c", RUN, which],
                        env=env,
                        cwd=scratch,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    figure = json.loads(out.strip().splitlines()[-1])
                    times[rev].append(figure["seconds"])
                    rate = figure["configs"] / figure["seconds"]
                    print(f"round {round_}: {rev}: {figure['seconds']:.1f} s, {rate:.0f} cfg/s")
        finally:
            for rev, path in sources.items():
                if rev != "WORKTREE":
                    subprocess.run(["git", "-C", root, "worktree", "remove", "--force", path])
    a, b = args.revisions
    ratio = min(times[b]) / min(times[a])
    print(f"{b} / {a} best time: {ratio:.3f}")
    print(json.dumps({"times": times, "ratio_best": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
