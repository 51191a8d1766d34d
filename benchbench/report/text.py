"""Markdown tables, the long-form summary csv and the per-seed csv written beside the tables.

* markdown: a GitHub table per :class:`~benchbench.report.tables.Table` with ``**best**`` and ``<u>second</u>``;
  reference rows (the random floor, published numbers) in italics, never ranked.
* csv (summary): ``dataset,method,preset,metric,mean,std,n`` with 6 decimals; ``preset`` becomes ``preset-hash``
  only where a method has several groups on a dataset; ``metric`` carries the mode, e.g. ``dci (exact)``.
* per-seed csv (issue 17.1): ``dataset,preset,method,label,config_hash,seed,metric,mode,value,degenerate,run``, the
  numbers behind each mean ± std, one file per table.
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from benchbench import published
from benchbench.report.frame import GROUP, display_name
from benchbench.report.paper import Combined
from benchbench.report.tables import CANONICAL, Row, Table, cell_text, with_sig

_ARROWS = {True: " ↑", False: " ↓", None: ""}


def _esc(text: str) -> str:
    return text.replace("|", r"\|")


def _md_cell(table: Table, col, row: Row) -> str:
    cell = row.cells.get(col)
    text = cell_text(table, col, cell, " ± ", "n/a")
    if cell is None:
        return text
    if row.kind in ("reported", "floor") or cell.rank:
        text = text.replace("*", r"\*")  # a protocol mark inside emphasis stays literal
    if row.kind in ("reported", "floor"):
        return f"*{text}*"
    return f"**{text}**" if row.kind == "run" and cell.rank == 1 else \
        f"<u>{text}</u>" if row.kind == "run" and cell.rank == 2 else text


def _md_label(row: Row) -> str:
    return f"*{_esc(row.label)}*" if row.kind in ("reported", "floor") else _esc(row.label)


def render_markdown(table: Table, figure: str | None = None) -> str:
    """A GitHub table under a ``## <dataset>, <preset> preset`` heading; ``figure`` is the comparison plot's path
    relative to the tables folder."""
    from benchbench.report.latex import caption

    head = ["Method", "n"] + [_esc(table.column_title(c)) + (f" ({table.unit(c)})" if table.unit(c) else "")
                              + _ARROWS[c.higher_is_better] for c in table.columns]
    lines = [f"## {table.title()}", "", "| " + " | ".join(head) + " |",
             "|" + "|".join([":--", "--:"] + ["--:"] * len(table.columns)) + "|"]
    for row in table.rows:
        n = str(row.n) if row.kind != "reported" else "n/a"
        lines.append("| " + " | ".join([_md_label(row), n, *[_md_cell(table, c, row) for c in table.columns]]) + " |")
    text = caption(table).replace("bold", "**bold**").replace("underlined", "<u>underlined</u>")
    lines += ["", text]
    if figure:
        lines += ["", f"![{table.title()}: per-seed values]({figure})"]
    lines += [f"- {note}" for note in table.notes]
    lines += [f"- {metric} missing: {reason}" for metric, reason in sorted(table.missing.items())]
    return "\n".join(lines) + "\n"


def render_combined_markdown(comb: Combined) -> str:
    head, align = ["Method"], [":--"]
    for dataset, cols in comb.groups:
        head += [f"{comb.dataset_label(dataset)} {c.label}{_ARROWS[c.higher_is_better]}" for c in cols]
        align += ["--:"] * len(cols)
    lines = [f"## {comb.title} (DisDiff Table 1 layout)", "", "| " + " | ".join(head) + " |",
             "|" + "|".join(align) + "|"]
    for row in comb.rows:
        cells = []
        for dataset, cols in comb.groups:
            source = comb.source_row(dataset, row)
            cells += [_md_cell(comb.tables[dataset], c, source) if source else "n/a" for c in cols]
        lines.append("| " + " | ".join([_md_label(row), *cells]) + " |")
    lines += ["", comb.caption()] + [f"- {n}" for n in comb.notes]
    return "\n".join(lines) + "\n"


def render_csv(df: pd.DataFrame, paper: bool = False) -> str:
    """Long-form ``dataset,method,preset,metric,mean,std,n`` rows; see the module docstring."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "method", "preset", "metric", "mean", "std", "n"])
    df = with_sig(df)
    valued = df[df["value"].notna()]
    if valued.empty:
        return buf.getvalue()
    several = valued.drop_duplicates(GROUP).groupby(["dataset", "method"]).size()
    stats = valued.groupby([*GROUP, "metric", "mode"])["value"].agg(["mean", "std", "count"]).reset_index()
    order = {name: i for i, name in enumerate(CANONICAL)}
    stats["_order"] = stats["metric"].map(lambda m: order.get(m, len(order)))
    for s in stats.sort_values([*GROUP, "_order", "metric", "mode"]).itertuples(index=False):
        preset = f"{s.preset}-{s.config_hash}" if several[(s.dataset, s.method)] > 1 else s.preset
        metric = f"{s.metric} ({s.mode})" if s.mode else s.metric
        std = "" if s.count < 2 else f"{s.std:.6f}"
        writer.writerow([s.dataset, s.method, preset, metric, f"{s.mean:.6f}", std, int(s.count)])
    if paper:
        real = sorted(d for d in set(valued["dataset"]) if not str(d).endswith("-synth")
                      and not (valued[valued["dataset"] == d]["source"] == "synthetic").any())
        for dataset in real:
            for r in published.for_dataset(dataset):
                std = "" if r.std is None else f"{r.std:.6f}"
                writer.writerow([dataset, r.method, "reported", r.metric, f"{r.mean:.6f}", std, ""])
    return buf.getvalue()


def render_seeds_csv(table: Table) -> str:
    """Every per-seed value behind ``table``'s cells, labelled as in the table; see the module docstring."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "preset", "method", "label", "config_hash", "seed", "metric", "mode", "value",
                     "degenerate", "run"])
    labels = {(r.method, r.config_hash): r.label for r in table.rows if r.kind in ("run", "floor")}
    frame = table.frame if table.frame is not None else pd.DataFrame()
    valued = frame[frame["value"].notna()] if len(frame) else frame
    order = {name: i for i, name in enumerate(CANONICAL)}
    for r in sorted(valued.itertuples(index=False),
                    key=lambda r: (r.method, r.config_hash, str(r.seed), order.get(r.metric, 99), r.metric)):
        label = labels.get((r.method, r.config_hash), display_name(r.method))
        writer.writerow([r.dataset, r.preset, r.method, label, r.config_hash, r.seed, r.metric, r.mode,
                         f"{r.value:.6f}", r.degenerate, r.run_dir])
    return buf.getvalue()
