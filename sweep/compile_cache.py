"""The on-disk compilation cache of `sweep run`: kept, and repaired when an entry is broken.

A full disk or a killed process can leave a truncated entry. JAX then warns on every later
run ("Error reading persistent compilation cache entry") and never rewrites it. Here such
a warning is caught: the entries of that program that do not decompress are deleted, so
JAX compiles once more and writes a good entry, quietly.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
import zlib

BROKEN = re.compile(r"Error reading persistent compilation cache entry for '([^']+)'")


def use(path: str) -> None:
    """Keep compiled programs under `path` (every program that took >= 1 s to compile)."""
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        match = BROKEN.search(str(message))
        if match is None:
            return previous(message, category, filename, lineno, file, line)
        for entry in glob.glob(os.path.join(path, f"{glob.escape(match.group(1))}-*")):
            if not _readable(entry):
                os.remove(entry)

    warnings.showwarning = show


def _readable(entry: str) -> bool:
    """The entry decompresses (zstandard where JAX has it, else zlib)."""
    try:
        with open(entry, "rb") as f:
            data = f.read()
    except OSError:
        return False
    try:
        import zstandard

        zstandard.ZstdDecompressor().decompress(data)
        return True
    except ImportError:
        pass
    except Exception:  # noqa: BLE001  any failure: not zstandard
        pass
    try:
        zlib.decompress(data)
        return True
    except zlib.error:
        return False
