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
    """Log scales only for exactly geometric grids (three or more values, one ratio)."""
    assert plot.is_geometric([1, 2, 4, 8, 16]) and plot.is_geometric([1, 10, 100, 1000])
    assert plot.is_geometric(np.geomspace(0.1, 10, 7))
    assert not plot.is_geometric(list(range(1, 151))) and not plot.is_geometric(
        np.linspace(0.5, 1.5, 41)
    )
    # Two values have no spacing to judge; "roughly geometric" is not geometric.
    assert not plot.is_geometric([2, 64]) and not plot.is_geometric([0.9, 1.1])
    assert not plot.is_geometric([0, 1, 2]) and not plot.is_geometric([1, 2, 4, 8.1])
    # A spec's integer log range ({start = 1, stop = 1000, num = 20, log = true}) rounds to
    # integers once each: still the geometric grid it was written as.
    depths = list(dict.fromkeys(int(round(v)) for v in np.geomspace(1, 1000, 20)))
    assert len(depths) < 20 and plot.is_geometric(depths)
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
        (
            ["--metric", "trainable"],
            "metric 'trainable' is null in every selected row (the sweep has no [train] table",
        ),
        (["--where", "sigma_w=1.33"], "selects no rows; sigma_w has 0.6, 1, 1.2, 1.3"),
        (["--where", "sigma_w=1.33"], "the nearest is 1.3"),
        (["--where", "sigma_w2=2"], "matches 3 values of sigma_w2 to the 1 significant digit"),
        (["--overlay", "activation", "--facet", "activation"], "cannot both overlay and facet"),
        (["--overlay", "init"], "--overlay init: the selection leaves one value (gaussian)"),
        (["--vlim", "5,1"], "needs finite limits with lo < hi"),
        (["--vlim", "wide"], "--vlim wide: expected LO,HI"),
        (["--vlim", "4", "--color-scale", "per-panel"], "not both"),
        (["--color-scale", "each"], "invalid choice: 'each'"),
        (["--agg", "std", "--where", "seed=0"], "--agg std is a spread over seeds"),
        (["--kind", "layers", "--agg", "iqr"], "a layer plot aggregates seeds by median, mean"),
        (["--kind", "layers", "--overlay", "init"], "--overlay applies to --kind phase"),
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


# --- figures fit for a paper -------------------------------------------------------------


def _drawn_texts(fig):
    """(renderer, texts): every text a draw of ``fig`` shows (tick labels of drawn ticks)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    spare = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            drawn = {id(t) for t in axis._update_ticks()}
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if id(tick) not in drawn:
                    spare |= {id(tick.label1), id(tick.label2)}
    texts = [
        t
        for t in fig.findobj(Text)
        if t.get_visible()
        and t.get_text().strip()
        and id(t) not in spare
        and (t.axes is None or t.axes.get_visible())
    ]
    return renderer, texts


def _assert_nothing_clipped(fig):
    renderer, texts = _drawn_texts(fig)
    frame = fig.bbox
    kinds = set()
    for text in texts:
        box = text.get_window_extent(renderer)
        inside = (
            box.x0 >= frame.x0 - 0.5
            and box.y0 >= frame.y0 - 0.5
            and box.x1 <= frame.x1 + 0.5
            and box.y1 <= frame.y1 + 0.5
        )
        assert inside, f"{text.get_text()!r} at {box} sticks out of {frame}"
        kinds.add(type(text).__name__)
    return texts


def paper_rows() -> pd.DataFrame:
    """synthetic_rows with the finite-depth theory gain (its 0 contour at sigma_w = 1.2)."""
    rows = synthetic_rows()
    rows["theory_log10_backward_gain"] = rows["depth"] * np.log10(rows["sigma_w"] / 1.2)
    return rows


@pytest.mark.parametrize(
    "kwargs",
    [
        {"facet": (), "where": {"init": "gaussian", "activation": "relu"}},
        {"facet": ("init", "activation")},
        {"facet": ("init", "activation"), "color_scale": "per-panel"},
        {"facet": ("activation",), "overlay": "init"},
    ],
    ids=["single-panel", "faceted-grid", "per-panel-colour-bars", "overlay"],
)
def test_no_text_is_clipped(kwargs):
    """Titles, axis and tick labels, legends and colour-bar labels all lie inside the figure
    (a single panel had its title and legend cut off)."""
    fig = plot.phase_diagram(paper_rows(), **kwargs)
    texts = _assert_nothing_clipped(fig)
    shown = {t.get_text() for t in texts}
    assert any("σ_w (weight std" in t for t in shown) and len(fig.legends) == 1
    assert (
        fig._suptitle.get_text()
        .replace("\n", " ")
        .startswith(
            "measured boundaries" if "overlay" in kwargs else "backward gain over σ_w and L"
        )
    )


def test_layer_plot_text_is_not_clipped(tiny):
    _, rows = tiny
    fig = plot.layer_plot(rows, where={"activation": "tanh", "sigma_w": [0.6, 1.0, 1.5]})
    _assert_nothing_clipped(fig)


def test_evenly_spaced_grid_gets_a_linear_axis_with_separate_tick_labels():
    sigma_w = np.round(np.arange(1.35, 1.5 + 1e-9, 0.01), 12)
    rows = synthetic_rows()
    rows = pd.concat(
        [rows[rows["sigma_w"] == 1.0].assign(sigma_w=s) for s in sigma_w], ignore_index=True
    )
    rows["log10_backward_gain"] = rows["depth"] * np.log10(rows["sigma_w"] / 1.42)
    assert not plot.is_geometric(sigma_w)
    fig = plot.phase_diagram(rows, facet=(), where={"init": "gaussian", "activation": "relu"})
    (ax,) = [ax for ax in fig.axes if ax.get_xlabel().startswith("σ_w")]
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "log"  # depth 1, 2, 4, 8
    renderer, _ = _drawn_texts(fig)
    labels = [t.label1 for t in ax.xaxis._update_ticks() if t.label1.get_text()]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    assert len(boxes) >= 3
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "tick labels overlap"
    _assert_nothing_clipped(fig)


def test_dead_and_nan_cells_are_hatched_and_grey_not_coloured():
    rows = synthetic_rows()
    relu = (rows["activation"] == "relu") & (rows["init"] == "gaussian")
    rows.loc[relu & (rows["depth"] == 8), "log10_backward_gain"] = -np.inf  # a dead row
    rows.loc[relu & (rows["depth"] == 2) & (rows["sigma_w"] == 2.0), "log10_backward_gain"] = np.nan
    fig = plot.phase_diagram(rows, facet=(), where={"init": "gaussian", "activation": "relu"})
    (ax,) = [ax for ax in fig.axes if ax.get_xlabel().startswith("σ_w")]
    mesh = ax.collections[0]
    values = np.ma.asarray(mesh.get_array()).reshape(4, 4)  # (depth 1, 2, 4, 8) x (sigma_w)
    assert np.ma.getmaskarray(values)[3].all()  # dead: masked, not the darkest blue
    assert np.ma.getmaskarray(values)[1, 3] and np.ma.getmaskarray(values).sum() == 5
    assert np.isfinite(values.compressed()).all()
    hatched = [c for c in ax.collections if c.get_hatch()]
    assert len(hatched) == 1 and len(hatched[0].get_paths()) == 1  # one run: the whole row
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "dead (−inf)" in legend and "no value (NaN)" in legend
    # The grey of a cell with no value is the colour map's "bad" colour.
    assert mesh.get_cmap().get_bad()[:3] == pytest.approx((0.82, 0.82, 0.82))


def test_finite_depth_theory_boundary_is_in_the_legend():
    fig = plot.phase_diagram(
        paper_rows(), facet=(), where={"init": "gaussian", "activation": "relu"}
    )
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "theory boundary (finite-depth prediction = 0)" in legend
    assert "measured boundary (backward gain = 0)" in legend
    (ax,) = [ax for ax in fig.axes if ax.get_xlabel().startswith("σ_w")]
    contours = [c for c in ax.collections if hasattr(c, "allsegs")]
    assert len(contours) == 2
    predicted = np.concatenate(contours[1].allsegs[0])
    np.testing.assert_allclose(predicted[:, 0], 1.2, atol=0.05)  # sigma_w* = 1.2


def _meshes(fig):
    from matplotlib.collections import QuadMesh

    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    return [c for ax in panels for c in ax.collections if isinstance(c, QuadMesh)]


def test_colour_limits_vlim_shared_and_per_panel():
    rows = synthetic_rows()
    rows.loc[rows["activation"] == "relu", "log10_backward_gain"] *= 10  # a wider range
    shared = plot.phase_diagram(rows)
    meshes = _meshes(shared)
    assert len(meshes) == 4 and len({(m.norm.vmin, m.norm.vmax) for m in meshes}) == 1
    assert sum(m.colorbar is not None for m in meshes) == 1

    per_panel = plot.phase_diagram(rows, color_scale="per-panel")
    meshes = _meshes(per_panel)
    assert all(m.colorbar is not None for m in meshes)
    limits = {(m.norm.vmin, m.norm.vmax) for m in meshes}
    assert len(limits) == 2 and all(lo == -hi for lo, hi in limits)  # linear vs relu
    _assert_nothing_clipped(per_panel)

    fixed = plot.phase_diagram(rows, vlim=(-3, 6))
    norm = _meshes(fixed)[0].norm
    assert (norm.vmin, norm.vmax, norm.vcenter) == (-3, 6, 0)  # 0 stays the white centre
    for bad, message in [((6, -3), "lo < hi"), (("a", 1), "two numbers")]:
        with pytest.raises(plot.PlotError, match=message):
            plot.phase_diagram(rows, vlim=bad)
    with pytest.raises(plot.PlotError, match="not both"):
        plot.phase_diagram(rows, vlim=(-1, 1), color_scale="per-panel")
    with pytest.raises(plot.PlotError, match="unknown colour scale 'each'"):
        plot.phase_diagram(rows, color_scale="each")
    assert plot.parse_vlim("-20,20") == (-20.0, 20.0) and plot.parse_vlim("5") == (-5.0, 5.0)
    with pytest.raises(plot.PlotError, match="expected LO,HI"):
        plot.parse_vlim("1,2,3")


@pytest.mark.parametrize(
    "agg, spread",
    [
        ("std", np.std([0.0, 1.0, 3.0], ddof=1)),
        ("iqr", np.percentile([0.0, 1.0, 3.0], 75) - np.percentile([0.0, 1.0, 3.0], 25)),
    ],
)
def test_seed_spread_std_and_iqr(agg, spread):
    rows = synthetic_rows(seeds=(0, 1, 3))  # gain = depth * log10(sigma_w) + seed
    table = plot.aggregate_seeds(
        rows, ["init", "activation", "depth", "sigma_w"], ["log10_backward_gain"], agg
    )
    np.testing.assert_allclose(table["log10_backward_gain"], spread)
    assert set(plot.AGGREGATIONS) == {"median", "mean", "std", "iqr"}
    # A seed that is -inf (dead) takes no part in the spread.
    rows.loc[rows["seed"] == 3, "log10_backward_gain"] = -np.inf
    table = plot.aggregate_seeds(
        rows, ["init", "activation", "depth", "sigma_w"], ["log10_backward_gain"], agg
    )
    expected = np.std([0.0, 1.0], ddof=1) if agg == "std" else 0.5
    np.testing.assert_allclose(table["log10_backward_gain"], expected)

    fig = plot.phase_diagram(synthetic_rows(seeds=(0, 1, 3)), agg=agg)
    mesh = [m for m in _meshes(fig) if m.colorbar][0]
    assert mesh.get_cmap().name == plot.SEQUENTIAL_CMAP and mesh.norm.vmin == 0
    bar = mesh.colorbar.ax.get_ylabel().replace("\n", " ")
    assert bar.startswith(
        "std over seeds of backward gain" if agg == "std" else "IQR (75th − 25th percentile)"
    )
    assert f"{agg} over 3 seeds" in fig._suptitle.get_text().replace("\n", " ")
    with pytest.raises(plot.PlotError, match="needs two or more"):
        plot.phase_diagram(synthetic_rows(seeds=(0,)), agg=agg)
    with pytest.raises(plot.PlotError, match=f"median, mean, not {agg}"):
        plot.layer_plot(synthetic_rows(), agg=agg)


def trained_rows(trainable_dtype=bool) -> pd.DataFrame:
    """A trained sweep's rows: trainable where depth < 3 + 4 * sigma_w (seed-dependent)."""
    rows = synthetic_rows()
    rows = rows[(rows["init"] == "gaussian") & (rows["activation"] == "relu")]
    rows = pd.concat([rows.assign(learning_rate=lr) for lr in (0.01, 0.1)], ignore_index=True)
    rows["trainable"] = (rows["depth"] < 3 + 4 * rows["sigma_w"] - rows["seed"]).astype(
        trainable_dtype
    )
    rows["overflow_layer"] = np.where(rows["sigma_w"] > 1.2, 3.0 * rows["depth"], np.nan)
    return rows


def test_boolean_and_integer_metrics():
    rows = trained_rows()
    assert "trainable" in plot.metric_columns(rows) and "overflow_layer" in plot.metric_columns(
        rows
    )
    fig = plot.phase_diagram(rows, metric="trainable", facet=("learning_rate",))
    meshes = _meshes(fig)
    assert len(meshes) == 2 and meshes[0].get_cmap().name == plot.SEQUENTIAL_CMAP
    assert (meshes[0].norm.vmin, meshes[0].norm.vmax) == (0.0, 1.0)
    values = np.ma.asarray(meshes[0].get_array()).reshape(4, 4)
    # depth 4 at sigma_w 0.5: trainable for seeds 0 (4 < 5) only -> a third of the seeds.
    np.testing.assert_allclose(values[2, 0], 1 / 3)
    assert set(np.unique(values.compressed())) <= {0.0, 1 / 3, 2 / 3, 1.0}
    assert "fraction True over 3 seeds" in fig._suptitle.get_text().replace("\n", " ")
    bar = [m.colorbar for m in meshes if m.colorbar][0]
    assert bar.ax.get_ylabel() == "trainable (fraction of seeds)"

    fig = plot.phase_diagram(rows, metric="overflow_layer", facet=("learning_rate",))
    mesh = [m for m in _meshes(fig) if m.colorbar][0]
    assert mesh.get_cmap().name == plot.SEQUENTIAL_CMAP
    ticks = mesh.colorbar.get_ticks()
    assert len(ticks) and np.all(ticks == np.round(ticks))  # integer ticks
    assert "no value (NaN)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_a_metric_is_offered_only_if_it_has_values():
    rows = synthetic_rows()
    rows["trainable"] = np.nan  # an untrained sweep: sweep.load gives float NaN
    rows["underflow_layer"] = np.nan
    offered = plot.metric_columns(rows)
    assert "trainable" not in offered and "underflow_layer" not in offered
    with pytest.raises(
        plot.PlotError,
        match=r"metric 'trainable' is null in every selected row \(the sweep has no \[train\] "
        r"table, so nothing was trained\); accepted: log10_backward_gain",
    ):
        plot.phase_diagram(rows, metric="trainable")
    with pytest.raises(plot.PlotError, match="no selected config underflowed"):
        plot.phase_diagram(rows, metric="underflow_layer")
    # Null in the selection only: the check is on the selected rows.
    some = trained_rows(float)
    some.loc[some["learning_rate"] == 0.1, "trainable"] = np.nan
    with pytest.raises(plot.PlotError, match="'trainable' is null in every selected row"):
        plot.phase_diagram(some, metric="trainable", facet=(), where={"learning_rate": 0.1})


def test_cli_plots_trainable_by_learning_rate(tmp_path, monkeypatch, capsys):
    """The README's command: sweep plot DIR --metric trainable --facet learning_rate."""
    monkeypatch.setattr(api, "load", lambda out, layers=False: trained_rows())
    argv = ["plot", str(tmp_path), "--metric", "trainable", "--facet", "learning_rate"]
    assert cli.main(argv) == 0
    assert (tmp_path / "phase-trainable.png").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out.strip().endswith("phase-trainable.png")


def overlay_rows() -> pd.DataFrame:
    """synthetic_rows whose orthogonal boundary sits at sigma_w = 1.5, gaussian at 1."""
    rows = synthetic_rows()
    boundary = np.where(rows["init"] == "orthogonal", 1.5, 1.0)
    rows["log10_backward_gain"] = rows["depth"] * np.log10(rows["sigma_w"] / boundary)
    return rows


def test_overlay_draws_each_values_boundary_in_one_panel():
    fig = plot.phase_diagram(overlay_rows(), overlay="init")  # default facet leaves init out
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert sorted(ax.get_title() for ax in panels) == ["activation = linear", "activation = relu"]
    assert not _meshes(fig)  # no heatmap
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["init = gaussian", "init = orthogonal"]
    for ax in panels:
        contours = [c for ax_c in [ax] for c in ax_c.collections if hasattr(c, "allsegs")]
        assert len(contours) == 2
        xs = [np.concatenate(c.allsegs[0])[:, 0] for c in contours]
        np.testing.assert_allclose(xs[0], 1.0, atol=1e-9)
        np.testing.assert_allclose(xs[1], 1.5, atol=1e-9)
        assert contours[0].get_edgecolor()[0][:3] != pytest.approx(
            contours[1].get_edgecolor()[0][:3]
        )
    # The mean-field lines do not depend on the init here, so they are drawn too.
    assert "theory: critical σ_w (χ₁ = 1)" in legend
    assert fig._suptitle.get_text().startswith("measured boundaries (backward gain = 0) by init")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"overlay": "init", "facet": ("init",)}, "cannot both overlay and facet 'init'"),
        ({"overlay": "sigma_w"}, "cannot overlay 'sigma_w': it is plotted"),
        ({"overlay": "sigma_w2"}, "cannot overlay 'sigma_w2': it is plotted"),
        (
            {"overlay": "init", "where": {"init": "gaussian"}},
            r"--overlay init: the selection leaves one value \(gaussian\)",
        ),
        ({"overlay": "init", "agg": "std"}, "the 0 contour of a log10_\\* metric"),
        ({"overlay": "colour"}, "unknown overlay axis 'colour'"),
    ],
    ids=["faceted", "plotted", "plotted-square", "fixed", "spread", "unknown"],
)
def test_overlay_refusals(kwargs, message):
    with pytest.raises(plot.PlotError, match=message):
        plot.phase_diagram(overlay_rows(), **kwargs)


def test_default_file_names_encode_the_selection(tiny, capsys):
    name = plot.default_filename(
        "phase", "log10_backward_gain", {"width": ["64"], "init": ["gaussian"]}
    )
    assert name == "phase-log10_backward_gain-init=gaussian-width=64.png"
    assert (
        plot.default_filename("phase", "m", {"sigma_w": ["0.5", "1.5"]}, agg="std", overlay="init")
        == "phase-m-std-by-init-sigma_w=0.5,1.5.png"
    )
    assert plot.default_filename("layers", where={"init": ["a/b c"]}) == "layers-init=a_b_c.png"
    long = plot.default_filename("phase", "m", {"sigma_w": [str(i) for i in range(100)]})
    assert len(long) <= 204 and long.endswith(".png")
    out_dir, _ = tiny
    written = []
    for activation in ("relu", "tanh"):
        argv = ["plot", out_dir, "--facet", "", "--where", f"activation={activation}"]
        assert cli.main(argv) == 0
        written.append(capsys.readouterr().out.strip().removeprefix("sweep: wrote "))
    assert [os.path.basename(p) for p in written] == [
        "phase-log10_backward_gain-activation=relu.png",
        "phase-log10_backward_gain-activation=tanh.png",
    ]
    assert all(os.path.exists(p) for p in written)


def test_where_matches_numbers_to_the_digits_typed():
    rows = synthetic_rows()
    values = {0.5: 1.3228756555, 1.0: 1.35, 1.5: 1.4142135624, 2.0: 2.0}
    rows["sigma_w"] = rows["sigma_w"].map(values)
    picked = plot.select(rows, {"sigma_w": "1.32288"})  # as messages print it
    assert set(picked["sigma_w"]) == {1.3228756555}
    assert set(plot.select(rows, {"sigma_w": "1.3"})["sigma_w"]) == {1.3228756555}
    assert set(plot.select(rows, {"sigma_w": 1.41421})["sigma_w"]) == {1.4142135624}
    assert set(plot.select(rows, {"sigma_w": "2"})["sigma_w"]) == {2.0}  # exact wins
    with pytest.raises(
        plot.PlotError,
        match=r"--where sigma_w=1.4 matches 2 values of sigma_w to the 2 significant digits "
        r"given \(1.35, 1.4142135624\); give more digits",
    ):
        plot.select(rows, {"sigma_w": "1.4"})
    with pytest.raises(
        plot.PlotError,
        match=r"--where sigma_w=1.33 selects no rows; sigma_w has 1.32288, 1.35, 1.41421, 2; "
        r"the nearest is 1.3228756555$",
    ):
        plot.select(rows, {"sigma_w": "1.33"})
    # Every value an error message lists selects exactly that value.
    with pytest.raises(plot.PlotError) as listed:
        plot.select(rows, {"sigma_w": "7"})
    printed = str(listed.value).split("sigma_w has ")[1].split(";")[0].split(", ")
    for text, stored in zip(printed, sorted(values.values())):
        assert set(plot.select(rows, {"sigma_w": text})["sigma_w"]) == {stored}


def test_square_axes_are_the_same_axes_as_sigma_w_and_sigma_b():
    rows = synthetic_rows()  # no sigma_w2 / sigma_b2 columns: derived, as for older results
    assert "sigma_w2" not in rows.columns
    squared = plot.with_square_axes(rows)
    np.testing.assert_array_equal(squared["sigma_w2"], rows["sigma_w"] ** 2)
    assert plot.with_square_axes(squared) is squared
    assert plot.with_square_axes(pd.DataFrame({"sigma_w": [1.3228756555]}))["sigma_w2"][0] == 1.75
    assert set(plot.select(rows, {"sigma_w2": "2.25"})["sigma_w"]) == {1.5}

    relu = rows[rows["activation"] == "relu"]
    fig = plot.phase_diagram(relu, x="sigma_w2", facet=("init",))  # sigma_w is not "unplotted"
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert panels[0].get_xlabel() == "σ_w² (weight variance × fan_in)"
    line = [ln for ln in panels[0].get_lines() if ln.get_label().startswith("theory: critical")]
    np.testing.assert_allclose(line[0].get_xdata(), 2.0, rtol=1e-12)  # chi1 = sigma_w²/2
    assert "σ_w" not in fig._suptitle.get_text().split("(")[1]
    # Fixing sigma_w2 fixes sigma_w: a phase diagram over the other axes needs nothing else.
    fig = plot.phase_diagram(relu, x="depth", y="init", facet=(), where={"sigma_w2": 1})
    assert "σ_w² = 1" in fig._suptitle.get_text() and "σ_w =" not in fig._suptitle.get_text()
    for kwargs, message in [
        ({"x": "sigma_w", "y": "sigma_w2"}, "x and y are both 'sigma_w'"),
        ({"x": "sigma_w2", "facet": ("sigma_w",)}, "sigma_w is sigma_w2 written another way"),
        ({"facet": ("sigma_b", "sigma_b2")}, "repeats an axis"),
    ]:
        with pytest.raises(plot.PlotError, match=message):
            plot.phase_diagram(relu, **kwargs)


def test_layer_plot_colours_by_sigma_w2_when_asked(tiny):
    _, rows = tiny
    fig = plot.layer_plot(rows, where={"activation": "tanh", "sigma_w2": [0.36, 1, 2.25]})
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["0.36", "1", "2.25"]
    assert fig.legends[0].get_title().get_text() == "σ_w²"


def test_cli_plot_on_sigma_w2(tiny, tmp_path):
    out_dir, _ = tiny
    path = tmp_path / "square.png"
    argv = ["plot", out_dir, "--x", "sigma_w2", "--facet", "activation", "--out", str(path)]
    assert cli.main(argv) == 0 and path.read_bytes()[:4] == b"\x89PNG"
    argv = ["plot", out_dir, "--facet", "activation", "--where", "sigma_w2=2.25"]
    argv += ["--x", "depth", "--y", "seed", "--out", str(path)]
    assert cli.main(argv) == 0
