"""The `sweep` console script's entry: SIGINT and SIGTERM are handled before anything heavy
is imported, so a signal at any moment, start-up included, ends with one line."""

import sys

from . import interrupts


def main() -> None:
    """Installs the signal handlers, then runs the command line (sweep.cli)."""
    interrupts.install()
    try:
        with interrupts.deferred():
            from . import cli
    except KeyboardInterrupt as err:
        sys.exit(interrupts.report(err))
    cli.console()
