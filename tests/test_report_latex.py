"""The emitted LaTeX compiles with pdflatex and fits \\linewidth in a one- and a two-column article (issue 16.1).

The test document wraps graphicx's ``\\resizebox`` so that the log records, for every table, its natural width, its
width as set, and the line width; a table as set must never be wider than the line, and no box may be overfull.
Skipped where pdflatex (texlive-latex-base, texlive-latex-recommended for booktabs) is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from benchbench import report
from tests.report_fixtures import write_run, write_runs

pytestmark = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")

PREAMBLE = r"""\documentclass[%s]{article}
\usepackage[T1]{fontenc}
\usepackage[textwidth=%s]{geometry}
\usepackage{booktabs,graphicx}
\makeatletter
\let\bb@resize\resizebox
\renewcommand{\resizebox}[3]{\setbox\@tempboxa\hbox{#3}\typeout{BB NATURAL=\the\wd\@tempboxa}%%
  \setbox\@tempboxa\hbox{\bb@resize{#1}{#2}{#3}}\typeout{BB SET=\the\wd\@tempboxa\space LINE=\the\linewidth}%%
  \box\@tempboxa}
\makeatother
\newcommand{\benchbenchfigures}{%s}
\begin{document}
"""


def _compile(folder: Path, body: str, options: str = "", textwidth: str = "6.5in") -> list[tuple[float, float, float]]:
    """Compile ``body`` in an article; returns (natural, set, line) widths in pt of every table."""
    figures = (folder / "tables" / "figures").as_posix()
    tex = folder / "doc.tex"
    tex.write_text(PREAMBLE % (options, textwidth, figures) + body + "\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    log = (folder / "doc.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    naturals = [float(x) for x in re.findall(r"BB NATURAL=([\d.]+)pt", log)]
    sets = re.findall(r"BB SET=([\d.]+)pt LINE=([\d.]+)pt", log)
    return [(n, float(s), float(line)) for n, (s, line) in zip(naturals, sets)]


def _wide_results(out: Path) -> None:
    """All seven methods, three seeds, every ground-truth metric plus FID and PMG: the widest table we write."""
    write_runs(out, seeds=3)
    write_run(out, "betavae", 0, overrides=("model.beta=8",))
    write_runs(out, seeds=2, methods=("betavae", "disdiff", "random"), dataset="mpi3d-synth")  # Table 1 layout


@pytest.mark.parametrize("options,textwidth", [("", "6.5in"), ("twocolumn", "7in")], ids=["onecolumn", "twocolumn"])
def test_latex_compiles_and_fits_the_line(tmp_path: Path, options: str, textwidth: str) -> None:
    _wide_results(tmp_path)
    report.build_report(tmp_path, "latex")  # writes tables/*.tex and the comparison plots they include
    tables = sorted((tmp_path / "tables").glob("*.tex"))
    assert [p.name for p in tables] == ["mpi3d-synth-quick.tex", "shapes3d-synth-quick.tex", "table1-synth-quick.tex"]
    body = "\n".join(rf"\input{{{p.as_posix()}}}\clearpage" for p in tables)
    widths = _compile(tmp_path, body, options, textwidth)
    assert len(widths) == 5  # two metric groups of each wide table, then the Table 1 layout
    for natural, width, line in widths:
        assert width <= line + 0.1, (natural, width, line)  # 0.1pt: TeX's \hfuzz
        assert width == pytest.approx(min(natural, line), abs=0.1)
    if options == "twocolumn":  # a 7-metric table with mean ± std is wider than one column: it is shrunk
        assert any(natural > line for natural, _, line in widths)
    assert (tmp_path / "doc.pdf").stat().st_size > 10_000


def test_the_width_check_can_fail(tmp_path: Path) -> None:
    """Without the fit box the same table overflows a two-column page: the check above is not vacuous."""
    _wide_results(tmp_path)
    latex = report.build_report(tmp_path, "latex", figures=False).split("\n\n")[0]
    unfitted = latex.replace(r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%", "{%")
    with pytest.raises(AssertionError, match="Overfull"):
        _compile(tmp_path, unfitted, "twocolumn", "7in")


def test_escape_maps_the_unicode_of_deviation_notes_for_pdflatex() -> None:
    from benchbench.report.latex import escape

    assert escape("β ∈ {1, 2}, ᾱ_t ≤ 0.5") == r"$\beta$ $\in$ \{1, 2\}, $\alpha$\_t $\leq$ 0.5"
    assert all(ord(c) < 256 for c in escape("‖x‖² ∂ 10⁻³ — é"))  # nothing pdflatex cannot take is left
