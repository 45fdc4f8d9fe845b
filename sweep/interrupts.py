"""SIGINT and SIGTERM stop a run between two chunks, even when JAX swallows the exception.

The CLI installs `handler` before it imports anything heavy, and defers signals while it
imports (`deferred`). The handler records the signal and raises Interrupted (a
KeyboardInterrupt); a KeyboardInterrupt raised inside a
callback that JAX runs (its garbage collection hooks) can be swallowed there, so the run
also calls `check` between chunks, which raises again for a recorded signal. A library
user who installs nothing sees plain KeyboardInterrupts, as before.
"""

from __future__ import annotations

import contextlib
import signal

_received: list[int] = []
_deferring: list[bool] = []


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by signal `signum`; the process exits 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def handler(signum, frame) -> None:
    """The signal handler: record the signal, and stop now unless deferred."""
    _received.append(signum)
    if not _deferring:
        raise Interrupted(signum)


@contextlib.contextmanager
def deferred():
    """Signals only recorded inside (an exception raised into a C extension that is being
    imported aborts the process); the stop comes at the end of the block."""
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
    check()


def install() -> None:
    """Handle SIGINT and SIGTERM with `handler` (the main thread only). An Interrupted
    that a callback swallows is not printed as "Exception ignored": it is recorded, and
    `check` raises it again between chunks."""
    import sys

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    default = sys.unraisablehook

    def unraisable(report):
        if not isinstance(report.exc_value, Interrupted):
            default(report)

    sys.unraisablehook = unraisable


def check() -> None:
    """Raise Interrupted if a signal arrived, even one whose exception was swallowed."""
    if _received:
        raise Interrupted(_received[-1])


def report(err: KeyboardInterrupt) -> int:
    """Prints the one line for an interrupted run and returns its exit code, 128 + signum."""
    import sys

    signum = getattr(err, "signum", signal.SIGINT)
    print(
        f"sweep: interrupted ({signal.Signals(signum).name}); finished chunks are saved, rerun "
        "the same command to resume",
        file=sys.stderr,
    )
    return 128 + signum
