"""Tests for benchbench.report on fake run folders (no training, no GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchbench import report, store
from benchbench.errors import BenchbenchError

LABELS = {"factorvae": "FactorVAE", "mig": "MIG", "dci": "DCI", "fid": "FID", "pmg": "PMG"}


def _run(out: Path, method: str, seed: int, values: dict[str, float], *, cfg_hash: str = "ab12cd34",
         preset: str = "quick", dataset: str = "shapes3d-synth", missing: dict[str, str] | None = None,
         source: str = "synthetic", settings: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write config.json and result.json of one complete run; returns its folder."""
    d = store.run_dir(out, dataset, method, preset, cfg_hash, seed)
    ident = {"method": method, "dataset": dataset, "preset": preset, "config_hash": cfg_hash, "seed": seed}
    store.atomic_write_json(d / "config.json", {**ident, "config": {}})
    metrics = {
        name: {"value": v, "higher_is_better": name not in ("fid", "pmg"), "label": LABELS.get(name, name),
               "extras": {}, "settings": (settings or {}).get(name, {"num_train": 2000, "seed": 0})}
        for name, v in values.items()
    }
    store.atomic_write_json(d / "result.json", {"schema": 1, "status": "complete", **ident, "source": source,
                                                "metrics": metrics, "missing": missing or {}})
    return d


def _body(latex: str) -> list[str]:
    """The rows of the first tabular, between its first \\midrule and \\bottomrule."""
    lines = latex.splitlines()
    return lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]


def _latex(out: Path, **kwargs: Any) -> str:
    """The LaTeX report without comparison plots (they take a second each; tested on their own)."""
    return report.build_report(out, figures=False, **kwargs)


PM = r" {\scriptsize $\pm$ "


def test_mean_std_n_over_three_seeds(tmp_path: Path) -> None:
    for seed, v in enumerate([0.8, 0.82, 0.84]):
        _run(tmp_path, "betavae", seed, {"mig": v})
    frame = report.load_frame(tmp_path)
    assert sorted(frame["seed"]) == [0, 1, 2] and set(frame["metric"]) == {"mig"}
    assert report.build_report(tmp_path, "csv").splitlines()[1] == \
        "shapes3d-synth,betavae,quick,mig,0.820000,0.020000,3"
    assert _body(_latex(tmp_path)) == [r"$\beta$-VAE & 3 & 0.820" + PM + r"0.020} \\"]


def test_differing_config_hash_is_never_averaged(tmp_path: Path) -> None:
    _run(tmp_path, "betavae", 0, {"mig": 0.2}, cfg_hash="aaaa1111")
    _run(tmp_path, "betavae", 0, {"mig": 0.4}, cfg_hash="bbbb2222")
    _run(tmp_path, "infovae", 0, {"mig": 0.1}, cfg_hash="cccc3333")
    rows = _body(_latex(tmp_path))
    # No config recorded to tell the two betavae groups apart: their hashes do.
    assert rows == [r"$\beta$-VAE (aaaa1111) & 1 & \underline{0.200} \\",
                    r"$\beta$-VAE (bbbb2222) & 1 & \textbf{0.400} \\",
                    r"InfoVAE & 1 & 0.100 \\"]
    assert report.build_report(tmp_path, "csv").splitlines()[1:] == [
        "shapes3d-synth,betavae,quick-aaaa1111,mig,0.200000,,1",
        "shapes3d-synth,betavae,quick-bbbb2222,mig,0.400000,,1",
        "shapes3d-synth,infovae,quick,mig,0.100000,,1"]


def test_best_bold_second_underlined_by_direction(tmp_path: Path) -> None:
    for method, mig, fid in [("a", 0.1, 30.0), ("b", 0.3, 10.0), ("c", 0.2, 20.0)]:
        _run(tmp_path, method, 0, {"mig": mig, "fid": fid})
    assert _body(_latex(tmp_path)) == [
        r"a & 1 & 0.100 & 30.00 \\",
        r"b & 1 & \textbf{0.300} & \textbf{10.00} \\",
        r"c & 1 & \underline{0.200} & \underline{20.00} \\"]


def test_ties_are_ranked_on_rounded_means(tmp_path: Path) -> None:
    for method, mig in [("a", 0.8124), ("b", 0.8116), ("c", 0.5), ("d", 0.4)]:
        _run(tmp_path, method, 0, {"mig": mig})
    assert _body(_latex(tmp_path)) == [
        r"a & 1 & \textbf{0.812} \\", r"b & 1 & \textbf{0.812} \\",
        r"c & 1 & \underline{0.500} \\", r"d & 1 & 0.400 \\"]


def test_single_row_is_not_ranked(tmp_path: Path) -> None:
    _run(tmp_path, "betavae", 0, {"mig": 0.5})
    assert "textbf{0" not in _latex(tmp_path)


def test_random_floor_is_a_reference_row_never_ranked(tmp_path: Path) -> None:
    # The floor beats both methods on MIG and sits between them on FID: it must still be neither bold nor
    # underlined, and the ranks of the others must ignore it.
    _run(tmp_path, "random", 0, {"mig": 0.9, "fid": 15.0})
    _run(tmp_path, "betavae", 0, {"mig": 0.3, "fid": 10.0})
    _run(tmp_path, "infovae", 0, {"mig": 0.2, "fid": 20.0})
    latex = _latex(tmp_path)
    body = _body(latex)
    assert body == [r"$\beta$-VAE & 1 & \textbf{0.300} & \textbf{10.00} \\",
                    r"InfoVAE & 1 & \underline{0.200} & \underline{20.00} \\",
                    r"\midrule",
                    r"\textit{random floor} & 1 & \textit{0.900} & \textit{15.00} \\"]
    floor = [line for line in latex.splitlines() if "random floor" in line]
    assert floor and not any(r"\textbf" in line or r"\underline" in line for line in floor)
    md = report.build_report(tmp_path, "markdown", write=False)
    row = next(line for line in md.splitlines() if "random floor" in line)
    assert row == "| *random floor* | 1 | *0.900* | *15.00* |"
    assert "**" not in row and "<u>" not in row
    table = report.build_tables(report.load_frame(tmp_path))[0]
    assert {r.label: r.kind for r in table.rows}["random floor"] == "floor"
    assert all(c.rank == 0 for r in table.rows if r.kind == "floor" for c in r.cells.values())


def test_latex_booktabs_written_per_dataset_and_preset(tmp_path: Path) -> None:
    _run(tmp_path, "beta_tc", 0, {"mig": 0.5})
    _run(tmp_path, "betavae", 0, {"mig": 0.5}, dataset="mpi3d", source="real", preset="paper")
    text = _latex(tmp_path)
    for key in ("shapes3d-synth-quick", "mpi3d-paper"):
        written = (tmp_path / "tables" / f"{key}.tex").read_text()
        assert written in text
        for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{table}", r"\caption{", r"\resizebox"):
            assert rule in written
        assert (tmp_path / "tables" / f"{key}-seeds.csv").is_file()
    synth = (tmp_path / "tables" / "shapes3d-synth-quick.tex").read_text()
    assert r"beta\_tc & 1" in synth and "Synthetic look-alike" in synth and "quick preset" in synth
    assert "Synthetic" not in (tmp_path / "tables" / "mpi3d-paper.tex").read_text()


def test_write_false_and_csv_write_no_files(tmp_path: Path) -> None:
    _run(tmp_path, "betavae", 0, {"mig": 0.5})
    report.build_report(tmp_path, write=False)
    report.build_report(tmp_path, "csv")
    assert not (tmp_path / "tables").exists()


def test_csv_header_and_rows(tmp_path: Path) -> None:
    for seed, (fv, dci) in enumerate([(0.8, 0.4), (0.9, 0.5)]):
        _run(tmp_path, "betavae", seed, {"dci": dci, "factorvae": fv, "zeta": 1.0},
             settings={"dci": {"mode": "exact"}}, missing={"fid": "no weights"})
    assert report.build_report(tmp_path, "csv") == (
        "dataset,method,preset,metric,mean,std,n\n"
        "shapes3d-synth,betavae,quick,factorvae,0.850000,0.070711,2\n"
        "shapes3d-synth,betavae,quick,dci (exact),0.450000,0.070711,2\n"
        "shapes3d-synth,betavae,quick,zeta,1.000000,0.000000,2\n")


def test_per_seed_csv_beside_the_tables(tmp_path: Path) -> None:
    for seed, v in enumerate([0.8, 0.9]):
        _run(tmp_path, "betavae", seed, {"mig": v, "factorvae": v / 2})
    _latex(tmp_path)
    lines = (tmp_path / "tables" / "shapes3d-synth-quick-seeds.csv").read_text().splitlines()
    assert lines[0] == "dataset,preset,method,label,config_hash,seed,metric,mode,value,degenerate,run"
    assert lines[1:] == [
        "shapes3d-synth,quick,betavae,β-VAE,ab12cd34,0,factorvae,,0.400000,,runs/shapes3d-synth/betavae/quick-ab12cd34/seed0",
        "shapes3d-synth,quick,betavae,β-VAE,ab12cd34,0,mig,,0.800000,,runs/shapes3d-synth/betavae/quick-ab12cd34/seed0",
        "shapes3d-synth,quick,betavae,β-VAE,ab12cd34,1,factorvae,,0.450000,,runs/shapes3d-synth/betavae/quick-ab12cd34/seed1",
        "shapes3d-synth,quick,betavae,β-VAE,ab12cd34,1,mig,,0.900000,,runs/shapes3d-synth/betavae/quick-ab12cd34/seed1"]


def test_markdown_table(tmp_path: Path) -> None:
    _run(tmp_path, "a", 0, {"mig": 0.1, "fid": 3.0})
    _run(tmp_path, "b", 0, {"mig": 0.3}, missing={"fid": "no weights"})
    _run(tmp_path, "c", 0, {"mig": 0.2, "fid": 4.0})
    text = report.build_report(tmp_path, "markdown", figures=False)
    assert (tmp_path / "tables" / "shapes3d-synth-quick.md").read_text() in text
    assert text.splitlines()[:7] == [
        "## shapes3d-synth, quick preset", "",
        "| Method | n | MIG ↑ | FID ↓ |",
        "|:--|--:|--:|--:|",
        "| a | 1 | 0.100 | **3.000** |",
        "| b | 1 | **0.300** | n/a |",
        "| c | 1 | <u>0.200</u> | <u>4.000</u> |"]
    assert "- fid missing: no weights" in text


def test_missing_metric_shows_dashes(tmp_path: Path) -> None:
    _run(tmp_path, "betavae", 0, {"mig": 0.5}, missing={"fid": "weights not found: place them at x"})
    text = _latex(tmp_path)
    assert r"FID $\downarrow$" in text  # label and direction come from the metric registry
    assert _body(text) == [r"$\beta$-VAE & 1 & 0.500 & -- \\"]
    assert "% fid missing: weights not found: place them at x" in text
    assert list(report.load_frame(tmp_path)["metric"]) == ["mig", "fid"]


def test_partially_missing_metric_reports_its_own_n(tmp_path: Path) -> None:
    _run(tmp_path, "betavae", 0, {"mig": 0.5, "fid": 3.0})
    _run(tmp_path, "betavae", 1, {"mig": 0.7}, missing={"fid": "no weights"})
    rows = _body(_latex(tmp_path))
    assert rows == [r"$\beta$-VAE & 2 & 0.600" + PM + r"0.141} & 3.000 (n=1) \\"]


def test_one_number_format_per_column(tmp_path: Path) -> None:
    # PMG gaps below 0.01 share a power-of-ten unit in the header, means and stds alike (no "0.008 ± 5.77e-04").
    for seed, gap in enumerate([0.0081, 0.0089, 0.0085]):
        _run(tmp_path, "pdae", seed, {"pmg": gap, "fid": 100.0 + seed})
    _run(tmp_path, "diffae", 0, {"pmg": 0.0004, "fid": 95.5})
    latex = _latex(tmp_path)
    assert r"PMG ($\times 10^{-3}$) $\downarrow$" in latex
    assert _body(latex) == [r"Diff-AE & 1 & \textbf{95.5} & \textbf{0.400} \\",
                            r"PDAE & 3 & \underline{101.0" + PM + r"1.0}} & \underline{8.500" + PM + r"0.400}} \\"]
    assert "e-0" not in latex
    md = report.build_report(tmp_path, "markdown", write=False)
    assert "| PMG (×10⁻³) ↓ |" in md


def test_incomplete_and_failed_runs_are_listed(tmp_path: Path) -> None:
    _run(tmp_path, "betavae", 0, {"mig": 0.5})
    pending = store.run_dir(tmp_path, "shapes3d-synth", "betavae", "quick", "ab12cd34", 2)
    pending.mkdir(parents=True)
    (pending / "config.json").write_text("{truncated")  # unreadable: the path still names the run
    failed = store.run_dir(tmp_path, "shapes3d-synth", "pdae", "paper", "ffff0000", 1)
    store.atomic_write_json(failed / "config.json", {"method": "pdae"})
    store.atomic_write_json(failed / "failed.json", {"status": "failed", "error": "non-finite loss\nat 10"})
    expected = ["incomplete: runs/shapes3d-synth/betavae/quick-ab12cd34/seed2",
                "failed: runs/shapes3d-synth/pdae/paper-ffff0000/seed1: non-finite loss at 10"]
    assert report.incomplete_and_failed(tmp_path) == expected
    assert _latex(tmp_path).splitlines()[-2:] == ["% " + line for line in expected]
    assert report.build_report(tmp_path, "markdown", figures=False).splitlines()[-2:] == expected
    assert "incomplete" not in report.build_report(tmp_path, "csv")
    # A filter keeps only the unfinished runs it selects.
    assert _latex(tmp_path, methods="betavae").splitlines()[-1] == "% " + expected[0]


def test_no_complete_runs_raises(tmp_path: Path) -> None:
    with pytest.raises(BenchbenchError, match="benchbench run"):
        report.build_report(tmp_path)
    failed = store.run_dir(tmp_path, "shapes3d-synth", "pdae", "paper", "ffff0000", 0)
    store.atomic_write_json(failed / "config.json", {})
    store.atomic_write_json(failed / "failed.json", {"error": "boom"})
    with pytest.raises(BenchbenchError, match="no complete runs"):
        report.build_report(tmp_path, "csv")
    with pytest.raises(BenchbenchError, match="format"):
        report.build_report(tmp_path, "html")


def test_dci_modes_get_separate_tables(tmp_path: Path) -> None:
    _run(tmp_path, "a", 0, {"dci": 0.4, "mig": 0.1}, settings={"dci": {"mode": "exact"}})
    _run(tmp_path, "b", 0, {"dci": 0.9, "mig": 0.2}, cfg_hash="cd34ef56", settings={"dci": {"mode": "fast"}})
    text = _latex(tmp_path)
    tables = report.build_tables(report.load_frame(tmp_path))
    assert [(t.key, t.variant) for t in tables] == [("shapes3d-synth-quick", "dci: mode=exact"),
                                                    ("shapes3d-synth-quick-2", "dci: mode=fast")]
    assert r"Method & $n$ & MIG $\uparrow$ & DCI (exact) $\uparrow$ \\" in text
    assert r"Method & $n$ & MIG $\uparrow$ & DCI (fast) $\uparrow$ \\" in text
    assert "quick preset (dci: mode=fast)" in text
    assert (tmp_path / "tables" / "shapes3d-synth-quick-2.tex").is_file()


def test_presets_get_separate_tables_and_conflicts_raise(tmp_path: Path) -> None:
    _run(tmp_path, "a", 0, {"mig": 0.4}, settings={"mig": {"num_train": 2000, "seed": 0}})
    _run(tmp_path, "b", 0, {"mig": 0.9}, preset="paper", settings={"mig": {"num_train": 10000, "seed": 0}})
    text = _latex(tmp_path)
    assert text.count(r"\begin{table}") == 2 and "[num" not in text
    assert "quick preset" in text and "paper preset" in text
    _run(tmp_path, "a", 1, {"mig": 0.5}, settings={"mig": {"num_train": 500, "seed": 1}})
    with pytest.raises(BenchbenchError, match="different settings"):
        report.build_report(tmp_path)


def test_small_table_exact(tmp_path: Path) -> None:
    # betavae: FactorVAE (0.8 + 0.9) / 2 = 0.850, std sqrt(0.005) = 0.0707; FID 35 +- sqrt(50) = 7.071.
    for seed, (fv, fid) in enumerate([(0.8, 30.0), (0.9, 40.0)]):
        _run(tmp_path, "betavae", seed, {"factorvae": fv, "fid": fid}, dataset="mpi3d", preset="paper",
             source="real")
    _run(tmp_path, "infovae", 0, {"factorvae": 0.7, "fid": 20.0}, dataset="mpi3d", preset="paper",
         source="real")
    _run(tmp_path, "random", 0, {"factorvae": 0.1}, dataset="mpi3d", preset="paper", source="real",
         missing={"fid": "not applicable"})
    text = _latex(tmp_path)
    assert text == "\n".join([
        "% benchbench report: mpi3d, paper preset",
        r"% needs \usepackage{booktabs,graphicx}",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{mpi3d, paper preset: mean $\pm$ sample std over the n seeds of each row ($\pm$ std omitted for a "
        r"single value); best per column in bold, second underlined. Italic rows are references (the untrained "
        r"random floor, published numbers) and are never ranked.}",
        r"\label{tab:mpi3d-paper}",
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        r"\begin{tabular}{lrcc}",
        r"\toprule",
        r"Method & $n$ & FactorVAE $\uparrow$ & FID $\downarrow$ \\",
        r"\midrule",
        r"$\beta$-VAE & 2 & \textbf{0.850" + PM + r"0.071}} & \underline{35.00" + PM + r"7.07}} \\",
        r"InfoVAE & 1 & \underline{0.700} & \textbf{20.00} \\",
        r"\midrule",
        r"\textit{random floor} & 1 & \textit{0.100} & -- \\",
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table}",
        "% fid missing: not applicable",
        ""])
