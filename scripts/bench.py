"""The benchmark as a script: python scripts/bench.py [--quick] (same as `sweep bench`)."""

import sys

from sweep import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:]]))
