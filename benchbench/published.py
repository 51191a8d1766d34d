"""Published numbers (reported, not reproduced): the package's copy of ../shared/spec/paper_tables.md.

``benchbench/data/published.json`` holds one entry per (dataset, method, metric) with its mean, std, source (paper and
table), verification status and a protocol key; ``report --paper`` shows them beside real-data runs only. The entries
are data, read at report time; nothing here is computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Reported:
    """One published cell.

    Attributes:
        dataset: benchbench dataset name ("shapes3d", "mpi3d", "celeba"; "cars3d" is kept for provenance only).
        method: benchbench method name where one exists (e.g. "disdiff"), else a reported-only key.
        label: the row name in the source table.
        metric: benchbench metric name ("factorvae", "dci" = DCI disentanglement, "tad", "fid").
        mean, std: the published mean ± std.
        source: where the number was read (paper and table).
        status: "verified" (two independent sources agree) or "UNVERIFIED".
        protocol: the protocol the number was measured with, in words.
        metric_protocol: for metrics with named protocols (TAD: ``eval.tad.protocol``), the benchbench protocol that
            computes our number the way this one was; None: any column of the metric (the first) is paired.
    """

    dataset: str
    method: str
    label: str
    metric: str
    mean: float
    std: float | None
    source: str
    status: str
    protocol: str
    metric_protocol: str | None = None


@cache
def published() -> tuple[Reported, ...]:
    """Every published entry, in file order."""
    doc = json.loads(resources.files("benchbench").joinpath("data/published.json").read_text(encoding="utf-8"))
    protocols = doc["protocols"]
    return tuple(Reported(e["dataset"], e["method"], e["label"], e["metric"], float(e["mean"]),
                          None if e.get("std") is None else float(e["std"]), e["source"], e["status"],
                          protocols[e["protocol"]], e.get("metric_protocol")) for e in doc["entries"])


def for_dataset(dataset: str) -> list[Reported]:
    """The entries of ``dataset`` (none for synthetic look-alikes, which are never compared with papers)."""
    return [r for r in published() if r.dataset == dataset]


# The settings key that names a metric's evaluation protocol (the column's settings carry it).
PROTOCOL_KEYS = {"tad": "protocol"}


def pairs_with(r: Reported, settings: dict) -> bool:
    """Whether our number computed with ``settings`` (a metric's stored, effective settings) may sit beside ``r``:
    always for metrics without named protocols; otherwise only when the protocol is the one ``r`` was measured with."""
    key = PROTOCOL_KEYS.get(r.metric)
    if key is None or r.metric_protocol is None:
        return True
    return settings.get(key, "benchbench") == r.metric_protocol


def protocol_caveat(r: Reported) -> str | None:
    """How well benchbench reproduces ``r``'s metric protocol, in words (None without a named protocol)."""
    if r.metric != "tad" or r.metric_protocol is None:
        return None
    from benchbench.metrics.tad_protocols import PROTOCOLS

    return PROTOCOLS[r.metric_protocol].reproduces


def exact_protocol(r: Reported) -> bool:
    """False where benchbench can only approximate the protocol ``r`` was measured with (DisDiff's unpublished
    TAD evaluation file): such cells are marked in reports, never silently compared."""
    caveat = protocol_caveat(r)
    return caveat is None or caveat.startswith("exactly")
