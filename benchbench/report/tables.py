"""The long frame -> ranked :class:`Table` objects: one per (dataset, preset, metric settings).

Rules (see also :mod:`benchbench.report`):

* Runs are averaged only when they share ``(dataset, method, preset, config_hash)``, i.e. differ in the seed alone.
* A table holds one dataset and one preset. Run groups whose metrics were computed with conflicting settings (e.g.
  ``--set eval.dci.mode=fast`` beside the default) go to separate tables, whose titles name the settings that
  differ; so a column is always one metric computed one way and numbers computed differently are never averaged
  nor ranked together. A metric's own ``seed`` setting counts as seed-to-seed variation and is ignored.
* A cell is ``mean ± std`` over seeds (sample std, ``ddof=1``; ``± std`` omitted for one value), with one number
  format per column (:class:`Fmt`): 3 decimals (2 from 10, 1 from 100), or, when every value of the column is
  below 0.01 in magnitude, 3 decimals of a power-of-ten unit named in the header (``PMG (×10⁻³)``).
* Best rounded mean per column in bold, second underlined, by ``higher_is_better``, with dense ranks (every cell
  tied for best is bold, every cell at the next distinct value underlined). Only ``run`` rows are ranked: the
  ``random`` floor (``floor`` rows) and published numbers (``reported``) are references and never are; a column
  with fewer than two ranked values is not ranked.
* A value that is a fallback rather than a measurement (``frame.DEGENERATE``: FactorVAE with no active dimension)
  is marked ``‡`` with its reason in the notes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from benchbench import published
from benchbench.errors import BenchbenchError
from benchbench.report.frame import GROUP, display_name, is_reference

CANONICAL = ("factorvae", "mig", "dci", "sap", "modularity", "betavae_score", "tad", "attrs", "fid", "pmg")
# Metric groups a wide LaTeX table is split into (issue 16.1): the rest goes to the last group.
METRIC_GROUPS = (("disentanglement", ("factorvae", "mig", "dci", "sap", "modularity", "betavae_score")),
                 ("attributes and generation", ()))
PRESET_ORDER = {"smoke": 0, "quick": 1, "paper": 2}
DEGENERATE_MARK = "‡"


@dataclass(frozen=True)
class Fmt:
    """One column's number format: ``decimals`` after the point, values shown in units of ``10**exponent``."""

    decimals: int = 3
    exponent: int = 0

    def __call__(self, x: float, sign: bool = False) -> str:
        s = f"{x / 10.0 ** self.exponent:{'+' if sign else ''}.{self.decimals}f}"
        return s[1:] if not sign and s.startswith("-") and float(s) == 0 else s

    @staticmethod
    def for_values(values: list[float]) -> Fmt:
        big = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
        if 0 < big < 0.01:
            return Fmt(3, math.floor(math.log10(big)))
        return Fmt(1 if big >= 100 else 2 if big >= 10 else 3)


@dataclass(frozen=True)
class Column:
    """One table column: a metric computed with one set of settings (``sig``: settings minus ``seed``)."""

    metric: str
    mode: str
    sig: str
    label: str
    higher_is_better: bool | None
    qualifier: str = ""  # e.g. "protocol=infodiffusion" for a column holding a published number alone

    def title(self) -> str:
        title = f"{self.label} ({self.mode})" if self.mode else self.label
        return f"{title} [{self.qualifier}]" if self.qualifier else title


@dataclass
class Cell:
    """An aggregated value over ``count`` seeds (of the row's ``row_n``); ``rank`` 1 = bold, 2 = underlined."""

    mean: float
    std: float | None
    count: int
    row_n: int
    rank: int = 0
    degenerate: str = ""
    sign: bool = False  # differences print their sign
    mark: str = ""  # "*": published under a protocol we only approximate (see the notes)


@dataclass
class Row:
    """A table row. ``kind``: "run" (ranked), "floor" (the ``random`` reference), "reported" (a published number)
    or "delta" (our mean minus the published one); only "run" rows are ever ranked."""

    label: str
    preset: str
    n: int
    cells: dict[Column, Cell] = field(default_factory=dict)
    kind: str = "run"
    method: str = ""
    config_hash: str = ""


@dataclass
class Table:
    """One dataset, one preset, one set of metric settings (``variant`` names what sets it apart, or "")."""

    dataset: str
    preset: str
    synthetic: bool
    columns: list[Column]
    rows: list[Row]
    missing: dict[str, str]
    notes: list[str] = field(default_factory=list)
    variant: str = ""
    key: str = ""
    frame: pd.DataFrame | None = None
    formats: dict[Column, Fmt] = field(default_factory=dict)

    def title(self) -> str:
        return f"{self.dataset}, {self.preset} preset" + (f" ({self.variant})" if self.variant else "")

    def column_title(self, col: Column) -> str:
        """The column's title; where the table holds several columns of one metric (a published number under a
        protocol none of our runs used), each names the settings in which it differs from the others."""
        rivals = [c for c in self.columns if c.metric == col.metric and c != col]
        if not rivals or col.qualifier:
            return col.title()
        mine = json.loads(col.sig) if col.sig else {}
        theirs = [json.loads(c.sig) if c.sig else {} for c in rivals]
        keys = sorted(k for k in mine if any(k in t and t[k] != mine[k] for t in theirs))
        qual = ", ".join(f"{k}={mine[k]}" for k in keys)
        return f"{col.title()} [{qual}]" if qual else col.title()

    def fmt(self, col: Column) -> Fmt:
        return self.formats.get(col, Fmt())

    def unit(self, col: Column) -> str:
        """``×10⁻³``-style unit of a scaled column, or ""."""
        e = self.fmt(col).exponent
        return "" if e == 0 else "×10" + str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _sig(settings_json: str) -> str:
    settings = json.loads(settings_json)
    settings.pop("seed", None)
    return json.dumps(settings, sort_keys=True)


def with_sig(df: pd.DataFrame) -> pd.DataFrame:
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


def _split_by_settings(ds: pd.DataFrame) -> list[tuple[pd.DataFrame, dict[str, tuple[str, str]]]]:
    """Partition one (dataset, preset) frame into groups of runs whose metric settings agree.

    Run groups join the first partition none of whose metrics they compute differently (first-fit in sorted
    order); returns each partition's frame and its ``{metric: (mode, sig)}``.
    """
    parts: list[tuple[list[tuple], dict[str, tuple[str, str]]]] = []
    valued = ds[ds["value"].notna()]
    computed: dict[tuple, dict[str, tuple[str, str]]] = {}
    for row in valued[[*GROUP, "metric", "mode", "sig"]].drop_duplicates().itertuples(index=False, name=None):
        computed.setdefault(tuple(row[:4]), {})[row[4]] = (row[5], row[6])
    for key, _ in ds.groupby(GROUP, sort=True):
        mine = computed.get(tuple(key), {})
        for keys, settings in parts:
            if all(settings.get(m, v) == v for m, v in mine.items()):
                keys.append(key)
                settings.update(mine)
                break
        else:
            parts.append(([key], dict(mine)))
    index = pd.Series(list(ds[GROUP].itertuples(index=False, name=None)), index=ds.index)
    return [(ds[index.isin([tuple(k) for k in keys])], settings) for keys, settings in parts]


def _variant_text(settings: dict[str, tuple[str, str]], others: list[dict[str, tuple[str, str]]]) -> str:
    """Name the settings in which one partition differs from its siblings, e.g. ``dci: mode=fast``."""
    parts = []
    for metric, (mode, sig) in sorted(settings.items()):
        rivals = [o[metric] for o in others if metric in o and o[metric] != (mode, sig)]
        if not rivals:
            continue
        mine, theirs = {**json.loads(sig), "mode": mode}, [{**json.loads(s), "mode": md} for md, s in rivals]
        keys = sorted(k for k in mine if any(t.get(k) != mine[k] for t in theirs))
        parts.append(f"{metric}: " + ", ".join(f"{k}={mine[k]}" for k in keys))
    return "; ".join(parts)


def _columns(df: pd.DataFrame, everything: pd.DataFrame) -> list[Column]:
    """Columns of one table's frame: canonical metrics first, then others alphabetically.

    ``everything`` (all datasets) supplies label and direction for a metric with no value here.
    """
    valued = df[df["value"].notna()]
    keys = list(valued[["metric", "mode", "sig"]].drop_duplicates().itertuples(index=False, name=None))
    keys += [(m, "", "") for m in sorted(set(df["metric"]) - set(valued["metric"]))]
    labelled = everything[everything["value"].notna() | everything["higher_is_better"].notna()]
    known = pd.concat([valued, labelled]).drop_duplicates("metric").set_index("metric")
    cols = []
    for metric, mode, sig in keys:
        info = known.loc[metric] if metric in known.index else None
        hib = None if info is None or pd.isna(info["higher_is_better"]) else bool(info["higher_is_better"])
        cols.append(Column(metric, mode, sig, metric if info is None else str(info["label"]), hib))
    order = {name: i for i, name in enumerate(CANONICAL)}
    return sorted(cols, key=lambda c: (order.get(c.metric, len(order)), c.metric, c.mode))


def _format_and_rank(table: Table) -> None:
    """Pick each column's format from every value in it, then rank the ``run`` rows on the rounded means."""
    for col in table.columns:
        values = [v for row in table.rows if col in row.cells and row.kind != "delta"
                  for v in (row.cells[col].mean, row.cells[col].std) if v is not None]
        table.formats[col] = Fmt.for_values(values)
        fmt = table.fmt(col)
        cells = [row.cells[col] for row in table.rows if col in row.cells and row.kind == "run"]
        if col.higher_is_better is None or len(cells) < 2:
            continue
        distinct = sorted({float(fmt(c.mean)) for c in cells}, reverse=col.higher_is_better)
        for cell in cells:
            value = float(fmt(cell.mean))
            cell.rank = 1 if value == distinct[0] else 2 if len(distinct) > 1 and value == distinct[1] else 0


def _rows(part: pd.DataFrame, by_key: dict[tuple[str, str, str], Column]) -> list[Row]:
    stats = (part[part["value"].notna()].groupby([*GROUP, "metric", "mode", "sig"])
             .agg(mean=("value", "mean"), std=("value", "std"), count=("value", "count"),
                  degenerate=("degenerate", "max")).reset_index())
    rows = []
    for (_, method, preset, cfg_hash), g in part.groupby(GROUP, sort=True):
        variant = str(g["variant"].iloc[0])
        label = display_name(str(method)) + (f" {variant}" if variant else "")
        kind = "floor" if is_reference(str(method)) else "run"
        row = Row(label, str(preset), int(g["seed"].nunique()), kind=kind, method=str(method),
                  config_hash=str(cfg_hash))
        sel = stats[(stats["method"] == method) & (stats["config_hash"] == cfg_hash)]
        for s in sel.itertuples(index=False):
            std = None if s.count < 2 else float(s.std)
            row.cells[by_key[(s.metric, s.mode, s.sig)]] = Cell(float(s.mean), std, int(s.count), row.n,
                                                                degenerate=str(s.degenerate or ""))
        rows.append(row)
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.label] = seen.get(row.label, 0) + 1
    for row in rows:  # labels that still collide (no config to tell them apart) get their config hash
        if seen[row.label] > 1:
            row.label = f"{row.label} ({row.config_hash})"
    return sorted(rows, key=lambda r: (r.kind == "floor", r.method, r.label))  # floor last, defaults first


def build_tables(df: pd.DataFrame, paper: bool = False) -> list[Table]:
    """Aggregate the long frame into ranked tables, sorted by dataset, preset and settings partition; with
    ``paper``, published numbers are added to the tables of real datasets (:func:`add_reported`)."""
    df = with_sig(df)
    tables = []
    for (dataset, preset), ds in sorted(df.groupby(["dataset", "preset"], sort=False),
                                        key=lambda kv: (kv[0][0], PRESET_ORDER.get(kv[0][1], 9), kv[0][1])):
        parts = _split_by_settings(ds)
        for i, (part, settings) in enumerate(parts):
            columns = _columns(part, df)
            by_key = {(c.metric, c.mode, c.sig): c for c in columns}
            reasons = part[part["missing"] != ""].drop_duplicates("metric")
            synthetic = bool((part["source"] == "synthetic").any()) or str(dataset).endswith("-synth")
            variant = _variant_text(settings, [s for j, (_, s) in enumerate(parts) if j != i])
            key = f"{dataset}-{preset}" + (f"-{i + 1}" if i else "")
            table = Table(str(dataset), str(preset), synthetic, columns, _rows(part, by_key),
                          dict(zip(reasons["metric"], reasons["missing"], strict=True)), variant=variant, key=key,
                          frame=part)
            if paper:
                add_reported(table)
            _format_and_rank(table)
            flagged = sorted({(c.metric, cell.degenerate) for r in table.rows for c, cell in r.cells.items()
                              if cell.degenerate})
            table.notes += [f"{DEGENERATE_MARK} {metric}: {why}." for metric, why in flagged]
            tables.append(table)
    return tables


def add_reported(table: Table) -> None:
    """Add published rows ("reported", never ranked) and our-minus-published rows ("delta") to a real-data table.

    A published metric goes into the first column of that metric (a new column when our runs have none). Synthetic
    tables get a note instead: published numbers are never put beside look-alike data.
    """
    entries = published.for_dataset(table.dataset)
    if table.synthetic or not entries:
        why = "synthetic look-alike data" if table.synthetic else "no published numbers for this dataset"
        table.notes.append(f"--paper: no published numbers shown ({why}).")
        return
    from benchbench.report.notes import paired_column, paired_protocol_notes

    column = {id(r): paired_column(table, r) for r in entries}  # protocol-aware: TAD beside TAD of its protocol
    reported: dict[str, Row] = {}
    for r in entries:
        row = reported.setdefault(r.method, Row(f"{r.label} (reported)", "published", 0, kind="reported",
                                                method=r.method))
        row.cells[column[id(r)]] = Cell(r.mean, r.std, 1, 1, mark="" if published.exact_protocol(r) else "*")
    deltas = []
    for row in table.rows:
        pub = reported.get(row.method)
        if pub is None:
            continue
        delta = Row(f"difference {row.label} - reported", row.preset, row.n, kind="delta", method=row.method)
        for col, cell in row.cells.items():
            ref = pub.cells.get(col)
            if ref is not None:
                delta.cells[col] = Cell(cell.mean - ref.mean, None, 1, 1, sign=True, mark=ref.mark)
        if delta.cells:
            deltas.append(delta)
    table.rows += [*reported.values(), *deltas]
    table.notes.append("Rows marked (reported) are published numbers, not reproduced by benchbench; they are not "
                       "ranked. 'difference' rows are our mean minus the published mean.")
    for proto in dict.fromkeys(r.protocol for r in entries):
        users = sorted({f"{r.label} ({r.status}; {r.source})" for r in entries if r.protocol == proto})
        table.notes.append(f"Published protocol: {proto}. Sources: {'; '.join(users)}.")
    table.notes += paired_protocol_notes(table, entries, column)


def cell_parts(table: Table, col: Column, cell: Cell) -> tuple[str, str | None, str]:
    """(mean, std or None, suffix) of a cell in its column's format; the suffix holds `` (n=k)`` when fewer seeds
    than the row's have the metric and ``‡`` for a degenerate value."""
    fmt = table.fmt(col)
    mean = fmt(cell.mean, cell.sign)
    std = None if cell.std is None else fmt(cell.std)
    suffix = "" if cell.count == cell.row_n else f" (n={cell.count})"
    return mean, std, suffix + cell.mark + (DEGENERATE_MARK if cell.degenerate else "")


def cell_text(table: Table, col: Column, cell: Cell | None, pm: str, none: str) -> str:
    """A cell's plain text (ranking marks are added by the renderers); ``none`` for an absent cell."""
    if cell is None:
        return none
    mean, std, suffix = cell_parts(table, col, cell)
    return mean + ("" if std is None else f"{pm}{std}") + suffix
