"""``report``: FID columns say protocol and generator; ``--paper`` compares FID only within one protocol."""

from __future__ import annotations

from pathlib import Path

from benchbench import published, report, store
from tests.test_report import _run


def _fid_run(out: Path, method: str, value: float, protocol: str, prior: str, cfg_hash: str) -> None:
    d = _run(out, method, 0, {"fid": value}, dataset="celeba", source="real", cfg_hash=cfg_hash,
             settings={"fid": {"protocol": protocol, "num_gen": 200, "seed": 0}})
    record = store.read_json(d / "result.json")
    record["metrics"]["fid"]["extras"] = {"mode": protocol, "generator": f"{prior} codes"}
    if prior == "gaussian":
        record["deviations"] = ["generation draws codes from N(mean, cov) of the training codes "
                                "(model.code_prior=gaussian), not PDAE's latent DPM: samples and FID are not the "
                                "paper's"]
    store.atomic_write_json(d / "result.json", record)


def test_published_fid_protocols() -> None:
    fid = {r.method: r.metric_protocol for r in published.published() if r.metric == "fid"}
    assert fid["disdiff"] == "disdiff-quirk" and fid["infodiffusion"] == "infodiffusion"
    assert set(fid.values()) == {"disdiff-quirk", "infodiffusion"}


def test_fid_only_beside_fid_of_the_same_protocol(tmp_path: Path) -> None:
    _fid_run(tmp_path, "infodiffusion", 30.0, "infodiffusion", "latent", "aa000001")
    _fid_run(tmp_path, "disdiff", 20.0, "infodiffusion", "latent", "aa000002")
    _fid_run(tmp_path, "pdae", 40.0, "benchbench", "gaussian", "aa000003")
    md = report.build_report(tmp_path, "markdown", write=False, paper=True)
    head = next(line for line in md.splitlines() if line.startswith("| Method"))
    # One table per FID protocol (different metric settings, issue 17.1); published FIDs sit in their protocol's column.
    assert "FID (infodiffusion)" in head and "FID (benchbench)" not in head and "FID (benchbench)" in md
    assert "FID [protocol=disdiff-quirk]" in head  # DisDiff's published number gets its own column
    # InfoDiffusion's 23.6 (clean-fid, 10k) is compared with our infodiffusion-protocol FID only ...
    lines = md.splitlines()
    assert any(line.startswith("| difference InfoDiffusion - reported") and "+6.40 " in line for line in lines)
    # ... while DisDiff's 18.2 (its [0, 255]-floats script) is compared with nothing we computed.
    assert not any(line.startswith("| difference DisDiff - reported") for line in md.splitlines())
    assert "not comparable with any other FID" in md
    assert "PDAE: generation draws codes from N(mean, cov)" in md  # the Gaussian generator is named for its row
