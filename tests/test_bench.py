"""The benchmark's quick mode: it runs, its per-config loop agrees with the engine, and it
ends with the machine-readable line; the optional PyTorch baseline agrees with the engine."""

import math
import re

import helpers
import pytest

from sweep import cli


def test_quick_bench_runs_and_checks_the_loop(capsys, tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--subsample", "3", "--json", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    pattern = (
        r"bench: engine_cfg_per_s=[\d.]+ jax_loop_speedup=[\d.]+ torch_speedup=\S+ "
        r"peak_fraction=[\d.]+ peak_rss_mb=\d+ naive_vmap_speedup=[\d.]+ "
        r"seed_heavy_cfg_per_s=[\d.]+"
    )
    assert re.fullmatch(pattern, last), last
    assert '"loop_max_difference"' in out.read_text()


def test_torch_baseline_gives_the_engines_numbers(request):
    """bench_torch (float64 autograd and torch.linalg) against the engine's float32 rows of the
    tiny sweep (tanh and relu, depths 1, 3, 6), within the tolerance derived from float32
    rounding; a 0.1% change of sigma_w is caught."""
    pytest.importorskip("torch")
    from sweep import bench_torch

    _, frame = request.getfixturevalue("tiny")  # after the skip: no sweep without torch
    rows = frame[(frame["seed"] == 1) & frame["sigma_w"].isin([0.6, 1.5])]
    singular = 0
    for row in rows.itertuples(index=False):
        program = helpers.program(row.width, row.init, row.activation, (row.depth,))
        data = bench_torch.inputs(program, row.seed, 0)
        metrics = bench_torch.metrics(data, row.sigma_w, row.sigma_b, row.depth, row.activation)
        difference, used, checked = bench_torch.difference(metrics, row._asdict())
        assert checked and used <= 1, (row.activation, row.depth, row.sigma_w, difference, used)
        singular += (
            metrics["log10_jac_sv_min"] == -math.inf
        )  # a relu unit off at probe 0, as in the engine
        off = bench_torch.metrics(data, row.sigma_w * 1.001, row.sigma_b, row.depth, row.activation)
        assert bench_torch.difference(off, row._asdict())[1] > 1
    assert len(rows) == 12 and singular > 0


def test_the_million_config_sweep_is_a_million_configs():
    """scripts/million.py's spec: the issue's 1,000,000 configs, as 1,000 families."""
    import runpy

    million = runpy.run_path("scripts/million.py", run_name="million")
    sweep = million["million_spec"](10)
    assert sweep.n_configs == 1_000_000
    assert (
        len(sweep.axes["depth"]) == 1000
        and len(sweep.axes["sigma_w"]) == 100
        and sweep.axes["width"] == (16,)
    )
