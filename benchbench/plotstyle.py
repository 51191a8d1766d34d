"""One style for every figure benchbench writes (run figures, PMG curves, report plots), saved as PNG and PDF.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, no GUI backend), so builders can
return the figure for tests to inspect its labels before :func:`save` writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

STYLE = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "figure.titlesize": 10,
    "legend.fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": False, "savefig.dpi": 150, "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05, "image.interpolation": "nearest",
    "axes.prop_cycle": matplotlib.cycler(color=["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                                                "#F0E442", "#000000"]),
}
# Marks the input image in traversal grids.
HIGHLIGHT = "#D55E00"


@contextmanager
def style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def figure(width: float, height: float) -> Figure:
    """A new figure (inches) in the house style."""
    with style():
        return Figure(figsize=(width, height), layout="constrained")


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (vector); returns both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    with style():
        for path in paths:
            fig.savefig(path)
    return paths
