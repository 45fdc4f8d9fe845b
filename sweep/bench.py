"""The benchmark: the engine against a per-config JAX loop, in one process, with figures.

The benchmark sweep is gaussian init, tanh, sigma_b^2 = 0.05, 64 values of sigma_w^2 in
[1, 4], depths 1..128, width 64, 4 seeds, probe batch 8: 32,768 configs. It measures
- the engine end to end (compile and Parquet writing included), in configs/s, on this
  sigma-heavy sweep and on a seed-heavy one of the same size (4 sigma_w x 64 seeds);
- the naive jit(vmap) peer (bench_naive: one jit(vmap) per depth over every (sigma_w,
  seed), float32, jax.grad, jax.jacfwd and svd, compile included), timed at a few depths
  and interpolated, and checked against the engine within float32 rounding;
- a per-config JAX loop computing the same metrics with the same one-config functions
  (network.family_one with one family and one depth), jitted once per shape with compile
  excluded, timed on a random subsample and extrapolated; the bench checks that it gives
  the engine's numbers;
- with torch installed (the `bench` extra), a PyTorch eager per-config loop (bench_torch:
  autograd and torch.linalg in float64, one thread) on the same subsample, warm-up and
  the copying of the engine's weights into torch excluded; the bench checks it against
  the engine within a tolerance derived from float32 rounding (bench_torch.tolerances);
- this machine's float32 GEMM peak, from a large jnp.dot in the same run;
- the engine's effective FLOP/s, counting 6·B·N²·L per config (what an independent
  evaluation costs), as a fraction of that peak. Above 100% means sharing avoided work.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import resource
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax import monitoring

from . import api, bench_naive, engine, plan, precision, spec, store

COMPILE_SECONDS = {"total": 0.0}


def _count_compile(name, duration, **kwargs):
    if name.endswith("backend_compile_duration"):
        COMPILE_SECONDS["total"] += duration


monitoring.register_event_duration_secs_listener(_count_compile)


def benchmark_spec(quick: bool, seed_heavy: bool = False) -> spec.Spec:
    """The benchmark sweep (module docstring); quick: a small one for the test suite.
    seed_heavy: the same number of families and depths with the sigma and seed counts
    swapped (4 sigma_w x 64 seeds; quick: 2 x 8), the shape of a study of statistics over
    random networks."""
    n_sigma, n_seeds = (8, 2) if quick else (64, 4)
    if seed_heavy:
        n_sigma, n_seeds = (2, 8) if quick else (4, 64)
    sigma_w2 = np.linspace(1.0, 4.0, n_sigma)
    axes = {
        "depth": {"start": 1, "stop": 16 if quick else 128, "step": 1},
        "sigma_w": [float(math.sqrt(v)) for v in sigma_w2],
        "sigma_b": [math.sqrt(0.05)],
        "width": [16 if quick else 64],
        "init": ["gaussian"],
        "activation": ["tanh"],
        "seed": list(range(n_seeds)),
    }
    name = ("bench-quick" if quick else "bench") + ("-seeds" if seed_heavy else "")
    return spec.from_dict({"name": name, "axes": axes, "settings": {"batch": 8}})


def gemm_peak_flops(size: int = 2048, repeats: int = 5) -> float:
    """float32 FLOP/s of a large jnp.dot on the default device, best of `repeats`."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def one_config_chunk(sweep: spec.Spec, row) -> plan.Chunk:
    """A chunk of one config (a row of the config table): one family measured at one depth,
    with a program of its own init and activation."""
    bucket = plan.Bucket(row.width, row.init, row.activation, (row.depth,), dtype=sweep.dtype)
    program = plan.program_of(sweep, bucket)
    program = dataclasses.replace(program, inits=(row.init,), activations=(row.activation,))
    units = pd.DataFrame(
        {
            "seed": [row.seed],
            "sigma_w": [row.sigma_w],
            "sigma_b": [row.sigma_b],
            "residual_scale": [getattr(row, "residual_scale", 1.0)],
            "depth": [row.depth],
        }
    )
    return plan.chunks_of(sweep, bucket, program, units, [np.array([row.config_id])], 1)[0]


def per_config_loop(sweep: spec.Spec, rows, root_seed: int):
    """Evaluates each row alone (one family, one depth) with its program compiled first.

    Rows run in order of depth, and the compiled programs of a depth are dropped once it is
    done: each XLA:CPU executable holds hundreds of memory mappings, and a few hundred of
    them exceed Linux's default limit of 65,530 (the process dies with "Cannot allocate
    memory").

    Returns (seconds excluding compiles, {config_id: log10_backward_gain}).
    """
    seconds, gains, previous_depth = 0.0, {}, None
    for row in rows.sort_values("depth", kind="stable").itertuples(index=False):
        if gains and row.depth != previous_depth:
            engine.compiled.cache_clear()
            jax.clear_caches()
        previous_depth = row.depth
        chunk = one_config_chunk(sweep, row)
        engine.evaluate_chunk(chunk, root_seed)  # compile (excluded) and warm up
        start = time.perf_counter()
        result = engine.evaluate_chunk(chunk, root_seed)
        seconds += time.perf_counter() - start
        gains[row.config_id] = float(result["log10_backward_gain"][0, 0])
    return seconds, gains


def torch_loop(sweep: spec.Spec, rows, frame, root_seed: int) -> dict | None:
    """The PyTorch eager baseline on `rows`, one config at a time, checked against the
    engine's rows in `frame`; None when torch is not installed.

    One torch thread: multi-threaded BLAS stalls 10-500x now and then on these machines.
    Timed: bench_torch.metrics only, after one warm-up call; the engine's weights, probes
    and cotangents are copied into torch outside the timing (which flatters torch).
    Raises AssertionError when a config differs beyond bench_torch.tolerances.
    """
    try:
        import torch

        from . import bench_torch
    except ImportError:
        return None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine_rows = frame.set_index("config_id")
    seconds, worst, fraction, unchecked = 0.0, 0.0, 0.0, 0
    try:
        for i, row in enumerate(rows.itertuples(index=False)):
            program = one_config_chunk(sweep, row).program
            data = bench_torch.inputs(program, row.seed, root_seed)
            args = (data, row.sigma_w, row.sigma_b, row.depth, row.activation)
            if i == 0:
                bench_torch.metrics(*args)  # warm-up (excluded)
            start = time.perf_counter()
            metrics = bench_torch.metrics(*args)
            seconds += time.perf_counter() - start
            difference, used, checked = bench_torch.difference(
                metrics, engine_rows.loc[row.config_id]
            )
            if not used <= 1:
                raise AssertionError(
                    f"PyTorch loop disagrees with the engine on config {row.config_id} by "
                    f"{difference:g} (log10), "
                    f"{used:.3g} times the float32 tolerance"
                )
            worst, fraction, unchecked = (
                max(worst, difference),
                max(fraction, used),
                unchecked + (not checked),
            )
    finally:
        torch.set_num_threads(threads)
    return {
        "torch": torch.__version__,
        "torch_seconds": seconds,
        "torch_subsample": len(rows),
        "torch_max_difference": worst,
        "torch_tolerance_used": fraction,
        "torch_unchecked": unchecked,
    }


@precision.x64
def run(
    quick: bool = False,
    subsample: int | None = None,
    out_json: str | None = None,
    root_seed: int = 0,
    say=lambda line: None,
) -> dict:
    """Runs the benchmark in this process and returns its figures (written to out_json if
    given); say(line) is told each phase as it starts."""
    sweep = benchmark_spec(quick)
    configs = sweep.configs()
    subsample = subsample or (12 if quick else 200)
    peak = gemm_peak_flops(1024 if quick else 2048)

    def engine_run(sweep, name):
        with tempfile.TemporaryDirectory() as tmp:
            COMPILE_SECONDS["total"] = 0.0
            start = time.perf_counter()
            out = api.execute(sweep, os.path.join(tmp, name), root_seed=root_seed)
            seconds = time.perf_counter() - start
            return seconds, COMPILE_SECONDS["total"], store.load(out)

    say("engine, sigma-heavy sweep ...")
    engine_seconds, compile_seconds, frame = engine_run(sweep, "bench")
    say(f"  {engine_seconds:.1f} s; engine, seed-heavy sweep ...")
    seed_sweep = benchmark_spec(quick, seed_heavy=True)
    seed_seconds, _, _ = engine_run(seed_sweep, "seeds")
    say(f"  {seed_seconds:.1f} s; naive jit(vmap) peer ...")
    naive = bench_naive.estimate(
        sweep, configs, frame, plan.programs(sweep)[0], root_seed, 2 if quick else 6
    )
    say(f"  about {naive['naive_seconds']:.0f} s; per-config JAX loop ...")

    picked = configs.sample(n=min(subsample, len(configs)), random_state=np.random.default_rng(0))
    loop_seconds, loop_gains = per_config_loop(sweep, picked, root_seed)
    engine_gains = (
        frame.set_index("config_id").loc[list(loop_gains), "log10_backward_gain"].to_numpy()
    )
    # Same functions, same weights: the numbers must agree to float64 bookkeeping ulps.
    max_difference = float(np.max(np.abs(engine_gains - np.array(list(loop_gains.values())))))
    if not max_difference <= 1e-9:
        raise AssertionError(f"per-config loop disagrees with the engine by {max_difference:g}")

    say("PyTorch loop ...")
    torch_figures = torch_loop(sweep, picked, frame, root_seed)

    n_configs = len(configs)
    width, batch = sweep.axes["width"][0], sweep.batch
    flops = 6 * batch * width**2 * int(configs["depth"].sum())
    loop_per_config = loop_seconds / len(picked)
    figures = {
        "date": datetime.date.today().isoformat(),
        "quick": quick,
        "configs": n_configs,
        "device": str(jax.devices()[0].device_kind),
        "device_count": jax.local_device_count(),
        "jax": jax.__version__,
        "engine_seconds": engine_seconds,
        "compile_seconds": compile_seconds,
        "engine_cfg_per_s": n_configs / engine_seconds,
        "seed_heavy_configs": len(seed_sweep.configs()),
        "seed_heavy_seconds": seed_seconds,
        "seed_heavy_cfg_per_s": len(seed_sweep.configs()) / seed_seconds,
        **naive,
        "naive_vmap_cfg_per_s": n_configs / naive["naive_seconds"],
        "naive_vmap_speedup": naive["naive_seconds"] / engine_seconds,
        "jax_loop_cfg_per_s": 1 / loop_per_config,
        "jax_loop_subsample": len(picked),
        "jax_loop_speedup": loop_per_config * n_configs / engine_seconds,
        "torch_speedup": None,
        "torch_cfg_per_s": None,
        "torch_subsample": None,
        "torch_max_difference": None,
        "gemm_peak_gflops": peak / 1e9,
        "effective_gflops": flops / engine_seconds / 1e9,
        "peak_fraction": flops / engine_seconds / peak,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loop_max_difference": max_difference,
    }
    if torch_figures:
        torch_per_config = torch_figures.pop("torch_seconds") / torch_figures["torch_subsample"]
        figures.update(torch_figures)
        figures["torch_cfg_per_s"] = 1 / torch_per_config
        figures["torch_speedup"] = torch_per_config * n_configs / engine_seconds
    if out_json:
        os.makedirs(os.path.dirname(out_json) or ".", exist_ok=True)
        with open(out_json, "w") as f:
            json.dump(figures, f, indent=2)
            f.write("\n")
    return figures


def _torch_rows(figures: dict) -> list[tuple[str, str]]:
    if figures["torch_speedup"] is None:
        return [("PyTorch eager loop", "not run (pip install torch)")]
    f = figures
    rate = (
        f"{f['torch_cfg_per_s']:.1f} configs/s (on {f['torch_subsample']}; "
        "float64, 1 thread, weight copy excluded)"
    )
    agreement = (
        f"max |diff| {f['torch_max_difference']:.1e} (log10), "
        f"{100 * f['torch_tolerance_used']:.0f}% of the float32 tolerance; "
        f"{f['torch_unchecked']} not checkable (float32 fixes no digit)"
    )
    return [
        ("PyTorch eager loop", rate),
        ("engine / PyTorch loop", f"{f['torch_speedup']:.1f}x"),
        ("  agreement", agreement),
    ]


def format_report(figures: dict) -> str:
    """The figures as a text table, ending with the machine-readable `bench:` line."""
    rows = [
        ("configs", f"{figures['configs']}"),
        ("device", f"{figures['device']} x{figures['device_count']}"),
        (
            "engine, end to end",
            f"{figures['engine_seconds']:.1f} s, {figures['engine_cfg_per_s']:.0f} configs/s",
        ),
        ("  of which compiling", f"{figures['compile_seconds']:.1f} s"),
        (
            "per-config JAX loop",
            f"{figures['jax_loop_cfg_per_s']:.1f} configs/s (on {figures['jax_loop_subsample']})",
        ),
        ("engine / JAX loop", f"{figures['jax_loop_speedup']:.1f}x"),
        (
            "seed-heavy sweep",
            f"{figures['seed_heavy_seconds']:.1f} s, {figures['seed_heavy_cfg_per_s']:.0f} "
            f"configs/s ({figures['seed_heavy_configs']} configs)",
        ),
        (
            "naive jit(vmap) peer",
            f"{figures['naive_vmap_cfg_per_s']:.1f} configs/s (float32, compile included; "
            f"timed at depths {figures['naive_timed_depths']}, interpolated)",
        ),
        ("engine / naive peer", f"{figures['naive_vmap_speedup']:.1f}x"),
        (
            "  agreement",
            f"max |diff| {figures['naive_max_difference']:.1e} (log10), "
            f"{100 * figures['naive_tolerance_used']:.0f}% of the float32 tolerance",
        ),
        *_torch_rows(figures),
        ("GEMM peak (float32)", f"{figures['gemm_peak_gflops']:.1f} GFLOP/s"),
        (
            "engine effective",
            f"{figures['effective_gflops']:.1f} GFLOP/s = {100 * figures['peak_fraction']:.1f}% of "
            "peak",
        ),
        ("peak RSS", f"{figures['peak_rss_mb']:.0f} MB"),
    ]
    lines = [f"{name:<22} {value}" for name, value in rows]
    torch = "nan" if figures["torch_speedup"] is None else f"{figures['torch_speedup']:.2f}"
    lines.append(
        f"bench: engine_cfg_per_s={figures['engine_cfg_per_s']:.1f} "
        f"jax_loop_speedup={figures['jax_loop_speedup']:.2f} "
        f"torch_speedup={torch} peak_fraction={figures['peak_fraction']:.4f} "
        f"peak_rss_mb={figures['peak_rss_mb']:.0f} "
        f"naive_vmap_speedup={figures['naive_vmap_speedup']:.2f} "
        f"seed_heavy_cfg_per_s={figures['seed_heavy_cfg_per_s']:.1f}"
    )
    return "\n".join(lines)
