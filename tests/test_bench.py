"""The benchmark's quick mode: it runs, its per-config loop agrees with the engine, and it
ends with the machine-readable line."""

import re

from sweep import cli


def test_quick_bench_runs_and_checks_the_loop(capsys, tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--subsample", "3", "--json", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    pattern = (
        r"bench: engine_cfg_per_s=[\d.]+ jax_loop_speedup=[\d.]+ torch_speedup=\S+ "
        r"peak_fraction=[\d.]+ peak_rss_mb=\d+"
    )
    assert re.fullmatch(pattern, last), last
    assert '"loop_max_difference"' in out.read_text()
