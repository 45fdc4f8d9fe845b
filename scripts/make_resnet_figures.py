"""Regenerates results/resnet/*.png, the 152-layer networks the lecture ends on.

    python scripts/make_resnet_figures.py [--results results/resnet] [--figures DIR]

Runs the built-in resnet preset into --results first (only the configs missing there are
computed), then draws:

    phase-backward-gain-alpha1.png    backward gain over σ_w² and depth, per activation and
                                      architecture (residual α = 1), with the theory's
                                      finite-depth boundary (its gain = 0 contour)
    phase-backward-gain-alpha0.1.png  the same at α = 0.1, each panel its own colour scale
    layers-152-tanh-sigma_w2-*.png    per-layer gradient norms of 152-layer tanh nets:
                                      plain against residual, at σ_w² = 1 and 2
"""

from __future__ import annotations

import argparse
import os
import sys

import sweep
from sweep import api, plot, spec as spec_module

DPI = 130


def figures(frame):
    """(file name, Figure) for every committed figure, from the resnet preset's rows."""
    for alpha in (1.0, 0.1):
        yield (
            f"phase-backward-gain-alpha{alpha:g}.png",
            plot.phase_diagram(
                frame,
                x="sigma_w2",
                metric="log10_backward_gain",
                facet=("activation", "architecture"),
                where={"residual_scale": alpha},
                # At α = 0.1 the residual nets' gains (about a decade) vanish beside
                # plain relu's ±25 on one scale: each panel gets its own.
                color_scale="per-panel" if alpha < 1 else "shared",
                title=f"Backward gain (decades), width 64, σ_b = 0, residual α = {alpha:g} "
                "(mlp has no α)",
            ),
        )
    for sigma_w2 in (1.0, 2.0):
        yield (
            f"layers-152-tanh-sigma_w2-{sigma_w2:g}.png",
            plot.layer_plot(
                frame,
                where={
                    "activation": "tanh",
                    "depth": 152,
                    "sigma_w2": sigma_w2,
                    "residual_scale": 1.0,
                },
                metrics=("log10_grad_norm",),
                title=f"152-layer tanh, σ_w² = {sigma_w2:g}, α = 1: ‖∂ℓ/∂W_l‖ per layer",
            ),
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join("results", "resnet"))
    parser.add_argument("--figures", default=None, help="default: the results directory")
    args = parser.parse_args(argv)
    api.execute(spec_module.preset("resnet"), args.results, progress=True)
    frame = sweep.load(args.results)
    os.makedirs(args.figures or args.results, exist_ok=True)
    for name, fig in figures(frame):
        path = os.path.join(args.figures or args.results, name)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
