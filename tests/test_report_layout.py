"""Report layout (issues 17.1, 17.3, 13.5): one table per preset, readable labels, filters, the Table 1 layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchbench import published, report, store
from benchbench.errors import BenchbenchError
from tests.report_fixtures import write_run, write_runs

HASH = re.compile(r"\b[0-9a-f]{8}\b")


def test_mixed_smoke_and_quick_runs_give_one_table_per_preset_with_readable_labels(tmp_path: Path) -> None:
    write_runs(tmp_path, presets=("smoke", "quick"), seeds=2, methods=("betavae", "random", "disdiff"))
    for seed in range(2):
        write_run(tmp_path, "betavae", seed, "quick", overrides=("model.beta=8",))
    tables = report.build_tables(report.load_frame(tmp_path))
    assert [t.key for t in tables] == ["shapes3d-synth-smoke", "shapes3d-synth-quick"]
    for t in tables:
        titles = [c.title() for c in t.columns]
        assert len(titles) == len(set(c.metric for c in t.columns)) == 7  # one column per metric, no [settings]
        assert not any("[" in title for title in titles)
        assert not any(HASH.search(r.label) for r in t.rows)
    assert [r.label for r in tables[0].rows] == ["β-VAE", "DisDiff", "random floor"]
    assert [r.label for r in tables[1].rows] == ["β-VAE", "β-VAE β=8", "DisDiff", "random floor"]
    assert [r.kind for r in tables[1].rows] == ["run", "run", "run", "floor"]
    latex = report.build_report(tmp_path, figures=False)
    assert latex.count(r"\begin{table}") == 2  # one per preset (one look-alike dataset: no Table 1 layout)
    assert r"$\beta$-VAE $\beta$=8 & 2 &" in latex
    written = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert written == ["shapes3d-synth-quick-seeds.csv", "shapes3d-synth-quick.tex", "shapes3d-synth-smoke-seeds.csv",
                       "shapes3d-synth-smoke.tex"]
    seeds = (tmp_path / "tables" / "shapes3d-synth-quick-seeds.csv").read_text().splitlines()
    assert len(seeds) == 1 + 4 * 2 * 7 and any(",β-VAE β=8," in line for line in seeds)


def test_labels_of_unregistered_methods_name_what_differs(tmp_path: Path) -> None:
    # A plugin that is no longer installed: its preset default cannot be resolved, so labels compare its groups.
    for h, lr in (("aaaa0001", 0.001), ("aaaa0002", 0.002)):
        d = store.run_dir(tmp_path, "shapes3d-synth", "myplugin", "quick", h, 0)
        ident = {"schema": store.SCHEMA, "method": "myplugin", "dataset": "shapes3d-synth", "preset": "quick",
                 "config_hash": h, "seed": 0}
        store.atomic_write_json(d / "config.json", {**ident, "config": {"model": {"width": 8}, "train": {"lr": lr}}})
        metrics = {"mig": {"value": lr * 100}}
        store.atomic_write_json(d / "result.json", {**ident, "status": "complete", "metrics": metrics})
    (table,) = report.build_tables(report.load_frame(tmp_path))
    assert [r.label for r in table.rows] == ["myplugin lr=0.001", "myplugin lr=0.002"]


def test_filters_select_presets_methods_datasets_and_metrics(tmp_path: Path) -> None:
    write_runs(tmp_path, presets=("smoke", "quick"), seeds=1, methods=("betavae", "infovae", "random"))
    out = report.make_report(tmp_path, write=False, presets="quick", methods=["betavae,random"],
                             metrics=("factorvae", "dci"))
    (table,) = out.tables
    assert table.key == "shapes3d-synth-quick"
    assert [r.label for r in table.rows] == ["β-VAE", "random floor"]
    assert [c.metric for c in table.columns] == ["factorvae", "dci"]
    assert "InfoVAE" not in out.text
    with pytest.raises(BenchbenchError, match=r"no method 'betavea' in these results; they hold betavae, "):
        report.build_report(tmp_path, methods="betavea")
    with pytest.raises(BenchbenchError, match="report --metrics: no metric 'tad'"):
        report.build_report(tmp_path, metrics="tad")
    with pytest.raises(BenchbenchError, match="no dataset 'mpi3d'"):
        report.build_report(tmp_path, datasets="mpi3d")
    assert not (tmp_path / "tables").exists()  # a bad filter writes nothing


def test_cli_filters_and_says_where_it_wrote(tmp_path: Path, invoke) -> None:
    write_runs(tmp_path, presets=("smoke", "quick"), seeds=1, methods=("betavae", "random"))
    code, out, err = invoke(["report", "--out", str(tmp_path), "--format", "markdown", "--preset", "quick",
                             "--metrics", "mig", "--no-figures"])
    assert code == 0, err
    assert "## shapes3d-synth, quick preset" in out and "smoke preset" not in out
    assert "| Method | n | MIG ↑ |" in out
    assert f"wrote 2 files under {tmp_path / 'tables'}" in err  # the table and its per-seed csv
    code, _, err = invoke(["report", "--out", str(tmp_path), "--method", "nope"])
    assert code != 0 and "no method 'nope'" in err


def test_degenerate_factorvae_is_flagged(tmp_path: Path) -> None:
    for seed in range(2):
        d = write_run(tmp_path, "random", seed, "quick", overrides=("model.standardize_codes=False",))
        record = store.read_json(d / "result.json")
        record["metrics"]["factorvae"].update(value=0.0, extras={"num_active_dims": 0})
        store.atomic_write_json(d / "result.json", record)
    md = report.build_report(tmp_path, "markdown", write=False)
    row = next(line for line in md.splitlines() if line.startswith("| *random floor"))
    assert row.startswith("| *random floor standardize_codes=False* | 2 | *0.000 ± 0.000‡* |")
    assert "- ‡ factorvae: no active code dimension" in md
    latex = report.build_report(tmp_path, write=False)
    assert r"0.000 {\scriptsize $\pm$ 0.000}$^\ddagger$" in latex


def test_table1_layout_with_every_published_cell(tmp_path: Path) -> None:
    for dataset in ("mpi3d", "shapes3d"):
        for method in ("betavae", "disdiff", "random"):
            for seed in range(2):
                write_run(tmp_path, method, seed, "quick", dataset=dataset)
    rep = report.make_report(tmp_path, "markdown", write=True, paper=True, figures=False)
    text = (tmp_path / "tables" / "table1-quick.md").read_text()
    head = next(line for line in text.splitlines() if line.startswith("| Method"))
    assert head == ("| Method | Shapes3D FactorVAE ↑ | Shapes3D DCI ↑ | MPI3D FactorVAE ↑ | MPI3D DCI ↑ |")
    lines = text.splitlines()
    for r in published.published():
        if r.dataset in ("shapes3d", "mpi3d") and r.metric in ("factorvae", "dci"):
            row = next(line for line in lines if line.startswith(f"| *{r.label} (reported)*"))
            assert f"*{r.mean:.3f} ± {r.std:.3f}*" in row, (r.label, r.dataset, r.metric)
    ours = next(line for line in lines if line.startswith("| DisDiff |"))
    assert ours.count("±") == 4 and "*" not in ours.replace("**", "")
    floor = next(line for line in lines if line.startswith("| *random floor*"))
    assert "**" not in floor and "<u>" not in floor
    assert "table1-quick" in rep.text or "DisDiff Table 1 layout" in rep.text
    latex = report.build_report(tmp_path, paper=True, figures=False)
    assert r"& \multicolumn{2}{c}{Shapes3D} & \multicolumn{2}{c}{MPI3D} \\" in latex
    assert r"\cmidrule(lr){2-3} \cmidrule(lr){4-5}" in latex
