"""Table notes and pairings of ``benchbench report``: which published number sits beside which of our columns
(protocol-aware, :mod:`benchbench.published`), and the deviations from the paper setting each run records.

Kept apart from :mod:`benchbench.report.tables` (aggregation); it reads only the tables and the store.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchbench import published, registry, store
from benchbench.metrics.tad_protocols import get_protocol
from benchbench.report.tables import Column, Table


def paired_column(table: Table, r: published.Reported) -> Column:
    """The column of our numbers computed the way ``r`` was (:func:`published.pairs_with`); where no run has one,
    a new column named by the protocol, placed after the metric's other columns, holds the published number alone."""
    for c in table.columns:
        if c.metric == r.metric and published.pairs_with(r, json.loads(c.sig) if c.sig else {}):
            return c
    key = published.PROTOCOL_KEYS.get(r.metric)
    proto = {key: r.metric_protocol} if key and r.metric_protocol else {}
    meta = registry.metrics.get(r.metric).meta if r.metric in registry.metrics else {}
    col = Column(r.metric, "", json.dumps(proto, sort_keys=True) if proto else "", meta.get("label", r.metric),
                 meta.get("higher_is_better"), ", ".join(f"{k}={v}" for k, v in proto.items()))
    same = [i for i, c in enumerate(table.columns) if c.metric == r.metric]
    table.columns.insert(same[-1] + 1 if same else len(table.columns), col)
    return col


def paired_protocol_notes(table: Table, entries: list[published.Reported], column: dict[int, Column]) -> list[str]:
    """Notes on published numbers measured under a named protocol (TAD): which of our columns each sits beside, a
    protocol we only approximate (cells marked *), and a protocol no run here was computed with."""
    notes = []
    named = [r for r in entries if r.metric_protocol is not None]
    for proto in dict.fromkeys(r.metric_protocol for r in named):
        users = [r for r in named if r.metric_protocol == proto]
        col = column[id(users[0])]
        metric = registry.metrics.get(col.metric).meta.get("label", col.metric) if col.metric in registry.metrics \
            else col.label
        labels = ", ".join(r.label for r in users)
        caveat = published.protocol_caveat(users[0])
        text = (f"{metric} of {labels} (published) sits beside our {metric} computed under the {proto!r} "
                f"protocol (eval.{users[0].metric}.{published.PROTOCOL_KEYS[users[0].metric]}={proto}), which "
                f"reproduces the paper's protocol {caveat}.")
        if users[0].metric == "tad" and get_protocol(proto).folds:
            text += (f" The published ± is the std over its {get_protocol(proto).folds} folds, ours is over seeds "
                     "(each run stores its per-fold values and their std).")
        if not published.exact_protocol(users[0]):
            text += " Cells marked * compare numbers whose protocols differ in that respect."
        if not any(col in row.cells for row in table.rows if row.kind == "run"):
            text += (f" No run here was scored under it: rerun with --set eval.{users[0].metric}."
                     f"{published.PROTOCOL_KEYS[users[0].metric]}={proto} to compare.")
        notes.append(text)
    return notes


def deviation_notes(out: Path, table: Table) -> list[str]:
    """One note per row of ``table`` (our runs and the floor) listing the deviations from the paper setting its runs
    recorded (``result.json`` "deviations", first-seen order over seeds), named by the row's label."""
    notes = []
    frame = table.frame
    for row in table.rows:
        if row.kind not in ("run", "floor") or frame is None:
            continue
        mine = frame[(frame["method"] == row.method) & (frame["config_hash"] == row.config_hash)]
        dirs = sorted(set(mine["run_dir"]))
        lines: list[str] = []
        for d in dirs:
            rec = store.read_json(Path(out) / d / "result.json") or {}
            lines += [str(x) for x in rec.get("deviations") or [] if str(x) not in lines
                      and "synthetic look-alike" not in str(x)]
        if lines:
            notes.append(f"Deviations from the paper setting, {row.label}: {'; '.join(lines)}.")
    return notes
