"""Comparison plots (issue 16.4): per table, every metric by method, seeds as points, mean ± std as bars.

One subplot per metric column; the x axis lists the table's rows (runs, then the random floor); each seed's value is
a point (jittered sideways so ties stay visible), the black bar is the mean ± sample std. With ``--paper`` a
published value is a hollow diamond at its method's position (a published method without runs gets its own
position). Degenerate values (``‡`` in the table) are drawn as crosses.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from benchbench import plotstyle
from benchbench.report.tables import Column, Row, Table


def _positions(table: Table) -> list[Row]:
    ours = [r for r in table.rows if r.kind in ("run", "floor")]
    methods = {r.method for r in ours}
    return ours + [r for r in table.rows if r.kind == "reported" and r.method not in methods]


def _seeds(table: Table, col: Column, row: Row) -> tuple[np.ndarray, np.ndarray]:
    """(values, degenerate mask) of one row's seeds in one column."""
    f = table.frame
    if f is None or row.kind == "reported":
        return np.zeros(0), np.zeros(0, bool)
    sel = f[(f["method"] == row.method) & (f["config_hash"] == row.config_hash) & (f["metric"] == col.metric)
            & (f["mode"] == col.mode) & f["value"].notna()]
    if "sig" in sel and col.sig:
        sel = sel[sel["sig"] == col.sig]
    return sel["value"].to_numpy(float), (sel["degenerate"] != "").to_numpy()


def comparison_figure(table: Table) -> Figure:
    """The figure (not yet saved): one axis per metric, labelled, with the table's title."""
    cols = table.columns
    rows = _positions(table)
    ncols = max(1, min(4, len(cols)))
    nrows = max(1, math.ceil(len(cols) / ncols))
    tall = max((textwrap.fill(r.label, 18).count("\n") + 1 for r in rows), default=1)  # room for wrapped labels
    fig = plotstyle.figure(max(3.0, 2.3 * ncols), 0.6 + (2.4 + 0.25 * tall) * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    rng = np.random.default_rng(0)
    for ax, col in zip(axes, cols):
        for x, row in enumerate(rows):
            values, bad = _seeds(table, col, row)
            color = "0.55" if row.kind != "run" else f"C{x % 8}"
            if len(values):
                jitter = x + rng.uniform(-0.12, 0.12, len(values))
                ax.scatter(jitter[~bad], values[~bad], s=14, color=color, alpha=0.85, zorder=3, linewidths=0)
                ax.scatter(jitter[bad], values[bad], s=18, color=color, marker="x", zorder=3)
                std = values.std(ddof=1) if len(values) > 1 else 0.0
                ax.errorbar(x, values.mean(), yerr=std, fmt="_", color="black", markersize=14, capsize=3, zorder=4)
            pub = next((r for r in table.rows if r.kind == "reported" and r.method == row.method), None)
            if pub is not None and col in pub.cells:
                ax.scatter([x], [pub.cells[col].mean], marker="D", s=28, facecolors="none", edgecolors="black",
                           zorder=5, label="published")
        if not ax.collections and not ax.lines:
            why = table.missing.get(col.metric, "")
            ax.text(0.5, 0.5, "not computed" + (f":\n{why[:60]}…" if len(why) > 60 else f":\n{why}" if why else ""),
                    transform=ax.transAxes, ha="center", va="center", wrap=True, color="0.4", fontsize=6)
            ax.set_yticks([])
        arrow = {True: " (↑ better)", False: " (↓ better)", None: ""}[col.higher_is_better]
        ax.set_title(table.column_title(col))
        ax.set_ylabel(f"{col.label}{arrow}")
        ax.set_xticks(range(len(rows)), [textwrap.fill(r.label, 18) for r in rows], rotation=35, ha="right")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_xlabel("method")
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles[:1], labels[:1], loc="best")
    for ax in axes[len(cols):]:
        ax.set_axis_off()
    fig.suptitle(f"{table.title()}: points are seeds, bars mean ± std")
    return fig


def write_comparison(table: Table, folder: Path) -> list[Path]:
    """Save the comparison figure of ``table`` as ``folder/<key>.png`` and ``.pdf``."""
    return plotstyle.save(comparison_figure(table), Path(folder) / table.key)
