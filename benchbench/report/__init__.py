"""``benchbench report``: completed run records -> pandas -> LaTeX / markdown / csv tables, plots and an HTML page.

The report reads only :mod:`benchbench.store`; it never trains or scores. Modules, one job each:

* :mod:`~benchbench.report.frame`: records -> one long frame; run labels (``β-VAE β=8``), filters.
* :mod:`~benchbench.report.tables`: aggregation into ranked tables, one per (dataset, preset, metric settings);
  the rules are in its docstring. The ``random`` floor and published numbers are reference rows, never ranked.
* :mod:`~benchbench.report.latex`, :mod:`~benchbench.report.text`: LaTeX (fits ``\\linewidth``), markdown, csv.
* :mod:`~benchbench.report.paper`: DisDiff's Table 1 layout over Cars3D / Shapes3D / MPI3D.
* :mod:`~benchbench.report.plots`: comparison plots (seeds as points, mean ± std bars, published markers).
* :mod:`~benchbench.report.html`: one static page per results folder.

Written under ``out/tables/`` (each atomically): ``<dataset>-<preset>.tex|.md`` per table (``-2``, ``-3`` for further
settings partitions), ``<key>-seeds.csv`` (the per-seed values), ``figures/<key>.png|.pdf`` (the comparison plot the
LaTeX refers to) and ``table1-[synth-]<preset>.tex|.md`` (the combined layout); ``out/report.html`` with ``--html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbench import store
from benchbench.errors import BenchbenchError
from benchbench.report.frame import GROUP, incomplete_and_failed, load_frame, select
from benchbench.report.latex import render_combined_latex, render_latex
from benchbench.report.notes import deviation_notes
from benchbench.report.paper import combined_tables
from benchbench.report.tables import Table, build_tables
from benchbench.report.text import render_combined_markdown, render_csv, render_markdown, render_seeds_csv

__all__ = ["FORMATS", "GROUP", "Report", "build_report", "build_tables", "incomplete_and_failed", "load_frame",
           "make_report", "select"]

FORMATS = ("latex", "markdown", "csv")


@dataclass
class Report:
    """What :func:`make_report` produced: the text to print, the files written, the tables."""

    text: str
    written: list[Path] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def _unfinished(out: Path, filters: dict[str, Any]) -> list[str]:
    """:func:`incomplete_and_failed`, restricted to runs matching the dataset/method/preset filters."""
    from benchbench.report.frame import _names

    wanted = {k: set(_names(v)) for k, v in filters.items() if _names(v)}
    lines = []
    for line in incomplete_and_failed(out):
        parts = line.split(": ", 1)[1].split(":", 1)[0].split("/")  # runs/<dataset>/<method>/<preset>-<hash>/seed
        ident = {"dataset": parts[1], "method": parts[2], "preset": parts[3].rpartition("-")[0]} \
            if len(parts) >= 4 else {}
        if all(ident.get(k) in v for k, v in wanted.items()):
            lines.append(line)
    return lines


def make_report(out: Path, fmt: str = "latex", write: bool = True, paper: bool = False, *, presets: Any = None,
                methods: Any = None, datasets: Any = None, metrics: Any = None, figures: bool = True,
                html: bool = False) -> Report:
    """Aggregate the completed runs below ``out`` into tables (and files).

    Args:
        out: the results folder (holding ``runs/``).
        fmt: ``latex``, ``markdown`` or ``csv``.
        write: for latex/markdown, write the files listed in the module docstring (csv writes none).
        paper: add the published numbers (:mod:`benchbench.published`) to real-data tables, marked as reported,
            with our-minus-published rows; csv gets them as ``preset = reported`` rows.
        presets, methods, datasets, metrics: keep only these (comma-separated names or lists; None keeps all).
        figures: with ``write``, also write the comparison plots (and refer to them from the LaTeX).
        html: also write ``out/report.html`` (:mod:`benchbench.report.html`), whatever ``fmt`` and ``write``.
    Returns:
        The :class:`Report`; its text holds every table, then (latex/markdown only) the incomplete and failed runs,
        as ``%`` comments in LaTeX. Nothing is written when any check fails.
    Raises:
        BenchbenchError: unknown ``fmt``, no complete run below ``out``, a filter naming nothing there, or
        inconsistent settings.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise BenchbenchError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    df = load_frame(out)
    if df.empty:
        raise BenchbenchError(
            f"no complete runs found under {out / 'runs'}; run e.g. `benchbench run --method betavae "
            f"--dataset shapes3d-synth --preset quick --out {out}` first")
    df = select(df, presets, methods, datasets, metrics)
    filters = {"preset": presets, "method": methods, "dataset": datasets}
    tables = build_tables(df, paper)
    for t in tables:  # each run group's recorded deviations from the paper setting, as table notes
        t.notes += deviation_notes(out, t)
    combined = combined_tables(tables, paper)
    files: dict[Path, bytes] = {}
    if fmt == "csv":
        text = render_csv(df, paper)
    else:
        tdir = out / "tables"
        figure = (lambda t: t.key) if write and figures else (lambda t: None)
        if fmt == "latex":
            parts = [render_latex(t, figure(t)) for t in tables] + [render_combined_latex(c) for c in combined]
        else:
            parts = [render_markdown(t, f"figures/{t.key}.png" if figure(t) else None) for t in tables]
            parts += [render_combined_markdown(c) for c in combined]
        suffix = ".tex" if fmt == "latex" else ".md"
        for key, part in zip([t.key for t in tables] + [c.key for c in combined], parts):
            files[tdir / f"{key}{suffix}"] = part.encode()
        for t in tables:
            files[tdir / f"{t.key}-seeds.csv"] = render_seeds_csv(t).encode()
        prefix = "% " if fmt == "latex" else ""
        unfinished = [prefix + line for line in _unfinished(out, filters)]
        text = "\n".join(parts) + ("\n" + "\n".join(unfinished) + "\n" if unfinished else "")
    written: list[Path] = []
    try:
        if write and fmt != "csv":
            for path, data in files.items():
                store.atomic_write_bytes(path, data)
                written.append(path)
    except OSError as exc:  # a read-only or full results folder: the tables are still printed
        warning = (f"warning: could not write the tables to {out / 'tables'} "
                   f"({exc.strerror or type(exc).__name__}); printed only")
        return Report(text + ("% " if fmt == "latex" else "") + warning + "\n", written, tables)
    if (write and figures and fmt != "csv") or html:
        from benchbench.report.plots import write_comparison

        for t in tables:
            written += write_comparison(t, out / "tables" / "figures")
    if html:
        from benchbench.report.html import write_html

        written.append(write_html(out, tables, combined, _unfinished(out, filters), paper=paper))
    return Report(text, written, tables)


def build_report(out: Path, fmt: str = "latex", write: bool = True, paper: bool = False, **kwargs: Any) -> str:
    """The text of :func:`make_report` (same arguments)."""
    return make_report(out, fmt, write, paper, **kwargs).text
