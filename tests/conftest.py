import os
import tempfile

# Single-threaded BLAS: multi-threaded BLAS stalls now and then on these shared machines.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The suite's own compilation cache, fresh each session (the CLI turns one on in-process):
# never the user's ~/.cache/sweep, whose entries another run may have left half-written.
os.environ["SWEEP_CACHE_DIR"] = tempfile.mkdtemp(prefix="sweep-test-cache-")

import jax  # noqa: E402
import pytest  # noqa: E402

from sweep import api  # noqa: E402

# Tests of sweep's internals call them outside its entry points, whose float64 scope
# (sweep.precision) they would otherwise miss. tests/test_precision.py checks in fresh
# processes that sweep itself changes no JAX option.
jax.config.update("jax_enable_x64", True)


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
