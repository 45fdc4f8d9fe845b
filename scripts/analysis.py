# %% [markdown]
# # Exploding and vanishing, from the lecture sweep
#
# A notebook-style script: run it whole (`python scripts/analysis.py`) or cell by cell in
# an editor that understands `# %%` cells (VS Code, Jupytext, Spyder).
#
# It reads `results/lecture` (make it with `sweep run`), or the directory named by the
# SWEEP_RESULTS environment variable. Set SWEEP_FIGURES to a folder to also save the
# figures there as PNG.

# %%
import os

import duckdb

import sweep
from sweep import lecture, plot

RESULTS = os.environ.get("SWEEP_RESULTS", "results/lecture")
FIGURES = os.environ.get("SWEEP_FIGURES", "")


def show(fig, name):
    """Saves a figure to FIGURES (when set) and returns it, so a notebook displays it."""
    if FIGURES:
        print("saved", plot.save(fig, os.path.join(FIGURES, name)))
    return fig


df = sweep.load(RESULTS)  # one row per config, seed included
print(f"{len(df)} configs from {RESULTS}")
print(df.drop(columns=["log10_act_norm", "log10_grad_norm"]).head())

# %% [markdown]
# ## The lecture's table
# W = s·I with 2-unit linear layers, so ŷ = s^L·x: the engine's own measurements.

# %%
print(lecture.lecture_table(df))

# %% [markdown]
# ## Phase diagrams: one panel per init and activation
# Colour is the backward gain in decades (blue: vanishing, red: exploding); the solid
# black contour is where it is 0, the measured boundary; dashed is the mean-field
# critical σ_w and the thin curve 6·|ξ_c|, the depth correlations survive.

# %%
WIDTH = int(df["width"].max())
SIGMA_B = float(df["sigma_b"].min())
fixed = {"width": WIDTH, "sigma_b": SIGMA_B}
phase = plot.phase_diagram(
    df,
    x="sigma_w",
    y="depth",
    metric="log10_backward_gain",
    facet=("init", "activation"),
    where=fixed,
)
show(phase, "phase.png")

# %% [markdown]
# ## Per-layer trajectories
# The long table has one row per (config, layer): the shape seaborn and groupby want.

# %%
layers = sweep.load(RESULTS, layers=True)
deepest = layers[
    (layers["depth"] == layers["depth"].max())
    & (layers["width"] == WIDTH)
    & (layers["sigma_b"] == SIGMA_B)
]
last_layer = deepest[deepest["layer"] == deepest["depth"]]
print(
    last_layer.groupby(["init", "activation"])["log10_act_norm"].describe()[["min", "50%", "max"]]
)

# Activation and gradient norms against layer for a few σ_w, one row per activation.
INIT = "gaussian" if "gaussian" in set(df["init"]) else str(df["init"].iloc[0])
sigmas = sorted(df["sigma_w"].unique())
few = sigmas[:: max(1, (len(sigmas) - 1) // 4)]
trajectories = plot.layer_plot(
    df, where={**fixed, "init": INIT, "sigma_w": few}, facet=("activation",)
)
show(trajectories, "layers.png")

# %% [markdown]
# ## One DuckDB query, straight on the Parquet parts
# At the deepest depth, the σ_w whose seed-median backward gain is closest to 0 (the
# measured critical point) beside the σ_w whose mean-field χ₁ is closest to 1.

# %%
parts = os.path.join(RESULTS, "**", "*.parquet").replace("'", "''")
query = f"""
WITH cells AS (
    SELECT init, activation, sigma_w,
           median(log10_backward_gain) AS backward_gain,
           any_value(theory_chi1) AS chi1
    FROM read_parquet('{parts}')
    WHERE depth = (SELECT max(depth) FROM read_parquet('{parts}'))
      AND width = {WIDTH} AND sigma_b = {SIGMA_B}
    GROUP BY init, activation, sigma_w
)
SELECT init, activation,
       arg_min(sigma_w, abs(backward_gain)) AS measured_critical_sigma_w,
       arg_min(sigma_w, abs(chi1 - 1)) AS theory_critical_sigma_w
FROM cells
GROUP BY init, activation
ORDER BY init, activation
"""
print(duckdb.sql(query).df().to_string(index=False))
