"""``report --paper``: published numbers beside real-data runs only, marked as reported, with differences."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from benchbench import published, report
from tests.test_report import _body, _run


def test_published_data_matches_paper_tables() -> None:
    entries = published.published()
    disdiff = {(r.dataset, r.metric): (r.mean, r.std, r.status) for r in entries if r.method == "disdiff"}
    # paper_tables.md §1 and §2 (verified cells).
    assert disdiff[("shapes3d", "factorvae")] == (0.902, 0.043, "verified")
    assert disdiff[("mpi3d", "dci")] == (0.337, 0.057, "verified")
    assert disdiff[("celeba", "tad")] == (0.305, 0.010, "verified")
    assert disdiff[("celeba", "fid")] == (18.2, 2.1, "verified")
    info = {(r.dataset, r.metric): r.mean for r in entries if r.method == "infodiffusion"}
    assert info == {("celeba", "tad"): 0.299, ("celeba", "fid"): 23.6}
    # Every entry names its source and a protocol; every dataset is a real one.
    assert all(r.source and r.protocol and r.status in ("verified", "UNVERIFIED") for r in entries)
    assert {r.dataset for r in entries} == {"cars3d", "shapes3d", "mpi3d", "celeba"}
    doc = json.loads(resources.files("benchbench").joinpath("data/published.json").read_text())
    assert len(doc["entries"]) == len(entries)


def test_paper_rows_beside_real_runs(tmp_path: Path) -> None:
    for seed, v in enumerate([0.80, 0.84]):
        _run(tmp_path, "disdiff", seed, {"factorvae": v, "dci": 0.7}, dataset="shapes3d", source="real")
    _run(tmp_path, "betavae", 0, {"factorvae": 0.6, "dci": 0.2}, dataset="shapes3d", source="real")
    plain = report.build_report(tmp_path, write=False)
    assert "reported" not in plain
    latex = report.build_report(tmp_path, write=False, paper=True)
    body = _body(latex)
    pm = r" {\scriptsize $\pm$ "
    ours = [line for line in body if line.startswith("DisDiff")]
    assert ours == [r"DisDiff & 2 & \textbf{0.820" + pm + r"0.028}} & \textbf{0.700" + pm + r"0.000}} \\"]
    reported = [line for line in body if "DisDiff (reported)" in line]
    assert reported == [r"\textit{DisDiff (reported)}$^\dagger$ & -- & \textit{0.902" + pm + r"0.043}} & "
                        r"\textit{0.723" + pm + r"0.013}} \\"]
    # our mean - published mean, per column; betavae has no published Shapes3D number, so no difference row.
    assert r"difference DisDiff - reported & 2 & -0.082 & -0.023 \\" in body
    assert not any(line.startswith("difference $\\beta$") for line in body)
    # Published rows are never ranked: DisCo's 0.877 would otherwise beat our best.
    assert any(line.startswith(r"\textit{DisCo (reported)}") and r"\textbf" not in line for line in body)
    assert "not reproduced by benchbench" in latex and "EncDiff (NeurIPS 2024) Table 1" in latex
    md = report.build_report(tmp_path, "markdown", write=False, paper=True)
    assert "| *DisDiff (reported)* | n/a | *0.902 ± 0.043* | *0.723 ± 0.013* |" in md
    csv_lines = report.build_report(tmp_path, "csv", paper=True).splitlines()
    assert "shapes3d,disdiff,reported,factorvae,0.902000,0.043000," in csv_lines


def test_paper_never_beside_synthetic_runs(tmp_path: Path) -> None:
    _run(tmp_path, "disdiff", 0, {"factorvae": 0.5}, dataset="shapes3d-synth")
    latex = report.build_report(tmp_path, write=False, paper=True)
    assert "reported)" not in latex and "0.902" not in latex
    assert "synthetic look-alike data" in latex
    assert "reported" not in "\n".join(report.build_report(tmp_path, "csv", paper=True).splitlines()[1:])


def test_paper_adds_a_column_our_runs_lack(tmp_path: Path) -> None:
    tad = {"protocol": "infodiffusion", "variant": "exact", "num_images": 10000, "seed": 0}
    _run(tmp_path, "infodiffusion", 0, {"tad": 0.2}, dataset="celeba", source="real", settings={"tad": tad})
    md = report.build_report(tmp_path, "markdown", write=False, paper=True)
    head = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert "FID" in head or "fid" in head
    assert head == "| Method | n | tad [protocol=infodiffusion] ↑ | TAD [protocol=disdiff] ↑" \
        " | FID [protocol=infodiffusion] ↓ | FID [protocol=disdiff-quirk] ↓ |"
    assert "| difference InfoDiffusion - reported | 1 | -0.099 | n/a | n/a |" in md


def test_published_tad_only_beside_its_own_protocol(tmp_path: Path) -> None:
    """A published TAD sits beside our TAD computed under that paper's protocol, never beside another one; DisDiff's
    (approximated: its evaluation file is unpublished) is marked *; a protocol without runs says how to get one."""
    ours = {"protocol": "benchbench", "variant": "exact", "num_images": 10000, "seed": 0}
    _run(tmp_path, "infodiffusion", 0, {"tad": 0.2}, dataset="celeba", source="real", settings={"tad": ours})
    dis = {"protocol": "disdiff", "variant": "disdiff", "num_images": 10000, "seed": 0}
    _run(tmp_path, "disdiff", 0, {"tad": 0.25}, dataset="celeba", source="real", settings={"tad": dis})
    md = report.build_report(tmp_path, "markdown", write=False, paper=True)
    # Different TAD protocols are different metric settings: one table each (issue 17.1), published numbers paired
    # by protocol within each.
    first, second = md.split("## celeba, quick preset")[1:3]
    heads = [next(line for line in part.splitlines() if line.startswith("| Method")) for part in (first, second)]
    assert heads[0] == "| Method | n | tad [protocol=disdiff] ↑ | TAD [protocol=infodiffusion] ↑" \
        " | FID [protocol=infodiffusion] ↓ | FID [protocol=disdiff-quirk] ↓ |"
    assert heads[1] == "| Method | n | tad [protocol=benchbench] ↑ | TAD [protocol=infodiffusion] ↑ | " \
                       "TAD [protocol=disdiff] ↑ | FID [protocol=infodiffusion] ↓ | FID [protocol=disdiff-quirk] ↓ |"
    # DisDiff's FID sits in its own protocol's column (its [0, 255]-floats script), marked as approximated.
    assert r"| *DisDiff (reported)* | n/a | *0.305 ± 0.010\** | n/a | n/a | *18.20 ± 2.10\** |" in first
    assert "| difference DisDiff - reported | 1 | -0.055* | n/a | n/a |" in first
    # infodiffusion ran under benchbench's protocol only: no difference row against its published 0.299.
    assert "difference InfoDiffusion" not in md
    assert "| *InfoDiffusion (reported)* | n/a | n/a | *0.299 ± 0.006* | n/a | *23.60 ± 1.30* |" in second
    assert "rerun with --set eval.tad.protocol=infodiffusion to compare" in md
    assert "Cells marked * compare numbers whose protocols differ" in md and "test_celeba.npz is unpublished" in md


def test_attrs_column_next_to_tad(tmp_path: Path) -> None:
    from benchbench import store

    for seed, (tad, attrs) in enumerate([(0.3, 3), (0.5, 5)]):
        d = _run(tmp_path, "betavae", seed, {"tad": tad}, dataset="celeba-synth")
        record = store.read_json(d / "result.json")
        record["metrics"]["tad"]["extras"] = {"attrs": attrs, "variant": "exact"}
        store.atomic_write_json(d / "result.json", record)
    md = report.build_report(tmp_path, "markdown", write=False)
    head = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert head.index("tad") < head.index("ATTRS")
    assert "| β-VAE | 2 | 0.400 ± 0.141 | 4.000 ± 1.414 |" in md


def test_cli_report_paper_flag(tmp_path: Path, invoke) -> None:
    _run(tmp_path, "disdiff", 0, {"factorvae": 0.8}, dataset="mpi3d", source="real")
    code, out, _ = invoke(["report", "--out", str(tmp_path), "--format", "markdown", "--paper"])
    assert code == 0
    assert "| *DisDiff (reported)* | n/a | *0.617 ± 0.070* | *0.337 ± 0.057* |" in out
    assert "| difference DisDiff - reported | 1 | +0.183 | n/a |" in out


def test_recorded_deviations_become_table_notes(tmp_path: Path) -> None:
    from benchbench import store

    for seed in (0, 1):
        d = _run(tmp_path, "betavae", seed, {"mig": 0.3})
        record = store.read_json(d / "result.json")
        record["deviations"] = ["shapes3d-synth: synthetic look-alike data, never comparable with published numbers",
                                "β=4 is benchbench's choice", *(["seed-only line"] if seed else [])]
        store.atomic_write_json(d / "result.json", record)
    md = report.build_report(tmp_path, "markdown", write=False)
    assert "- Deviations from the paper setting, β-VAE: β=4 is benchbench's choice; seed-only line." in md
    latex = report.build_report(tmp_path, write=False)
    assert r"Deviations from the paper setting, $\beta$-VAE" in latex
