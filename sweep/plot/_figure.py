"""Figures and image files: a headless Figure on the Agg canvas, and saving it by extension.

Figures are built as ``matplotlib.figure.Figure`` objects, never through pyplot's global
state, so they work headless, in scripts and in notebooks. matplotlib is imported here
only when a figure is made.
"""

from __future__ import annotations

import os

from ._select import PlotError

FORMATS = (".png", ".svg", ".pdf")


def _new_figure(width: float, height: float):
    """A constrained-layout Figure of the given size in inches, on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def output_format(path: str) -> str:
    """The image format of an output path (png, svg or pdf).

    Args:
        path: the file to write, e.g. "results/phase.png".

    Returns:
        The format name without the dot, e.g. "png".

    Raises:
        PlotError: any other extension.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise PlotError(
            f"--out {path}: unknown image format {ext or '(none)'!r}; "
            f"accepted: {', '.join(FORMATS)}"
        )
    return ext[1:]


def save(fig, path: str, dpi: int = 150) -> str:
    """Writes a figure as PNG, SVG or PDF (by extension), creating the folder.

    Args:
        fig: a matplotlib Figure, e.g. from phase_diagram or layer_plot.
        path: the file to write; its extension picks the format.
        dpi: resolution of raster output.

    Returns:
        ``path``.

    Raises:
        PlotError: an extension other than .png, .svg or .pdf.
    """
    fmt = output_format(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=dpi)
    return path
