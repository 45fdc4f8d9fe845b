"""Regenerates the lecture's committed figures, results/lecture/*.png, in one command.

    python scripts/make_figures.py [--results results/lecture] [--figures DIR]

Runs the built-in lecture preset into --results first (only the configs missing there are
computed, so on a finished run this just reads it), then draws:

    phase-backward-gain-width64.png   backward gain over σ_w and depth, per init and activation
    phase-backward-gain-width2.png    the same at the lecture's width 2
    phase-forward-gain-width64.png    forward gain (activation growth) over σ_w and depth
    layers-lecture-identity-width2.png  the lecture's W = s·I example: norms against layer
    layers-gaussian-width64.png       Gaussian init, norms against layer per activation
"""

from __future__ import annotations

import argparse
import os
import sys

import sweep
from sweep import api, plot, spec as spec_module

DPI = 130


def figures(frame):
    """(file name, Figure) for every committed figure, drawn from the lecture's rows."""
    for width in (64, 2):
        yield (
            f"phase-backward-gain-width{width}.png",
            plot.phase_diagram(frame, metric="log10_backward_gain", where={"width": width}),
        )
    yield (
        "phase-forward-gain-width64.png",
        plot.phase_diagram(frame, metric="log10_forward_gain", where={"width": 64}),
    )
    lecture = {
        "init": "identity",
        "activation": "linear",
        "width": 2,
        "sigma_w": [0.5, 0.9, 1.0, 1.1, 1.5],
    }
    yield (
        "layers-lecture-identity-width2.png",
        plot.layer_plot(
            frame,
            where=lecture,
            title="The lecture's example, W = s·I (2 units, linear), L = 150: norms against layer",
        ),
    )
    gaussian = {"init": "gaussian", "width": 64, "sigma_w": [0.5, 0.75, 1.0, 1.25, 1.5]}
    yield (
        "layers-gaussian-width64.png",
        plot.layer_plot(frame, where=gaussian, facet=("activation",)),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", default=os.path.join("results", "lecture"), help="lecture results directory"
    )
    parser.add_argument("--figures", help="where to write the PNGs (default: --results)")
    args = parser.parse_args(argv)
    try:
        frame = api.run(spec_module.preset("lecture"), args.results, progress=True)
        for name, fig in figures(frame):
            print(
                "wrote", plot.save(fig, os.path.join(args.figures or args.results, name), dpi=DPI)
            )
    except (sweep.SpecError, ValueError) as err:
        print(f"make_figures: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
