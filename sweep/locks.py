"""One writer per slice of a results directory, with flock: a lock dies with its process.

A run of slice I of N (`--shard I/N`; an unsharded run is 0/1) holds, while it writes:
- `.lock` shared (`--overwrite`: exclusive, so it never runs beside another writer);
- `.lock-of-N` shared, after checking that no run with another N holds its own: the
  slices of different N overlap, so they never write side by side;
- `.lock-I-of-N` exclusive: a second run of the same slice is refused.
Reading and writing sweep.json happens under `.lock-manifest`, exclusive and brief, so two
different sweeps started at once cannot both claim the directory. Each refusal is one
line that says who holds the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os

from .errors import StoreError

BUSY = "another `sweep run` is writing"


def _take(held: list, path: str, mode: int, refusal: str) -> None:
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreError(refusal) from None
    held.append(handle)


@contextlib.contextmanager
def writer(out_dir: str, shard: tuple[int, int] = (0, 1), overwrite: bool = False):
    """Holds out_dir for writing slice shard = (I, N); StoreError when another run holds it."""
    index, count = shard
    os.makedirs(out_dir, exist_ok=True)
    held: list = []
    try:
        whole = fcntl.LOCK_EX if overwrite else fcntl.LOCK_SH
        _take(held, os.path.join(out_dir, ".lock"), whole, f"{BUSY} {out_dir}; wait for it to end")
        mine = os.path.join(out_dir, f".lock-of-{count}")
        _take(held, mine, fcntl.LOCK_SH, f"{BUSY} {out_dir}")
        for other in glob.glob(os.path.join(out_dir, ".lock-of-*")):
            if other != mine:
                probe: list = []
                others = other.rsplit("-", 1)[-1]
                _take(
                    probe,
                    other,
                    fcntl.LOCK_EX,
                    f"{BUSY} {out_dir} in {others} slices (--shard I/{others}); every run into "
                    f"one directory must use the same N, not {count}",
                )
                probe[0].close()
        _take(
            held,
            os.path.join(out_dir, f".lock-{index}-of-{count}"),
            fcntl.LOCK_EX,
            f"{BUSY} slice {index}/{count} of {out_dir}; wait for it to end",
        )
        yield
    finally:
        for handle in reversed(held):
            handle.close()


@contextlib.contextmanager
def manifest_section(out_dir: str):
    """Exclusive, blocking and brief: reading, checking and writing sweep.json."""
    with open(os.path.join(out_dir, ".lock-manifest"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
