"""``benchbench report --html``: one static page per results folder (issue 16.3).

``out/report.html`` opens from disk (no server; every image is a path relative to the page): the tables (click a
header to sort; reference rows stay italic), each table's comparison plot (the per-seed values behind every
mean ± std), a card per run group with the figures of its lowest complete seed, provenance per run (config, git
revision, library versions, device, timing, and the protocol and deviation notes a record carries), and the
incomplete, failed or corrupt runs. Rendered with jinja2 (``templates/report.html.j2``); a few lines of plain
JavaScript sort the tables and report images that did not load.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from benchbench import store
from benchbench.report.paper import Combined
from benchbench.report.tables import Column, Row, Table, cell_text

FIGURE_NAMES = {"reconstructions": "reconstructions", "traversals": "traversals", "samples": "samples",
                "pmg": "posterior mean gap"}
PROVENANCE_KEYS = ("protocol", "protocols", "deviations", "notes")


def _cell(table: Table, col: Column, row: Row) -> dict[str, Any]:
    cell = row.cells.get(col)
    rank = cell.rank if cell is not None and row.kind == "run" else 0
    value = cell.mean if cell is not None else math.nan
    return {"text": cell_text(table, col, cell, " ± ", "n/a"), "sort": "" if math.isnan(value) else repr(value),
            "rank": rank}


def _grid(table: Table) -> dict[str, Any]:
    arrows = {True: " ↑", False: " ↓", None: ""}
    heads = ["Method", "n"] + [table.column_title(c) + (f" ({table.unit(c)})" if table.unit(c) else "")
                               + arrows[c.higher_is_better] for c in table.columns]
    rows = [{"label": r.label, "kind": r.kind, "cells": [{"text": str(r.n) if r.kind != "reported" else "n/a",
                                                          "sort": str(r.n), "rank": 0}]
             + [_cell(table, c, r) for c in table.columns]} for r in table.rows]
    return {"heads": heads, "rows": rows}


def _combined_grid(comb: Combined) -> dict[str, Any]:
    heads = ["Method"] + [f"{comb.dataset_label(d)} {c.label}" for d, cols in comb.groups for c in cols]
    rows = []
    for row in comb.rows:
        cells = []
        for dataset, cols in comb.groups:
            source = comb.source_row(dataset, row)
            cells += [_cell(comb.tables[dataset], c, source) if source else {"text": "n/a", "sort": "", "rank": 0}
                      for c in cols]
        rows.append({"label": row.label, "kind": row.kind, "cells": cells})
    return {"heads": heads, "rows": rows}


def _provenance(out: Path, run_dir: str) -> dict[str, Any]:
    folder = out / run_dir
    result = store.read_json(folder / "result.json") or {}
    config = store.read_json(folder / "config.json") or {}
    prov = result.get("provenance") or config.get("provenance") or {}
    git = prov.get("git") or {}
    notes = {k: result[k] for k in PROVENANCE_KEYS if result.get(k)}
    for name, m in sorted((result.get("metrics") or {}).items()):
        for k in PROVENANCE_KEYS:
            if isinstance(m, dict) and m.get(k):
                notes[f"{name} {k}"] = m[k]
    return {
        "run_dir": run_dir, "seed": result.get("seed", config.get("seed")),
        "revision": (git.get("commit") or "unknown")[:12] + (" (uncommitted changes)" if git.get("dirty") else ""),
        "versions": ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items() if v),
        "platform": prov.get("platform", ""), "device": result.get("device", ""),
        "timing": ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in (result.get("timing") or {}).items()),
        "config": json.dumps(config.get("config", config), indent=1, sort_keys=True, default=str),
        "notes": {k: v if isinstance(v, str) else json.dumps(v, indent=1, default=str) for k, v in notes.items()},
    }


def _cards(out: Path, table: Table) -> list[dict[str, Any]]:
    cards = []
    frame = table.frame
    for row in table.rows:
        if row.kind not in ("run", "floor") or frame is None:
            continue
        mine = frame[(frame["method"] == row.method) & (frame["config_hash"] == row.config_hash)]
        dirs = sorted(set(mine["run_dir"]), key=lambda d: (len(d), d))
        if not dirs:
            continue
        shown = dirs[0]
        result = store.read_json(out / shown / "result.json") or {}
        names = [n for n in result.get("figures") or [] if str(n).endswith(".png")]
        if not names:  # older records: whatever figures the folder holds
            names = sorted(p.name for p in (out / shown).glob("*.png"))
        figures = [{"src": f"{shown}/{n}", "caption": FIGURE_NAMES.get(Path(n).stem, Path(n).stem)}
                   for n in names if (out / shown / n).is_file()]
        cards.append({"label": row.label, "kind": row.kind, "seed_dir": shown, "n": row.n, "figures": figures,
                      "runs": [_provenance(out, d) for d in dirs]})
    return cards


def render_html(out: Path, tables: list[Table], combined: list[Combined], unfinished: list[str],
                paper: bool = False) -> str:
    """The page's HTML; image paths are relative to ``out`` (where the page is written)."""
    import jinja2

    from benchbench.report.latex import caption

    env = jinja2.Environment(loader=jinja2.PackageLoader("benchbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    sections = []
    for t in tables:
        plot = f"tables/figures/{t.key}.png"
        sections.append({"key": t.key, "title": t.title(), "grid": _grid(t), "caption": caption(t), "notes": t.notes,
                         "missing": sorted(t.missing.items()), "plot": plot if (out / plot).is_file() else None,
                         "cards": _cards(out, t)})
    combos = [{"key": c.key, "title": c.title + " (DisDiff Table 1 layout)", "grid": _combined_grid(c),
               "caption": c.caption(), "notes": c.notes} for c in combined]
    return env.get_template("report.html.j2").render(
        out=str(out), generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sections=sections, combined=combos, unfinished=unfinished, paper=paper)


def write_html(out: Path, tables: list[Table], combined: list[Combined], unfinished: list[str],
               paper: bool = False) -> Path:
    """Write ``out/report.html`` (atomically; the comparison plots are drawn by the caller); returns its path."""
    path = Path(out) / "report.html"
    store.atomic_write_bytes(path, render_html(Path(out), tables, combined, unfinished, paper).encode())
    return path
