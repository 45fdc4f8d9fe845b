"""Phase diagrams, layer plots and the `sweep plot` command, on tiny sweeps and synthetic frames."""

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sweep import api, cli, plot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_rows(seeds=(0, 1, 2)) -> pd.DataFrame:
    """A grid over every axis with a known metric: gain = depth * log10(sigma_w) + seed."""
    grid = pd.MultiIndex.from_product(
        [
            [1, 2, 4, 8],
            [0.5, 1.0, 1.5, 2.0],
            [0.0],
            [16],
            ["gaussian", "orthogonal"],
            ["linear", "relu"],
            list(seeds),
        ],
        names=["depth", "sigma_w", "sigma_b", "width", "init", "activation", "seed"],
    ).to_frame(index=False)
    grid["config_id"] = [f"{i:016x}" for i in range(len(grid))]
    grid["log10_backward_gain"] = grid["depth"] * np.log10(grid["sigma_w"]) + grid["seed"]
    grid["theory_chi1"] = grid["sigma_w"] ** 2 / np.where(grid["activation"] == "relu", 2.0, 1.0)
    grid["theory_xi_c"] = -1.0 / np.log(grid["theory_chi1"])
    return grid


def test_importing_plot_loads_neither_matplotlib_nor_jax():
    """matplotlib loads only when a figure is drawn, and sweep.plot touches no JAX option."""
    code = (
        "import sys, sweep.plot\n"
        "assert not any(m.split('.')[0] in ('matplotlib', 'jax') for m in sys.modules)\n"
        "public = [getattr(sweep.plot, name) for name in sweep.plot.__all__]\n"
        "print(all(f.__doc__ for f in public if callable(f)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"


# --- selection, facets and aggregation on a synthetic frame -----------------------------


def test_parse_where_splits_keys_and_values():
    assert plot.parse_where(["width=64", "sigma_w=0.5,1.5", "width=2"]) == {
        "width": ["64", "2"],
        "sigma_w": ["0.5", "1.5"],
    }
    for bad in ("width", "=3", "width="):
        with pytest.raises(plot.PlotError, match="expected key=value"):
            plot.parse_where([bad])


def test_select_matches_numbers_loosely_and_strings_exactly():
    rows = synthetic_rows()
    picked = plot.select(
        rows, {"sigma_w": ["1", "2.0000000000001"], "init": "gaussian", "depth": 4}
    )
    assert (
        set(picked["sigma_w"]) == {1.0, 2.0}
        and set(picked["init"]) == {"gaussian"}
        and set(picked["depth"]) == {4}
    )
    with pytest.raises(
        plot.PlotError, match=r"--where depth=3 selects no rows; depth has 1, 2, 4, 8"
    ):
        plot.select(rows, {"depth": 3})
    with pytest.raises(plot.PlotError, match="depth takes numbers"):
        plot.select(rows, {"depth": "deep"})
    with pytest.raises(plot.PlotError, match="unknown column 'colour'"):
        plot.select(rows, {"colour": "red"})


def test_check_single_valued_names_the_axis_and_the_fix():
    rows = synthetic_rows()
    assert plot.check_single_valued(rows, ["sigma_b", "width"]) == {"sigma_b": 0.0, "width": 16}
    with pytest.raises(
        plot.PlotError,
        match=r"init has 2 values \(gaussian, orthogonal\).*--where init=gaussian.*--facet",
    ):
        plot.check_single_valued(rows, ["width", "init"])


@pytest.mark.parametrize("agg, expected", [("median", 1.0), ("mean", 4.0 / 3.0)])
def test_aggregate_seeds(agg, expected):
    rows = synthetic_rows(seeds=(0, 1, 3))
    table = plot.aggregate_seeds(
        rows, ["init", "activation", "depth", "sigma_w"], ["log10_backward_gain"], agg
    )
    assert len(table) == len(rows) // 3 and (table["n_seeds"] == 3).all()
    assert table["log10_backward_gain"].dtype == np.float64
    # gain = depth * log10(sigma_w) + seed, so the seed median is 1 and the mean 4/3 over it.
    offset = table["log10_backward_gain"] - table["depth"] * np.log10(table["sigma_w"])
    np.testing.assert_allclose(offset, expected)


def test_aggregate_seeds_skips_nan_and_keeps_all_nan_groups_nan():
    rows = pd.DataFrame(
        {"depth": [1, 1, 1, 2, 2], "seed": [0, 1, 2, 0, 1], "m": [1.0, np.nan, 3.0, np.nan, np.nan]}
    )
    table = plot.aggregate_seeds(rows, ["depth"], ["m"], "median")
    assert table["m"].iloc[0] == 2.0 and np.isnan(table["m"].iloc[1])
    with pytest.raises(plot.PlotError, match="unknown aggregation 'max'"):
        plot.aggregate_seeds(rows, ["depth"], ["m"], "max")


def test_facet_panels_layout():
    rows = synthetic_rows()
    panels, n_rows, n_cols = plot.facet_panels(rows, [])
    assert (n_rows, n_cols, len(panels)) == (1, 1, 1) and len(panels[0].frame) == len(rows)

    panels, n_rows, n_cols = plot.facet_panels(rows, ["init", "activation"])
    assert (n_rows, n_cols) == (2, 2)
    assert [(p.row, p.col, p.title) for p in panels] == [
        (0, 0, "init = gaussian, activation = linear"),
        (0, 1, "init = gaussian, activation = relu"),
        (1, 0, "init = orthogonal, activation = linear"),
        (1, 1, "init = orthogonal, activation = relu"),
    ]
    assert all(len(p.frame) == len(rows) // 4 for p in panels)

    # One facet axis wraps; a missing combination gets no panel.
    panels, n_rows, n_cols = plot.facet_panels(rows, ["depth"], wrap=3)
    assert (n_rows, n_cols) == (2, 3) and [(p.row, p.col) for p in panels] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
    ]
    gone = rows[~((rows["init"] == "orthogonal") & (rows["activation"] == "relu"))]
    panels, n_rows, n_cols = plot.facet_panels(gone, ["init", "activation"])
    assert (n_rows, n_cols, len(panels)) == (2, 2, 3)


def test_geometric_axes_and_cell_edges():
    assert plot.is_geometric([1, 2, 4, 8, 16]) and plot.is_geometric([1, 10, 100, 1000])
    assert not plot.is_geometric(list(range(1, 151))) and not plot.is_geometric(
        np.linspace(0.5, 1.5, 41)
    )
    assert (
        plot.is_geometric([2, 64])
        and not plot.is_geometric([0.9, 1.1])
        and not plot.is_geometric([0, 1, 2])
    )
    np.testing.assert_allclose(
        plot.cell_edges(np.array([1.0, 2.0, 3.0]), False), [0.5, 1.5, 2.5, 3.5]
    )
    np.testing.assert_allclose(
        plot.cell_edges(np.array([1.0, 4.0, 16.0]), True), [0.5, 2.0, 8.0, 32.0]
    )


def test_critical_sigma_w_interpolates_chi1_in_log_space():
    rows = synthetic_rows()
    relu = rows[rows["activation"] == "relu"]
    # chi1 = sigma_w^2 / 2 is linear in log-log, so the crossing is exact between grid points.
    crit = plot.critical_sigma_w(relu, "depth")
    np.testing.assert_allclose(crit.to_numpy(), math.sqrt(2), rtol=1e-12)
    assert list(crit.index) == [1, 2, 4, 8]
    assert math.isnan(plot.critical_sigma_w(relu[relu["sigma_w"] < 1.2]).iloc[0])


def test_synthetic_phase_diagram_panels_titles_and_colour_bar():
    rows = synthetic_rows()
    fig = plot.phase_diagram(
        rows, facet=("init", "activation"), where={"init": ["gaussian", "orthogonal"]}
    )
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert (
        sorted(ax.get_title() for ax in panels)[0] == "init = gaussian, activation = linear"
        and len(panels) == 4
    )
    bar = [ax for ax in fig.axes if "[decades]" in ax.get_ylabel()]
    assert len(bar) == 1
    assert all(ax.get_xlabel().startswith("σ_w") for ax in panels if ax.get_xlabel())
    assert "median over 3 seeds" in fig._suptitle.get_text()
    # A geometric depth axis (1, 2, 4, 8) gets a log scale; an even sigma_w one does not.
    assert panels[0].get_yscale() == "log" and panels[0].get_xscale() == "linear"
    # The colour scale is symmetric about 0: diverging, centred on the boundary.
    mesh = panels[0].collections[0]
    assert mesh.norm.vmin == -mesh.norm.vmax
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "measured boundary (backward gain = 0)",
        "theory: critical σ_w (χ₁ = 1)",
        "theory: 6·|ξ_c| (correlation depth scale)",
    ]


# --- real tiny sweeps --------------------------------------------------------------------


def _critical_line(ax):
    lines = [line for line in ax.get_lines() if line.get_label().startswith("theory: critical")]
    assert len(lines) == 1
    return np.asarray(lines[0].get_xdata(), dtype=float)


@pytest.mark.parametrize("activation, expected", [("relu", math.sqrt(2.0)), ("tanh", 1.0)])
def test_theory_overlay_sits_at_the_critical_sigma_w(tiny, activation, expected):
    _, rows = tiny
    fig = plot.phase_diagram(rows, where={"activation": activation})
    (ax,) = [ax for ax in fig.axes if ax.get_title()]
    np.testing.assert_allclose(_critical_line(ax), expected, rtol=1e-9)
    # The line spans the whole depth range of the panel.
    ys = [line for line in ax.get_lines() if line.get_label().startswith("theory: critical")][
        0
    ].get_ydata()
    assert min(ys) <= 1 and max(ys) >= 6
    legend_labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "theory: critical σ_w (χ₁ = 1)" in legend_labels


def test_transposed_phase_diagram_draws_a_horizontal_critical_line(tiny):
    _, rows = tiny
    fig = plot.phase_diagram(rows, x="depth", y="sigma_w", facet=("activation",))
    titled = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    line = [
        line
        for line in titled["activation = relu"].get_lines()
        if line.get_label().startswith("theory: critical")
    ][0]
    np.testing.assert_allclose(line.get_ydata(), math.sqrt(2.0), rtol=1e-9)


def test_phase_diagram_refuses_unplotted_axes_with_several_values(tiny):
    _, rows = tiny
    with pytest.raises(plot.PlotError, match=r"^activation has 2 values \(relu, tanh\)"):
        plot.phase_diagram(rows, facet=())


def test_layer_plot_uses_the_deepest_config_and_colours_by_the_varying_axis(tiny):
    _, rows = tiny
    fig = plot.layer_plot(rows, where={"activation": "tanh", "sigma_w": [0.6, 1.0, 1.5]})
    act, grad = fig.axes[:2]
    assert len(act.get_lines()) == 4  # three sigma_w lines and the unit-norm reference
    xs = act.get_lines()[0].get_xdata()
    assert list(xs) == list(range(0, 7))  # layers 0..6 of the deepest (depth 6) network
    assert list(grad.get_lines()[0].get_xdata()) == list(range(1, 7))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["0.6", "1", "1.5"]
    assert "(log scale)" in act.get_ylabel() and act.get_xlabel() == "layer l"
    # The per-layer table draws the same lines.
    long = api.load(tiny[0], layers=True)
    same = plot.layer_plot(long, where={"activation": "tanh", "sigma_w": [0.6, 1.0, 1.5]})
    for mine, theirs in zip(act.get_lines(), same.axes[0].get_lines()):
        np.testing.assert_array_equal(mine.get_ydata(), theirs.get_ydata())
    with pytest.raises(
        plot.PlotError, match="sigma_w, activation vary, but a layer plot colours lines by one axis"
    ):
        plot.layer_plot(rows)


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_cli_plot_writes_the_requested_format(tiny, tmp_path, fmt, magic, capsys):
    out_dir, _ = tiny
    path = tmp_path / f"phase.{fmt}"
    assert (
        cli.main(["plot", out_dir, "--facet", "activation", "--agg", "mean", "--out", str(path)])
        == 0
    )
    assert path.read_bytes()[:5].startswith(magic) and path.stat().st_size > 1000
    assert capsys.readouterr().out.strip() == f"sweep: wrote {path}"


def test_cli_layers_plot(tiny, tmp_path):
    out_dir, _ = tiny
    path = tmp_path / "layers.png"
    argv = [
        "plot",
        out_dir,
        "--kind",
        "layers",
        "--facet",
        "activation",
        "--where",
        "sigma_w=0.6,1,1.7",
        "--out",
        str(path),
    ]
    assert cli.main(argv) == 0
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--metric", "loss"],
            "unknown metric 'loss'; accepted: log10_forward_gain, log10_backward_gain",
        ),
        (["--x", "sigma"], "unknown x axis 'sigma'; accepted: depth, sigma_w"),
        (["--facet", "colour"], "unknown facet axis 'colour'"),
        (["--where", "width=3"], "--where width=3 selects no rows; width has 8"),
        (["--facet", ""], "activation has 2 values (relu, tanh) but is not plotted"),
        (["--out", "phase.jpg"], "unknown image format '.jpg'; accepted: .png, .svg, .pdf"),
        (["--agg", "max"], "invalid choice: 'max'"),
        (
            ["--kind", "layers", "--metric", "log10_forward_gain"],
            "--metric applies to --kind phase",
        ),
    ],
)
def test_cli_plot_errors_are_one_line_with_exit_code_2(tiny, tmp_path, capsys, args, message):
    out_dir, _ = tiny
    argv = ["plot", out_dir, *args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "never.png")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sweep: error: ") and message in err
    assert not (tmp_path / "never.png").exists()


def test_cli_plot_on_a_missing_directory(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a sweep results directory" in capsys.readouterr().err


def test_analysis_script_runs_end_to_end(tiny, tmp_path):
    out_dir, _ = tiny
    env = {
        **os.environ,
        "SWEEP_RESULTS": out_dir,
        "SWEEP_FIGURES": str(tmp_path),
        "MPLBACKEND": "Agg",
    }
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "analysis.py")],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "The lecture's example, measured" in done.stdout
    assert "measured_critical_sigma_w" in done.stdout  # the DuckDB query's result
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["layers.png", "phase.png"]
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)
