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
        fid_protocol: for FID, the ``eval.fid.protocol`` that computes it the same way ("infodiffusion": clean-fid,
            10k samples; "disdiff-quirk": DisDiff's [0, 255]-floats script, comparable with nothing else).
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
    fid_protocol: str = ""


@cache
def published() -> tuple[Reported, ...]:
    """Every published entry, in file order."""
    doc = json.loads(resources.files("benchbench").joinpath("data/published.json").read_text(encoding="utf-8"))
    protocols = doc["protocols"]
    return tuple(Reported(e["dataset"], e["method"], e["label"], e["metric"], float(e["mean"]),
                          None if e.get("std") is None else float(e["std"]), e["source"], e["status"],
                          protocols[e["protocol"]], e.get("fid_protocol", "")) for e in doc["entries"])


def for_dataset(dataset: str) -> list[Reported]:
    """The entries of ``dataset`` (none for synthetic look-alikes, which are never compared with papers)."""
    return [r for r in published() if r.dataset == dataset]
