"""Figures and image files: a headless Figure on the Agg canvas, fitted so no text is cut
off, saved by extension under a name that says what it shows.

Figures are built as ``matplotlib.figure.Figure`` objects, never through pyplot's global
state, so they work headless, in scripts and in notebooks. matplotlib is imported here
only when a figure is made.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping

from ._select import PlotError
from ._style import _wrap

FORMATS = (".png", ".svg", ".pdf")


def _new_figure(width: float, height: float):
    """A constrained-layout Figure of the given size in inches, on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _drawn_texts(fig, renderer) -> list:
    """The figure's text artists that a draw shows: visible, non-empty, in visible axes,
    and of tick labels only those of the ticks drawn (not the locator's spares)."""
    from matplotlib.text import Text

    spare = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            drawn = {id(t) for t in axis._update_ticks()}
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if id(tick) not in drawn:
                    spare.update((id(tick.label1), id(tick.label2)))
    texts = []
    for text in fig.findobj(Text):
        if id(text) in spare or not text.get_visible() or not text.get_text().strip():
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        texts.append(text)
    return texts


def _outside(box, frame, slack: float = 0.5) -> bool:
    return (
        box.x0 < frame.x0 - slack
        or box.y0 < frame.y0 - slack
        or box.x1 > frame.x1 + slack
        or box.y1 > frame.y1 + slack
    )


def figure_legend(fig, handles: list, ncols: int, **kwargs):
    """A figure legend that fit_texts can rebuild with fewer columns (``kwargs`` as for
    ``Figure.legend``: loc, fontsize, ...)."""
    legend = fig.legend(handles=handles, ncols=ncols, **kwargs)
    legend._sweep_rebuild = (handles, kwargs)
    return legend


def _narrow(fig, legend, renderer, frame) -> bool:
    """Rebuilds a figure legend wider than the figure with one column fewer; whether it
    did (only legends made by figure_legend, with more than one column)."""
    rebuild = getattr(legend, "_sweep_rebuild", None)
    if rebuild is None or legend._ncols <= 1:
        return False
    if legend.get_window_extent(renderer).width <= frame.width:
        return False
    handles, kwargs = rebuild
    ncols = legend._ncols - 1
    legend.remove()
    figure_legend(fig, handles, ncols, **kwargs)
    return True


def _wrap_to_fit(text, renderer, frame) -> bool:
    """Breaks a text that sticks out of the figure into shorter lines; whether it did."""
    box = text.get_window_extent(renderer)
    vertical = text.get_rotation() % 180 == 90
    extent, room = (box.height, frame.height) if vertical else (box.width, frame.width)
    line = max(len(part) for part in text.get_text().split("\n"))
    width = int(line * min(0.9 * room / max(extent, 1.0), 0.75))
    if " " not in text.get_text().strip() or width < 8:
        return False
    wrapped = _wrap(text.get_text().replace("\n", " "), width)
    if wrapped == text.get_text():
        return False
    text.set_text(wrapped)
    return True


def _grow(fig, boxes, frame) -> None:
    """Enlarges the figure by twice what ``boxes`` stick out on each axis (layouts centre)."""
    out_x = max(0.0, frame.x0 - min(b.x0 for b in boxes)) + max(
        0.0, max(b.x1 for b in boxes) - frame.x1
    )
    out_y = max(0.0, frame.y0 - min(b.y0 for b in boxes)) + max(
        0.0, max(b.y1 for b in boxes) - frame.y1
    )
    w, h = fig.get_size_inches()
    fig.set_size_inches(w + 2 * out_x / fig.dpi + 0.1, h + 2 * out_y / fig.dpi + 0.1)


def fit_texts(fig, rounds: int = 8):
    """Makes every title, label, tick label and legend lie inside the figure.

    Constrained layout places the axes, but it cannot shorten a title or a legend wider
    than the figure, nor a colour-bar label longer than its bar. This draws the figure,
    then gives over-wide figure legends fewer columns, breaks texts that stick out into
    shorter lines, and as a last resort enlarges the figure, until nothing sticks out.

    Args:
        fig: a Figure with constrained layout, e.g. from phase_diagram.
        rounds: the most draw-and-fix passes.

    Returns:
        ``fig``.
    """
    for _ in range(rounds):
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        frame = fig.bbox
        if any([_narrow(fig, legend, renderer, frame) for legend in list(fig.legends)]):
            continue
        over = [
            t for t in _drawn_texts(fig, renderer) if _outside(t.get_window_extent(renderer), frame)
        ]
        if not over:
            return fig
        if not any([_wrap_to_fit(t, renderer, frame) for t in over]):
            _grow(fig, [t.get_window_extent(renderer) for t in over], frame)
    return fig


def default_filename(
    kind: str,
    metric: str | None = None,
    where: Mapping[str, object] | None = None,
    agg: str = "median",
    overlay: str | None = None,
    ext: str = ".png",
) -> str:
    """The file name ``sweep plot`` writes when not given ``--out``, naming the selection.

    ``phase-<metric>[-<agg>][-by-<overlay>][-<key>=<values>...]`` or ``layers[...]``:
    the aggregation when not the median, the overlay axis, and the ``where`` entries by
    sorted key with their values joined by ","; characters other than letters, digits and
    ``._,=+-`` become "_", and a name over 200 characters is cut and ends in a digest.

    Args:
        kind: "phase" or "layers".
        metric: the phase diagram's metric, e.g. "log10_backward_gain".
        where: the ``where`` filters, e.g. {"width": ["64"], "init": ["gaussian"]}.
        agg: the seed aggregation.
        overlay: the overlay axis, or None.
        ext: the extension, with its dot.

    Returns:
        e.g. "phase-log10_backward_gain-init=gaussian-width=64.png".
    """
    from ._where import _typed_text

    parts = [kind if kind == "layers" else f"phase-{metric}"]
    if agg != "median":
        parts.append(agg)
    if overlay:
        parts.append(f"by-{overlay}")
    for key in sorted(where or {}):
        values = where[key]
        values = values if isinstance(values, (list, tuple)) else [values]
        parts.append(f"{key}={','.join(_typed_text(v) for v in values)}")
    name = re.sub(r"[^A-Za-z0-9._,=+-]", "_", "-".join(parts))
    if len(name) > 200:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = f"{name[:189]}-{digest}"
    return name + ext


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
