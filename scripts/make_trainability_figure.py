"""Runs the built-in trainability preset and draws results/trainability/trainable-fraction.png.

    python scripts/make_trainability_figure.py [--results results/trainability] [--figures DIR]

Runs the preset into --results first (only configs missing there are computed), then:

- fits k, the multiple of the mean-field correlation depth xi_c that best separates
  trainable from untrainable configs: a config is predicted trainable when
  depth <= k * xi_c(tanh, sigma_w, sigma_b), and k minimises the number of configs
  (seeds counted separately) the prediction gets wrong; printed with its range of ties;
- draws the trainable fraction over seeds on (sigma_w^2, depth), beside the final training
  accuracy, with k * xi_c for k = 1, 2, 4, 6 (thin) and the fitted k (thick) overlaid and
  the critical sigma_w^2 (chi1 = 1) dashed.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import sweep
from sweep import api, plot, spec as spec_module, theory

DPI = 130
MULTIPLES = (1, 2, 4, 6)
K_GRID = np.round(np.arange(0.5, 20.0 + 1e-9, 0.01), 2)


def fit_xi_multiple(depth, xi_c, trainable, grid=K_GRID):
    """(best k, errors at best k, lowest and highest k tied at that error), depth <= k xi_c."""
    predicted = depth[None, :] <= grid[:, None] * xi_c[None, :]
    errors = np.sum(predicted != trainable[None, :], axis=1)
    tied = grid[errors == errors.min()]
    return float(np.median(tied)), int(errors.min()), float(tied.min()), float(tied.max())


def with_theory(frame):
    frame = frame.copy()
    frame["xi_c"] = np.asarray(
        theory.mean_field("tanh", frame["sigma_w"].to_numpy(), frame["sigma_b"].to_numpy()).xi_c
    )
    return frame


def figure(frame, k_best: float):
    """Trainable fraction and final accuracy over (sigma_w^2, depth), with k xi_c curves."""
    fig = plot._new_figure(11.5, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    sigma_w2 = np.sort(frame["sigma_w2"].unique())
    depths = np.sort(frame["depth"].unique())
    x_edges = plot.cell_edges(sigma_w2, geometric=False)
    y_edges = plot.cell_edges(depths.astype(float), geometric=False)
    sigma_b = float(frame["sigma_b"].iloc[0])
    fine = np.linspace(x_edges[0], x_edges[-1], 400)
    xi_fine = np.asarray(theory.mean_field("tanh", np.sqrt(fine), sigma_b).xi_c)
    critical = theory.critical_sigma_w2("tanh", sigma_b**2)
    panels = [
        ("trainable", "trainable fraction (over seeds)", "Greens", (0, 1)),
        ("train_accuracy_final", "final training accuracy", "viridis", (0.1, 1)),
    ]
    n_seeds = frame["seed"].nunique()
    for ax, (column, label, cmap, (lo, hi)) in zip(axes, panels):
        grid = frame.pivot_table(
            index="depth", columns="sigma_w2", values=column, aggfunc="mean"
        ).reindex(index=depths, columns=sigma_w2)
        mesh = ax.pcolormesh(
            x_edges, y_edges, grid.to_numpy(float), cmap=cmap, vmin=lo, vmax=hi, shading="flat"
        )
        fig.colorbar(mesh, ax=ax, label=label, shrink=0.9)
        for k in MULTIPLES:
            ax.plot(fine, k * xi_fine, color="0.55", linewidth=1.1, linestyle=(0, (1.5, 1.5)))
            if k * xi_fine[-1] < y_edges[-1]:
                ax.annotate(
                    f"{k}ξ_c",
                    (fine[-1], k * xi_fine[-1]),
                    xytext=(-3, 1),
                    textcoords="offset points",
                    ha="right",
                    va="bottom",
                    fontsize=7,
                    color="0.1",
                    bbox={
                        "boxstyle": "round,pad=0.1",
                        "facecolor": "white",
                        "edgecolor": "none",
                        "alpha": 0.7,
                    },
                )
        ax.plot(
            fine,
            k_best * xi_fine,
            color="crimson",
            linewidth=2.0,
            label=f"fitted: {k_best:.2f}·ξ_c",
        )
        ax.axvline(
            critical,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"critical σ_w² = {critical:.3f} (χ₁ = 1)",
        )
        ax.set_xlim(x_edges[0], x_edges[-1])
        ax.set_ylim(y_edges[0], y_edges[-1])
        ax.set_xlabel("σ_w²")
        ax.set_title(label, fontsize=10)
    axes[0].set_ylabel("depth L [layers]")
    axes[0].legend(loc="upper right", fontsize=7.5, framealpha=0.85)
    settings = spec_module.preset("trainability").train
    width = int(frame["width"].iloc[0])
    fig.suptitle(
        f"Trainability of tanh nets, σ_b² = {sigma_b**2:.3g}, width {width}, digits, "
        f"{settings.optimizer} lr {settings.learning_rate[0]:g}, "
        f"{settings.steps} steps of {settings.batch_size}; "
        f"{n_seeds} seeds; dotted: 1, 2, 4, 6 ξ_c",
        fontsize=9.5,
    )
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", default=os.path.join("results", "trainability"), help="results directory"
    )
    parser.add_argument("--figures", help="where to write the PNG (default: --results)")
    args = parser.parse_args(argv)
    try:
        frame = api.run(spec_module.preset("trainability"), args.results, progress=True)
        frame = with_theory(frame)
        k, errors, k_lo, k_hi = fit_xi_multiple(
            frame["depth"].to_numpy(float),
            frame["xi_c"].to_numpy(float),
            frame["trainable"].to_numpy(bool),
        )
        print(
            f"best separating multiple: depth <= {k:.2f} xi_c (ties {k_lo:.2f}..{k_hi:.2f}); "
            f"{errors} of {len(frame)} configs misclassified ({1 - errors / len(frame):.1%} right)"
        )
        path = os.path.join(args.figures or args.results, "trainable-fraction.png")
        print("wrote", plot.save(figure(frame, k), path, dpi=DPI))
    except (sweep.SpecError, ValueError) as err:
        print(f"make_trainability_figure: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
