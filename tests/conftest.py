import gc
import os
import tempfile

# Single-threaded BLAS: multi-threaded BLAS stalls now and then on these shared machines.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The suite compiles hundreds of small programs, and XLA:CPU's compiling dominates it. LLVM
# at -O1 and XLA's older fusion emitters compile a tiny sweep's program in 4.2 s instead of
# 7.5 s (medians of 3 interleaved runs), while a warm width-256 run is 1.1-1.2x slower. The
# subprocesses inherit the flags. (These are test settings: sweep sets no XLA flag.)
TEST_XLA_FLAGS = "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
# The suite's own compilation cache, fresh each session (the CLI turns one on, in-process
# and in the subprocesses that share it): never the user's ~/.cache/sweep.
os.environ["SWEEP_CACHE_DIR"] = tempfile.mkdtemp(prefix="sweep-test-cache-")

import jax  # noqa: E402
import pytest  # noqa: E402

from sweep import api  # noqa: E402

# Tests of sweep's internals call them outside its entry points, whose float64 scope
# (sweep.precision) they would otherwise miss. tests/test_precision.py checks in fresh
# processes that sweep itself changes no JAX option.
jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Each module's compiled programs are freed after it: every XLA executable holds
    memory maps (a sweep's programs about 700), and the suite's would pass the kernel's
    vm.max_map_count (65,530), where the next compile segfaults (as on CI at 92%)."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def run_sweep(tmp_path):
    """Runs a sweep given as a dict into a fresh directory; returns its DataFrame."""
    counter = iter(range(10**6))

    def run(axes, settings=None, **kwargs):
        out = tmp_path / f"run{next(counter)}"
        raw = {"name": "test", "axes": axes, "settings": settings or {}}
        return api.run(raw, str(out), **kwargs)

    return run


TINY = {
    "name": "tiny",
    "axes": {
        "depth": [1, 3, 6],
        "sigma_w": [0.6, 1.0, 1.2, 1.3, 1.4, 1.5, 1.7],
        "width": [8],
        "activation": ["relu", "tanh"],
        "seed": [0, 1],
    },
}


@pytest.fixture(scope="session")
def tiny_spec():
    """A small sweep shared by the API and plot tests."""
    return TINY


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, tiny_spec):
    """(out, frame) of tiny_spec, run once per test session."""
    out = str(tmp_path_factory.mktemp("tiny"))
    return out, api.run(tiny_spec, out)
