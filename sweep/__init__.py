"""sweep: map where deep networks explode or vanish.

>>> import sweep
>>> df = sweep.run("spec.toml")        # or a dict, or a sweep.spec.Spec
>>> df = sweep.load("results/lecture")  # one row per config
>>> long = sweep.load("results/lecture", layers=True)  # one row per config and layer
>>> fig = sweep.plot.phase_diagram(df, where={"width": 64})  # a matplotlib Figure
"""

from importlib import metadata as _metadata

import jax as _jax

# Log-scales are accumulated in float64 so depth 10,000 is as exact as depth 10; the
# networks themselves run in the spec's dtype, which every array names explicitly.
_jax.config.update("jax_enable_x64", True)

from . import plot as plot  # noqa: E402  (matplotlib itself is imported on first use)
from .api import load as load  # noqa: E402
from .api import run as run
from .spec import Spec as Spec  # noqa: E402
from .spec import SpecError as SpecError

try:
    __version__ = _metadata.version("sweep")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"
