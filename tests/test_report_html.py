"""``report --html``: a static page that opens from disk (issue 16.3); in headless Chromium where installed."""

from __future__ import annotations

import importlib.util
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchbench import report, store
from tests.report_fixtures import write_run, write_runs

ROOT = Path(__file__).resolve().parent.parent


class _Page(HTMLParser):
    """Collects image sources, table rows (class and cells) and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.rows: list[tuple[str, list[tuple[str, str]]]] = []
        self.text: list[str] = []
        self.scripts = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        elif tag == "tr":
            self.rows.append((a.get("class") or "", []))
        elif tag in ("td", "th"):
            self._cell = [a.get("class") or ""]
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1][1].append((self._cell[0], "".join(self._cell[1:]).strip()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _results(out: Path) -> None:
    write_runs(out, seeds=2, figures=True, methods=("betavae", "random", "pdae"))
    write_run(out, "betavae", 0, overrides=("model.beta=8",), figures=True,
              extra={"deviations": ["DCI uses 500 test points (quick preset), not 5,000"]})
    pending = store.run_dir(out, "shapes3d-synth", "disdiff", "quick", "ab12cd34", 0)
    store.atomic_write_json(pending / "config.json", {"method": "disdiff"})
    failed = store.run_dir(out, "shapes3d-synth", "diffae", "quick", "cd34ef56", 1)
    store.atomic_write_json(failed / "config.json", {"method": "diffae"})
    store.atomic_write_json(failed / "failed.json", {"status": "failed", "error": "non-finite loss at step 10"})


def test_html_page_holds_tables_figures_provenance_and_unfinished_runs(tmp_path: Path) -> None:
    _results(tmp_path)
    rep = report.make_report(tmp_path, "markdown", write=False, html=True)
    page_path = tmp_path / "report.html"
    assert rep.written[-1] == page_path
    page = _Page()
    page.feed(page_path.read_text())
    # Every image is a relative path that resolves from the page's folder (no server needed).
    assert page.images and all(not src.startswith(("/", "http", "file:")) for src in page.images)
    assert all((tmp_path / src).is_file() for src in page.images)
    assert "tables/figures/shapes3d-synth-quick.png" in page.images  # the per-seed strip plots
    cards = [src for src in page.images if src.startswith("runs/")]
    assert len(cards) == 4 * 3 + 1  # 3 figures per group (4 groups), PMG for pdae; the shown seed is seed 0
    assert all("/seed0/" in src for src in cards)
    # Sortable results table: reference rows carry their class and never a rank class.
    body = [(cls, cells) for cls, cells in page.rows if cls in ("run", "floor")]
    assert [cells[0][1] for _, cells in body][:4] == ["β-VAE", "β-VAE β=8", "PDAE", "random floor"]
    floor = next(cells for cls, cells in body if cls == "floor")
    assert all(not c.startswith("rank") for c, _ in floor)
    assert any(c == "rank1" for _, cells in body for c, _ in cells)
    text = " ".join(page.text)
    for expected in ("revision 0123456789ab", "torch 2.5.1", "DCI uses 500 test points", "train seconds 12.5",
                     "incomplete: runs/shapes3d-synth/disdiff/quick-ab12cd34/seed0",
                     "failed: runs/shapes3d-synth/diffae/quick-cd34ef56/seed1: non-finite loss at step 10",
                     '"beta": 8.0'):
        assert expected in text, expected
    assert page.scripts == 1 and "sortable" in page_path.read_text()


def test_html_only_shows_figures_that_exist(tmp_path: Path) -> None:
    d = write_run(tmp_path, "betavae", 0, figures=True)
    (d / "samples.png").unlink()
    report.make_report(tmp_path, write=False, html=True)
    page = _Page()
    page.feed((tmp_path / "report.html").read_text())
    assert all((tmp_path / src).is_file() for src in page.images)
    assert not any(src.endswith("samples.png") for src in page.images)


def _checker():
    spec = importlib.util.spec_from_file_location("html_check", ROOT / "benchmarks" / "html_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(_checker().chromium() is None, reason="chromium not installed (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    _results(tmp_path)
    report.make_report(tmp_path, write=False, html=True)
    result = _checker().check_page(tmp_path / "report.html", tmp_path / "shot.png", height=2400)
    loaded, total = result["images"]
    assert total == result["img_tags"] > 0 and loaded == total
    assert result["console"] == []
    assert result["screenshot"] is not None and result["screenshot"].stat().st_size > 20_000


@pytest.mark.skipif(_checker().chromium() is None, reason="chromium not installed (apt-get install -y chromium)")
def test_chromium_check_sees_a_missing_image(tmp_path: Path) -> None:
    write_run(tmp_path, "betavae", 0, figures=True)
    report.make_report(tmp_path, write=False, html=True)
    (tmp_path / "runs" / "shapes3d-synth").rename(tmp_path / "moved")  # images now dangle
    loaded, total = _checker().check_page(tmp_path / "report.html")["images"]
    assert total > 0 and loaded == total - 3
