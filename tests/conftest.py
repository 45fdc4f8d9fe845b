import os

# Single-threaded BLAS: multi-threaded BLAS stalls now and then on these shared machines.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

import sweep  # noqa: E402,F401  (turns on float64 before any test touches JAX)
from sweep import api  # noqa: E402


@pytest.fixture
def run_sweep(tmp_path):
    """Runs a sweep given as a dict into a fresh directory; returns its DataFrame."""
    counter = iter(range(10**6))

    def run(axes, settings=None, **kwargs):
        out = tmp_path / f"run{next(counter)}"
        raw = {"name": "test", "axes": axes, "settings": settings or {}}
        return api.run(raw, str(out), **kwargs)

    return run
