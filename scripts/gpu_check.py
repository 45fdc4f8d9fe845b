"""The accelerator check's measurements (run by scripts/gpu_check.sh): figures as JSON.

    python scripts/gpu_check.py OUT.json [--cpu]

- engine: the bench's shape (width 64, tanh, depths 1..128, probe batch 8) over a grid
  that fills the device (256 sigma_w x 16 seeds = 524,288 configs; --cpu: 8 x 2 at depths
  1..4, width 8): configs/s end to end, compile seconds, peak device memory;
- seed_heavy: the same size with sigma and seed counts swapped (16 x 256; not with --cpu);
- stream: a 10^7-config grid of the cheapest config (width 2, identity, linear; --cpu:
  2,000) streamed to Parquet: seconds, configs/s, the share of the run spent outside the
  compiled programs, and peak host RSS.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time

import jax
import pyarrow.parquet as pq
from jax import monitoring

from sweep import api, engine

COMPILE = {"seconds": 0.0}
monitoring.register_event_duration_secs_listener(
    lambda name, duration, **kw: COMPILE.__setitem__(
        "seconds", COMPILE["seconds"] + duration * name.endswith("backend_compile_duration")
    )
)


def grid(
    name, n_sigma, n_seeds, depth, width, sigma=(0.5, 2.0), activation="tanh", init="gaussian"
):
    """A sweep dict: n_sigma sigma_w x n_seeds seeds at depths 1..depth."""
    return {
        "name": name,
        "axes": {
            "depth": {"start": 1, "stop": depth, "step": 1},
            "sigma_w": {"start": sigma[0], "stop": sigma[1], "num": n_sigma},
            "sigma_b": [0.2236],
            "width": [width],
            "init": [init],
            "activation": [activation],
            "seed": list(range(n_seeds)),
        },
        "settings": {"batch": 8},
    }


def peak_device_bytes():
    """The device's peak memory in use (None where the backend does not say: the CPU)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


PROGRAM = {"seconds": 0.0}


def _timed(step):
    def timed_step(*args):
        start = time.perf_counter()
        try:
            return step(*args)
        finally:
            PROGRAM["seconds"] += time.perf_counter() - start

    return timed_step


# The host's time in launch (compiling included) and in fetch (waiting for the program):
# what is left of the run is host work the device does not overlap.
engine.launch, engine.fetch = _timed(engine.launch), _timed(engine.fetch)


def timed(raw: dict) -> dict:
    """Runs one sweep to Parquet; its figures. host_share: the fraction of the run the
    host spent neither launching programs (compiling included) nor waiting for them."""
    with tempfile.TemporaryDirectory() as tmp:
        COMPILE["seconds"], PROGRAM["seconds"] = 0.0, 0.0
        start = time.perf_counter()
        out = api.execute(raw, os.path.join(tmp, raw["name"]))
        seconds = time.perf_counter() - start
        parts = [os.path.join(out, p) for p in os.listdir(out) if p.startswith("part-")]
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    return {
        "configs": rows,
        "seconds": seconds,
        "cfg_per_s": rows / seconds,
        "compile_seconds": COMPILE["seconds"],
        "program_seconds": PROGRAM["seconds"],
        "host_share": 1 - PROGRAM["seconds"] / seconds,
        "peak_device_bytes": peak_device_bytes(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str]) -> int:
    """gpu_check.py OUT.json [--cpu]: writes the figures to OUT.json."""
    out_json, cpu = argv[0], "--cpu" in argv[1:]
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.devices()[0].platform,
        "device_count": jax.local_device_count(),
        "jax": jax.__version__,
        "cpu_mode": cpu,
    }
    if cpu:
        shape = {"depth": 4, "width": 8}
        engine = grid("engine", 8, 2, **shape)
        seeds = None  # seed packing is in the test suite; here it would only add a compile
        stream = grid("stream", 20, 1, 100, 2, (0.5, 1.5), "linear", "identity")
    else:
        shape = {"depth": 128, "width": 64}
        engine = grid("engine", 256, 16, **shape)
        seeds = grid("seeds", 16, 256, **shape)
        stream = grid("stream", 1000, 100, 100, 2, (0.5, 1.5), "linear", "identity")
    for name, raw in (("engine", engine), ("seed_heavy", seeds), ("stream", stream)):
        if raw is None:
            continue
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        figures[name] = timed(raw)
        print(f"gpu_check: {name}: {figures[name]}", file=sys.stderr, flush=True)
    os.makedirs(os.path.dirname(out_json) or ".", exist_ok=True)
    with open(out_json, "w") as f:
        json.dump(figures, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
