"""``benchbench report``: completed run records -> pandas -> LaTeX / markdown / csv tables.

The report reads only :mod:`benchbench.store`; it never trains or scores. Rules it follows:

* One table per dataset, methods as rows, metrics as columns. Runs are averaged only when they share
  ``(dataset, method, preset, config_hash)``, i.e. differ in the seed alone. When a method has more than
  one such group on a dataset, its rows are labelled ``method (preset, hash)``; the preset is always shown
  in a Preset column.
* A cell is ``mean ± std`` over seeds with the sample standard deviation (``ddof=1``), 3 decimals. With a
  single value the ``± std`` part is omitted (and the csv ``std`` field is empty). A cell averaged over
  fewer values than the row's ``n`` (some seeds lack that metric) says so: ``0.810 ± 0.010 (n=2)``.
* A column is one metric computed with one set of settings. The settings' ``mode`` (DCI exact/fast) is
  always in the header; other settings that differ between columns of the same metric (e.g. a ``quick``
  and a ``paper`` preset with different sample sizes) are appended as ``[num_train=2000]``. So numbers
  computed with different settings are never averaged nor ranked together. A metric's own ``seed``
  setting is treated as part of the seed-to-seed variation and ignored in these comparisons. Settings
  that differ between the seeds of one group cannot come from one config and raise
  :class:`~benchbench.errors.BenchbenchError`.
* Best mean per column in bold, second underlined, by ``higher_is_better``, ranked on the means rounded to
  3 decimals with dense ranks: every cell tied for best is bold, every cell tied at the next distinct
  value is underlined. Columns with fewer than two values are not ranked.
* A metric named in a run's ``missing`` (or absent) shows as ``--`` (LaTeX) or ``n/a`` (markdown) and is
  left out of the csv; the first reason per metric is printed below the table.
* TAD's ATTRS (the number of attributes it kept, stored in its extras) is a column of its own next to TAD.
* csv: ``dataset,method,preset,metric,mean,std,n`` with 6 decimals; ``preset`` becomes ``preset-hash`` only
  where a method has several groups on a dataset; ``metric`` carries the mode, e.g. ``dci (exact)``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchbench import published, registry, store
from benchbench.errors import BenchbenchError

FORMATS = ("latex", "markdown", "csv")
CANONICAL = ("factorvae", "mig", "dci", "sap", "modularity", "betavae_score", "tad", "attrs", "fid", "pmg")
# Values a metric stores in its extras that the report shows as their own column: (metric, extra) -> (column, label).
EXTRA_COLUMNS = {("tad", "attrs"): ("attrs", "ATTRS")}
COLUMNS = ["dataset", "method", "preset", "config_hash", "seed", "metric", "value", "settings",
           "higher_is_better", "label", "mode", "source", "missing"]
GROUP = ["dataset", "method", "preset", "config_hash"]
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _identity(entry: store.RunEntry, out: Path) -> dict[str, Any]:
    """(dataset, method, preset, config_hash, seed) of a run, from its record or else from its path."""
    rel = entry.path.relative_to(Path(out) / "runs").parts  # <dataset>/<method>/<preset>-<hash>/seed<k>
    preset, _, cfg_hash = rel[2].rpartition("-")
    from_path = {"dataset": rel[0], "method": rel[1], "preset": preset, "config_hash": cfg_hash,
                 "seed": int(rel[3][4:]) if rel[3][4:].isdigit() else rel[3]}
    ident = {k: v if entry.record.get(k) is None else entry.record[k] for k, v in from_path.items()}
    return {k: v if k == "seed" else str(v) for k, v in ident.items()}


def _relpath(path: Path, out: Path) -> str:
    try:
        return path.relative_to(out).as_posix()
    except ValueError:
        return path.as_posix()


def load_frame(out: Path) -> pd.DataFrame:
    """Every metric of every complete run below ``out`` as one long frame.

    Returns:
        One row per (run, metric) with columns ``dataset, method, preset, config_hash, seed, metric, value,
        settings`` (sorted-key JSON), ``higher_is_better, label, mode`` (settings' or extras' ``mode``, or
        ""), ``source`` and ``missing`` (the reason, for a metric listed in the run's ``missing``; its
        ``value`` is then NaN). Non-finite or non-numeric values count as missing.
    """
    rows: list[dict[str, Any]] = []
    for entry in store.iter_runs(out):
        if entry.status != "complete":
            continue
        ident, rec = _identity(entry, out), entry.record
        base = {**ident, "source": str(rec.get("source", ""))}
        metrics = rec.get("metrics") or {}
        for name, m in sorted(metrics.items()):
            value = m.get("value")
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            settings = m.get("settings") or {}
            mode = settings.get("mode", (m.get("extras") or {}).get("mode", ""))
            rows.append({**base, "metric": name, "value": float(value) if ok else math.nan,
                         "settings": json.dumps(settings, sort_keys=True, default=str),
                         "higher_is_better": m.get("higher_is_better"), "label": m.get("label") or name,
                         "mode": str(mode or ""), "missing": "" if ok else "value not finite"})
            for (metric, key), (column, label) in EXTRA_COLUMNS.items():
                extra = (m.get("extras") or {}).get(key)
                if metric == name and ok and isinstance(extra, (int, float)) and not isinstance(extra, bool):
                    rows.append({**base, "metric": column, "value": float(extra),
                                 "settings": json.dumps(settings, sort_keys=True, default=str),
                                 "higher_is_better": True, "label": label, "mode": str(mode or ""), "missing": ""})
        for name, reason in sorted((rec.get("missing") or {}).items()):
            if name not in metrics:
                known = registry.metrics.get(name).meta if name in registry.metrics else {}
                rows.append({**base, "metric": name, "value": math.nan, "settings": "{}",
                             "higher_is_better": known.get("higher_is_better"), "label": known.get("label", name),
                             "mode": "", "missing": " ".join(str(reason).split())})
    return pd.DataFrame(rows, columns=COLUMNS)


def incomplete_and_failed(out: Path) -> list[str]:
    """One line per unfinished run: ``incomplete: <path>`` first, then ``corrupt: <path>: <reason>`` (a result.json
    that does not prove the run complete), then ``failed: <path>: <error>``.

    Paths are relative to ``out``, e.g. ``runs/shapes3d-synth/betavae/quick-ab12cd34/seed2``.
    """
    runs = list(store.iter_runs(out))
    lines = [f"incomplete: {_relpath(e.path, out)}" for e in runs if e.status == "incomplete"]
    lines += [f"corrupt: {_relpath(e.path, out)}: {e.record['corrupt']} (not counted; `benchbench run` redoes it)"
              for e in runs if e.status == "corrupt"]
    for e in runs:
        if e.status == "failed":
            error = " ".join(str(e.record.get("error") or "no error message recorded").split())
            lines.append(f"failed: {_relpath(e.path, out)}: {error}")
    return lines


@dataclass(frozen=True)
class Column:
    """One table column: a metric computed with one set of settings (``sig``: settings minus ``seed``)."""

    metric: str
    mode: str
    sig: str
    label: str
    higher_is_better: bool | None
    qualifier: str = ""

    def title(self) -> str:
        mode = f" ({self.mode})" if self.mode else ""
        qual = f" [{self.qualifier}]" if self.qualifier else ""
        return f"{self.label}{mode}{qual}"


@dataclass
class Cell:
    """An aggregated value; ``rank`` is 1 (bold), 2 (underlined) or 0."""

    mean: str
    std: str | None
    count: int
    row_n: int
    rank: int = 0
    mark: str = ""  # appended to the text: "*" = published under a protocol we only approximate (see the notes)


@dataclass
class Row:
    """A table row; ``kind`` is "run" (our runs, ranked), "reported" (a published number, never ranked) or
    "delta" (our mean minus the published one)."""

    label: str
    preset: str
    n: int
    cells: dict[Column, Cell] = field(default_factory=dict)
    kind: str = "run"
    method: str = ""


@dataclass
class Table:
    dataset: str
    synthetic: bool
    columns: list[Column]
    rows: list[Row]
    missing: dict[str, str]
    notes: list[str] = field(default_factory=list)


def _fmt(x: float) -> str:
    """3 decimals; values below 0.001 in magnitude (posterior mean gaps) keep 3 significant digits instead."""
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.2e}"
    s = f"{x:.3f}"
    return "0.000" if s == "-0.000" else s


def _sig(settings_json: str) -> str:
    settings = json.loads(settings_json)
    settings.pop("seed", None)
    return json.dumps(settings, sort_keys=True)


def _with_sig(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``sig``; raise when one group's seeds were scored with different settings."""
    df = df.assign(sig=df["settings"].map(_sig))
    valued = df[df["value"].notna()]
    variants = valued.groupby([*GROUP, "metric"])[["sig", "mode"]].nunique()
    bad = variants[(variants["sig"] > 1) | (variants["mode"] > 1)]
    if len(bad):
        (ds, method, preset, cfg_hash, metric) = bad.index[0]
        raise BenchbenchError(
            f"seeds of runs/{ds}/{method}/{preset}-{cfg_hash} scored {metric!r} with different settings; "
            "remove the stale result.json files and rerun `benchbench run` for them")
    return df


def _columns(df: pd.DataFrame, everything: pd.DataFrame) -> list[Column]:
    """Columns of one dataset's frame: canonical metrics first, then others alphabetically.

    ``everything`` (all datasets) supplies label and direction for a metric with no value here.
    """
    valued = df[df["value"].notna()]
    keys = valued[["metric", "mode", "sig"]].drop_duplicates().itertuples(index=False, name=None)
    keys = list(keys) + [(m, "", "") for m in sorted(set(df["metric"]) - set(valued["metric"]))]
    labelled = everything[everything["value"].notna() | everything["higher_is_better"].notna()]
    known = pd.concat([valued, labelled]).drop_duplicates("metric")
    known = known.set_index("metric")
    cols = []
    for metric, mode, sig in keys:
        same = [json.loads(s) for m, md, s in keys if m == metric and md == mode and s]
        differ = sorted({k for d in same for k in d if len({json.dumps(e.get(k)) for e in same}) > 1})
        qual = ", ".join(f"{k}={json.loads(sig).get(k)}" for k in differ) if sig else ""
        info = known.loc[metric] if metric in known.index else None
        hib = None if info is None or pd.isna(info["higher_is_better"]) else bool(info["higher_is_better"])
        label = metric if info is None else str(info["label"])
        cols.append(Column(metric, mode, sig, label, hib, qual))
    order = {name: i for i, name in enumerate(CANONICAL)}
    # Stable sort: variants of one metric and mode keep the order of the runs (rows) they first appear in.
    return sorted(cols, key=lambda c: (order.get(c.metric, len(order)), c.metric, c.mode))


def _rank(table: Table) -> None:
    """Mark best (1) and second-best (2) distinct rounded means per column, in place."""
    for col in table.columns:
        cells = [row.cells[col] for row in table.rows if col in row.cells and row.kind == "run"]
        if col.higher_is_better is None or len(cells) < 2:
            continue
        distinct = sorted({float(c.mean) for c in cells}, reverse=col.higher_is_better)
        for cell in cells:
            value = float(cell.mean)
            cell.rank = 1 if value == distinct[0] else 2 if value == distinct[1] else 0


def _tables(df: pd.DataFrame, paper: bool = False) -> list[Table]:
    """Aggregate the long frame into one ranked :class:`Table` per dataset (sorted by dataset); with ``paper``,
    published numbers are added to the tables of real datasets (:func:`_add_reported`)."""
    df = _with_sig(df)
    tables = []
    for dataset, ds in df.groupby("dataset", sort=True):
        columns = _columns(ds, df)
        by_key = {(c.metric, c.mode, c.sig): c for c in columns}
        groups_per_method = ds.drop_duplicates(GROUP).groupby("method").size()
        stats = (ds[ds["value"].notna()].groupby([*GROUP, "metric", "mode", "sig"])["value"]
                 .agg(["mean", "std", "count"]).reset_index())
        rows = []
        for (_, method, preset, cfg_hash), g in ds.groupby(GROUP, sort=True):
            label = f"{method} ({preset}, {cfg_hash})" if groups_per_method[method] > 1 else str(method)
            row = Row(label, str(preset), int(g["seed"].nunique()), method=str(method))
            sel = stats[(stats["method"] == method) & (stats["preset"] == preset)
                        & (stats["config_hash"] == cfg_hash)]
            for s in sel.itertuples(index=False):
                std = None if s.count < 2 else _fmt(s.std)
                row.cells[by_key[(s.metric, s.mode, s.sig)]] = Cell(_fmt(s.mean), std, int(s.count), row.n)
            rows.append(row)
        reasons = ds[ds["missing"] != ""].drop_duplicates("metric")
        synthetic = bool((ds["source"] == "synthetic").any()) or str(dataset).endswith("-synth")
        missing = dict(zip(reasons["metric"], reasons["missing"], strict=True))
        table = Table(str(dataset), synthetic, columns, rows, missing)
        _rank(table)
        if paper:
            _add_reported(table)
        tables.append(table)
    return tables


def _add_reported(table: Table) -> None:
    """Add published rows ("reported", never ranked) and our-minus-published rows ("delta") to a real-data table.

    A published metric goes into the first column of that metric (a new column when our runs have none). Synthetic
    tables get a note instead: published numbers are never put beside look-alike data.
    """
    entries = published.for_dataset(table.dataset)
    if table.synthetic or not entries:
        why = "synthetic look-alike data" if table.synthetic else "no published numbers for this dataset"
        table.notes.append(f"--paper: no published numbers shown ({why}).")
        return
    from benchbench.report_notes import paired_column, paired_protocol_notes

    column = {id(r): paired_column(table, r) for r in entries}
    reported: dict[str, Row] = {}
    for r in entries:
        row = reported.setdefault(r.method, Row(f"{r.label} (reported)", "published", 0, kind="reported"))
        std = None if r.std is None else _fmt(r.std)
        row.cells[column[id(r)]] = Cell(_fmt(r.mean), std, 1, 1, mark="" if published.exact_protocol(r) else "*")
    deltas = []
    for row in table.rows:
        pub = reported.get(row.method)
        if pub is None:
            continue
        delta = Row(f"difference {row.label} - reported", row.preset, row.n, kind="delta")
        for col, cell in row.cells.items():
            ref = pub.cells.get(col)
            if ref is not None:
                delta.cells[col] = Cell(f"{float(cell.mean) - float(ref.mean):+.3f}", None, 1, 1, mark=ref.mark)
        if delta.cells:
            deltas.append(delta)
    table.rows += [*reported.values(), *deltas]
    table.notes.append("Rows marked (reported) are published numbers, not reproduced by benchbench; they are not "
                       "ranked. 'difference' rows are our mean minus the published mean.")
    for proto in dict.fromkeys(r.protocol for r in entries):
        users = sorted({f"{r.label} ({r.status}; {r.source})" for r in entries if r.protocol == proto})
        table.notes.append(f"Published protocol: {proto}. Sources: {'; '.join(users)}.")
    table.notes += paired_protocol_notes(table, entries, column)


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _caption(table: Table, pm: str, n: str, bold: str, under: str) -> str:
    """The note under (markdown) or in the caption of (LaTeX) a table."""
    text = (f"mean {pm} sample std over the {n} seeds of each row ({pm} std omitted for a single value); "
            f"best per column in {bold}, second {under}.")
    if table.synthetic:
        text += " Synthetic look-alike data: these numbers are not comparable with published results."
    return text


def _cell_text(cell: Cell | None, pm: str, none: str, best: str, second: str) -> str:
    """A cell's text; ``best``/``second`` are %-templates wrapping ranked cells."""
    if cell is None:
        return none
    text = cell.mean if cell.std is None else f"{cell.mean} {pm} {cell.std}"
    text = text if cell.count == cell.row_n else f"{text} (n={cell.count})"
    text += cell.mark
    return best % text if cell.rank == 1 else second % text if cell.rank == 2 else text


def render_latex(table: Table) -> str:
    """A booktabs ``table`` environment; missing-metric reasons follow as ``%`` comments."""
    arrows = {True: r" $\uparrow$", False: r" $\downarrow$", None: ""}
    head = ["Method", "Preset", "$n$"] + [_latex_escape(c.title()) + arrows[c.higher_is_better]
                                          for c in table.columns]
    lines = [f"% benchbench report: {table.dataset}", r"\begin{table}[t]", r"\centering",
             rf"\caption{{{_latex_escape(table.dataset)}: "
             + _caption(table, r"$\pm$", "$n$", r"\textbf{bold}", r"\underline{underlined}") + "}",
             rf"\label{{tab:{table.dataset}}}", r"\begin{tabular}{llr" + "c" * len(table.columns) + "}",
             r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        if row.kind != "run" and table.rows[i - 1].kind == "run":
            lines.append(r"\midrule")
        cells = [_cell_text(row.cells.get(col), r"$\pm$", "--", r"\textbf{%s}", r"\underline{%s}")
                 for col in table.columns]
        label = _latex_escape(row.label)
        if row.kind == "reported":
            cells = [rf"\textit{{{c}}}" if c != "--" else c for c in cells]
            label = rf"\textit{{{label}}}$^\dagger$"
        n = str(row.n) if row.kind != "reported" else "--"
        lines.append(" & ".join([label, _latex_escape(row.preset), n, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\footnotesize " + r" \\ ".join(
            (r"$^\dagger$" if i == 0 and "(reported)" in note else "") + _latex_escape(note)
            for i, note in enumerate(table.notes)))
    lines += [r"\end{table}"]
    lines += [f"% {metric} missing: {reason}" for metric, reason in sorted(table.missing.items())]
    return "\n".join(lines) + "\n"


def render_markdown(table: Table) -> str:
    """A GitHub table with ``**best**`` and ``<u>second</u>``, under a ``## <dataset>`` heading."""
    arrows = {True: " ↑", False: " ↓", None: ""}

    def esc(text: str) -> str:
        return text.replace("|", r"\|")

    head = ["Method", "Preset", "n"] + [esc(c.title()) + arrows[c.higher_is_better] for c in table.columns]
    lines = [f"## {table.dataset}", "", "| " + " | ".join(head) + " |",
             "|" + "|".join([":--", ":--", "--:"] + ["--:"] * len(table.columns)) + "|"]
    for row in table.rows:
        cells = [_cell_text(row.cells.get(col), "±", "n/a", "**%s**", "<u>%s</u>") for col in table.columns]
        label = f"*{esc(row.label)}*" if row.kind == "reported" else esc(row.label)
        n = str(row.n) if row.kind != "reported" else "n/a"
        lines.append("| " + " | ".join([label, esc(row.preset), n, *cells]) + " |")
    caption = _caption(table, "±", "n", "**bold**", "<u>underlined</u>")
    lines += ["", caption[0].upper() + caption[1:]]
    lines += [f"- {note}" for note in table.notes]
    lines += [f"- {metric} missing: {reason}" for metric, reason in sorted(table.missing.items())]
    return "\n".join(lines) + "\n"


def render_csv(df: pd.DataFrame, paper: bool = False) -> str:
    """Long-form ``dataset,method,preset,metric,mean,std,n`` rows; see the module docstring."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "method", "preset", "metric", "mean", "std", "n"])
    df = _with_sig(df)
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


def build_report(out: Path, fmt: str = "latex", write: bool = True, paper: bool = False) -> str:
    """Aggregate the completed runs below ``out`` into tables.

    Args:
        out: the results folder (holding ``runs/``).
        fmt: ``latex``, ``markdown`` or ``csv``.
        write: for latex/markdown, also write ``out/tables/<dataset>.tex|.md`` (atomically).
        paper: add the published numbers (:mod:`benchbench.published`) to real-data tables, marked as reported,
            with our-minus-published rows; csv gets them as ``preset = reported`` rows.
    Returns:
        The text to print: every dataset's table, then (latex/markdown only) the incomplete and failed
        runs, as ``%`` comments in LaTeX. For csv, get those from :func:`incomplete_and_failed`.
    Raises:
        BenchbenchError: unknown ``fmt``, no complete run below ``out``, or inconsistent settings.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise BenchbenchError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    df = load_frame(out)
    if df.empty:
        raise BenchbenchError(
            f"no complete runs found under {out / 'runs'}; run e.g. `benchbench run --method betavae "
            f"--dataset shapes3d-synth --preset quick --out {out}` first")
    if fmt == "csv":
        return render_csv(df, paper)
    render, suffix = (render_latex, ".tex") if fmt == "latex" else (render_markdown, ".md")
    from benchbench.report_notes import deviation_notes

    parts, unwritten = [], ""
    deviations = deviation_notes(out)  # each run's recorded deviations from the paper setting, as table notes
    for table in _tables(df, paper):
        table.notes += deviations.get(table.dataset, [])
        text = render(table)
        if write and not unwritten:
            try:
                store.atomic_write_bytes(out / "tables" / f"{table.dataset}{suffix}", text.encode())
            except OSError as exc:  # a read-only or full results folder: the tables are still printed
                unwritten = (f"warning: could not write the tables to {out / 'tables'} "
                             f"({exc.strerror or type(exc).__name__}); printed only")
        parts.append(text)
    prefix = "% " if fmt == "latex" else ""
    unfinished = [prefix + line for line in ([unwritten] if unwritten else []) + incomplete_and_failed(out)]
    return "\n".join(parts) + ("\n" + "\n".join(unfinished) + "\n" if unfinished else "")
