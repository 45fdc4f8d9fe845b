"""Which 152-layer networks train: plain against residual, on the 8x8 digits.

    python scripts/make_resnet_trainability.py [--results DIR] [--figures results/resnet]

Runs SPEC (below) into --results (default /tmp/sweep-resnet-trainability; only missing
configs are computed), then draws trainability-152.png: the final training accuracy after
300 SGD steps over σ_w², per activation, one line per architecture (median over seeds,
each seed a dot), at depth 152, with the 16-layer plain net as a reference and chance
(10%) dotted. Prints the trainable fraction per architecture and depth.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import sweep
from sweep import api, plot

DPI = 130
SPEC = {
    "name": "resnet-trainability",
    "axes": {
        "depth": [16, 152],
        "sigma_w2": [0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
        "sigma_b2": [0.0],
        "width": [64],
        "init": ["gaussian"],
        "activation": ["tanh", "relu"],
        "seed": [0, 1],
        "architecture": ["mlp", "resnet", "resnet_prenorm"],
        "residual_scale": [1.0, 0.1],
    },
    "settings": {"jacobian": False},
    "train": {"task": "digits", "optimizer": "sgd", "learning_rate": 0.01, "steps": 300},
}
STYLES = {  # (architecture, residual scale) -> label, colour, line style
    ("mlp", None): ("plain (mlp)", "black", "-"),
    ("resnet", 1.0): ("resnet, α = 1", "tab:red", "-"),
    ("resnet", 0.1): ("resnet, α = 0.1", "tab:red", "--"),
    ("resnet_prenorm", 1.0): ("pre-LN resnet, α = 1", "tab:blue", "-"),
    ("resnet_prenorm", 0.1): ("pre-LN resnet, α = 0.1", "tab:blue", "--"),
}


def _variant(row):
    alpha = None if np.isnan(row.residual_scale) else float(row.residual_scale)
    return row.architecture, alpha


def figure(frame):
    fig = plot._new_figure(11.0, 4.4)
    axes = fig.subplots(1, 2, sharey=True)
    frame = frame.assign(variant=[_variant(r) for r in frame.itertuples()])
    for ax, activation in zip(axes, ("tanh", "relu")):
        rows = frame[frame["activation"] == activation]
        shallow = rows[(rows["depth"] == 16) & (rows["architecture"] == "mlp")]
        median = shallow.groupby("sigma_w2")["train_accuracy_final"].median()
        ax.plot(median.index, median.values, color="0.6", ls=":", lw=2, label="plain, 16 layers")
        deep = rows[rows["depth"] == 152]
        for variant, (label, colour, style) in STYLES.items():
            these = deep[deep["variant"] == variant]
            median = these.groupby("sigma_w2")["train_accuracy_final"].median()
            ax.plot(median.index, median.values, color=colour, ls=style, lw=1.8, label=label)
            ax.scatter(these["sigma_w2"], these["train_accuracy_final"], color=colour, s=10)
        ax.axhline(0.1, color="0.4", lw=0.8, ls=(0, (1, 3)))
        at_chance = [
            STYLES[v][0]
            for v in STYLES
            if deep[deep["variant"] == v]["train_accuracy_final"].max() < 0.12
        ]
        if at_chance:  # their lines lie on top of each other
            ax.text(
                0.97,
                0.13,
                "at chance: " + ", ".join(at_chance),
                ha="right",
                va="bottom",
                transform=ax.get_yaxis_transform(),
                fontsize=8,
                color="0.25",
            )
        ax.set_title(f"{activation}: 152 layers, width 64, σ_b = 0")
        ax.set_xlabel("σ_w²")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training accuracy after 300 SGD steps")
    axes[0].set_ylim(0, 1.02)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle("Which 152-layer networks train on the 8×8 digits (chance: 10%)")
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="/tmp/sweep-resnet-trainability")
    parser.add_argument("--figures", default=os.path.join("results", "resnet"))
    args = parser.parse_args(argv)
    api.execute(SPEC, args.results, progress=True)
    frame = sweep.load(args.results)
    summary = frame.assign(variant=[_variant(r) for r in frame.itertuples()])
    table = summary.groupby(["activation", "variant", "depth"])["trainable"].mean().unstack()
    print(table.to_string())
    os.makedirs(args.figures, exist_ok=True)
    path = os.path.join(args.figures, "trainability-152.png")
    figure(frame).savefig(path, dpi=DPI, bbox_inches="tight")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
