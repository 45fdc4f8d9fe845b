"""`import sweep` changes nothing in the user's JAX, and sweep's own float64 scope works
without any global option: each check runs in a fresh Python process (this test session
turns float64 on in conftest.py for the tests of sweep's internals)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sweep import api, theory

TINY = {
    "name": "precision",
    "axes": {"depth": [1, 4], "sigma_w": [0.7, 1.6], "width": [4], "activation": ["tanh"]},
}


def run_python(code: str, *args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_changes_no_jax_option_and_imports_nothing_heavy():
    out = run_python(
        "import sys, jax, jax.numpy as jnp\n"
        "before = {k: v for k, v in jax.config.values.items()}\n"
        "import sweep\n"
        "assert jnp.array(1.0).dtype == jnp.float32\n"
        "changed = [k for k, v in jax.config.values.items() if before.get(k) != v]\n"
        "heavy = [m for m in ('optax', 'matplotlib', 'sweep.engine') if m in sys.modules]\n"
        "print(changed, heavy)\n"
    )
    assert out.strip() == "[] []"


def test_the_spec_module_needs_no_jax():
    out = run_python(
        "import sys\n"
        "import sweep.spec\n"
        "sweep.spec.preset('lecture').configs()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib')))\n"
    )
    assert out.strip() == "[]"


def test_run_and_theory_are_float64_inside_and_leave_float32_outside(tmp_path):
    """The same rows and theory as this (global float64) session, from a process where
    float64 is off before, during (outside sweep's calls) and after."""
    code = (
        "import json, sys, jax.numpy as jnp, sweep\n"
        "frame = sweep.run(json.loads(sys.argv[1]), out=sys.argv[2])\n"
        "assert jnp.array(1.0).dtype == jnp.float32\n"
        "mf = sweep.theory.mean_field('tanh', 1.3, 0.2)\n"
        "assert jnp.array(1.0).dtype == jnp.float32\n"
        "print(json.dumps({'gain': frame['log10_backward_gain'].tolist(),\n"
        "    'ids': frame['config_id'].tolist(), 'chi1': float(mf.chi1),\n"
        "    'q_star': float(mf.q_star)}))\n"
    )
    got = json.loads(run_python(code, json.dumps(TINY), str(tmp_path / "outside")))
    here = api.run(TINY, str(tmp_path / "here"))
    assert got["ids"] == here["config_id"].tolist()
    np.testing.assert_array_equal(got["gain"], here["log10_backward_gain"])
    mf = theory.mean_field("tanh", 1.3, 0.2)
    assert got["chi1"] == float(mf.chi1) and got["q_star"] == float(mf.q_star)


def test_the_compile_cache_hits_on_a_second_run(tmp_path):
    """The CLI's persistent compilation cache keys programs under sweep's float64 scope:
    a second `sweep run` of the same spec finds them."""
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text("[axes]\ndepth = [1, 2]\nsigma_w = [1.0]\nwidth = [3]\n")
    code = (
        "import sys\n"
        "from jax import monitoring\n"
        "hits = []\n"
        "monitoring.register_event_listener(\n"
        "    lambda event, **kw: hits.append(event) if 'cache_hits' in event else None)\n"
        "import jax\n"
        "from sweep import cli\n"
        "setup = cli._use_compilation_cache\n"
        "def cache_everything():\n"
        "    setup()\n"
        "    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)\n"
        "cli._use_compilation_cache = cache_everything\n"
        "code = cli.main(['run', sys.argv[1], '--out', sys.argv[2], '--overwrite', '--quiet'])\n"
        "print(code, len(hits))\n"
    )
    env = {"SWEEP_CACHE_DIR": str(tmp_path / "cache")}
    first = run_python(code, str(spec_path), str(tmp_path / "a"), env=env).split()
    second = run_python(code, str(spec_path), str(tmp_path / "b"), env=env).split()
    assert first[0] == "0" and second[0] == "0"
    assert int(second[1]) > int(first[1]), (first, second)


@pytest.mark.parametrize("name", ["run", "load", "Spec", "SpecError", "plot", "theory"])
def test_public_names_load_on_first_use(name):
    import sweep

    assert getattr(sweep, name) is not None and name in dir(sweep)
