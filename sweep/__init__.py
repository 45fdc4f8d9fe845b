"""sweep: map where deep networks explode or vanish.

>>> import sweep
>>> df = sweep.run("spec.toml")        # or a dict, or a sweep.Spec
>>> df = sweep.load("results/lecture")  # one row per config
>>> long = sweep.load("results/lecture", layers=True)  # one row per config and layer
>>> fig = sweep.plot.phase_diagram(df, where={"width": 64})  # a matplotlib Figure

Importing sweep changes no JAX option and imports nothing heavy: the names below load
their modules on first use, and sweep's entry points turn on float64 only while they run
(sweep.precision).
"""

from importlib import import_module as _import_module, metadata as _metadata

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "run": ("sweep.api", "run"),
    "load": ("sweep.api", "load"),
    "Spec": ("sweep.spec", "Spec"),
    "SpecError": ("sweep.spec", "SpecError"),
    "plot": ("sweep.plot", None),
    "theory": ("sweep.theory", None),
}
__all__ = sorted(_LAZY)

try:
    __version__ = _metadata.version("sweep")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = _import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_LAZY])
