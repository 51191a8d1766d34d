"""LaTeX tables that fit the page (issue 16.1) and DisDiff's Table 1 layout (issue 13.5).

Every tabular is wrapped in ``\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{...}`` (graphicx
only): a table narrower than the text is left alone, a wider one is shrunk to ``\\linewidth``, in a one-column and a
two-column paper alike. A table with more than ``MAX_COLUMNS`` metric columns is split into stacked tabulars by metric
group (disentanglement, then attributes and generation), so each stays legible. ``± std`` is set in
``\\scriptsize``. Needs ``\\usepackage{booktabs,graphicx}``.
"""

from __future__ import annotations

from benchbench.report.paper import Combined
from benchbench.report.tables import METRIC_GROUPS, Column, Row, Table, cell_parts

MAX_COLUMNS = 5
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "β": r"$\beta$", "γ": r"$\gamma$", "α": r"$\alpha$", "λ": r"$\lambda$", "σ": r"$\sigma$",
            "±": r"$\pm$", "‡": r"$^\ddagger$", "×": r"$\times$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
            "−": "-", "–": "--", "—": "---", "∈": r"$\in$", "≤": r"$\leq$", "≥": r"$\geq$", "≈": r"$\approx$",
            "→": r"$\to$", "‖": r"$\|$", "ε": r"$\epsilon$", "η": r"$\eta$", "ζ": r"$\zeta$", "μ": r"$\mu$",
            "ψ": r"$\psi$", "φ": r"$\phi$", "θ": r"$\theta$", "τ": r"$\tau$", "Σ": r"$\Sigma$", "²": r"$^2$",
            "³": r"$^3$", "⁻": r"$^-$", "¹": r"$^1$", "…": r"\dots{}", "’": "'", "‘": "`", "“": "``", "”": "''",
            "†": r"$^\dagger$", "·": r"$\cdot$"}
_FIT_OPEN = r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%"
_ARROWS = {True: r" $\uparrow$", False: r" $\downarrow$", None: ""}
PM = r" {\scriptsize $\pm$ "


def escape(text: str) -> str:
    """Plain (unicode) text -> LaTeX that pdflatex compiles without extra packages (a character with no mapping
    and outside Latin-1 loses its accents, or becomes "?", rather than stopping pdflatex)."""
    return "".join(_SPECIAL[ch] if ch in _SPECIAL else ch if ord(ch) < 256 else _ascii(ch) for ch in text)


def _ascii(ch: str) -> str:
    import unicodedata

    plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if ord(c) < 128 or c in _SPECIAL)
    return escape(plain) if plain else "?"


def _head(table: Table, col: Column) -> str:
    e = table.fmt(col).exponent
    unit = f" ($\\times 10^{{{e}}}$)" if e else ""
    return escape(table.column_title(col)) + unit + _ARROWS[col.higher_is_better]


def _cell(table: Table, col: Column, row: Row) -> str:
    cell = row.cells.get(col)
    if cell is None:
        return "--"
    mean, std, suffix = cell_parts(table, col, cell)
    text = escape(mean) + ("" if std is None else f"{PM}{escape(std)}}}") + escape(suffix)
    if row.kind in ("reported", "floor"):
        return rf"\textit{{{text}}}"
    if row.kind == "run" and cell.rank == 1:
        return rf"\textbf{{{text}}}"
    if row.kind == "run" and cell.rank == 2:
        return rf"\underline{{{text}}}"
    return text


def _label(row: Row) -> str:
    label = escape(row.label)
    if row.kind == "reported":
        return rf"\textit{{{label}}}$^\dagger$"
    if row.kind == "floor":
        return rf"\textit{{{label}}}"
    return label


def _groups(table: Table) -> list[list[Column]]:
    """The table's columns, split into metric groups when there are more than ``MAX_COLUMNS`` and each group has
    a value (a group of metrics missing everywhere stays with the rest)."""
    columns = table.columns
    first = [c for c in columns if c.metric in METRIC_GROUPS[0][1]]
    rest = [c for c in columns if c not in first]
    valued = {c for r in table.rows for c in r.cells}
    if len(columns) <= MAX_COLUMNS or not (valued & set(first)) or not (valued & set(rest)):
        return [columns]
    return [first, rest]


def _tabular(table: Table, columns: list[Column]) -> list[str]:
    lines = [_FIT_OPEN, r"\begin{tabular}{lr" + "c" * len(columns) + "}", r"\toprule",
             " & ".join(["Method", "$n$", *[_head(table, c) for c in columns]]) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        if i and row.kind != table.rows[i - 1].kind and table.rows[i - 1].kind == "run":
            lines.append(r"\midrule")
        n = str(row.n) if row.kind != "reported" else "--"
        lines.append(" & ".join([_label(row), n, *[_cell(table, c, row) for c in columns]]) + r" \\")
    return [*lines, r"\bottomrule", r"\end{tabular}}"]


def caption(table: Table, pm: str = "±") -> str:
    """The caption text (plain unicode; renderers escape it)."""
    text = (f"{table.title()}: mean {pm} sample std over the n seeds of each row ({pm} std omitted for a single "
            "value); best per column in bold, second underlined. Italic rows are references (the untrained random "
            "floor, published numbers) and are never ranked.")
    if table.synthetic:
        text += " Synthetic look-alike data: these numbers are not comparable with published results."
    return text


def render_latex(table: Table, figure: str | None = None) -> str:
    """A booktabs ``table`` float; with ``figure`` (a file stem under ``\\benchbenchfigures``), also the float of the
    comparison plot it refers to. Missing-metric reasons follow as ``%`` comments."""
    ref = rf" Per-seed values: Figure~\ref{{fig:{table.key}}}." if figure else ""
    lines = [f"% benchbench report: {table.title()}", r"% needs \usepackage{booktabs,graphicx}",
             r"\begin{table}[t]", r"\centering", rf"\caption{{{escape(caption(table))}{ref}}}",
             rf"\label{{tab:{table.key}}}"]
    for i, group in enumerate(_groups(table)):
        lines += ([r"\par\smallskip"] if i else []) + _tabular(table, group)
    if table.notes:
        lines.append(r"\par\footnotesize " + r" \\ ".join(
            (r"$^\dagger$" if "(reported)" in note else "") + escape(note) for note in table.notes))
    lines += [r"\end{table}"]
    if figure:
        lines += [r"\providecommand{\benchbenchfigures}{tables/figures}", r"\begin{figure}[t]", r"\centering",
                  rf"\includegraphics[width=\linewidth]{{\benchbenchfigures/{figure}.pdf}}",
                  rf"\caption{{{escape(table.title())}: every metric by method; points are seeds, bars mean $\pm$ "
                  r"std; hollow diamonds are published values where shown.}",
                  rf"\label{{fig:{table.key}}}", r"\end{figure}"]
    lines += [f"% {metric} missing: {reason}" for metric, reason in sorted(table.missing.items())]
    return "\n".join(lines) + "\n"


def render_combined_latex(comb: Combined) -> str:
    """DisDiff's Table 1 layout: methods as rows, FactorVAE and DCI under each dataset's heading."""
    spec = "l" + " ".join("c" * len(cols) for _, cols in comb.groups)
    heads, rules, subs, at = [""], [], ["Method"], 2
    for dataset, cols in comb.groups:
        heads.append(rf"\multicolumn{{{len(cols)}}}{{c}}{{{escape(comb.dataset_label(dataset))}}}")
        rules.append(rf"\cmidrule(lr){{{at}-{at + len(cols) - 1}}}")
        at += len(cols)
        subs += [escape(c.label) + _ARROWS[c.higher_is_better] for c in cols]
    lines = [f"% benchbench report: {comb.title}", r"% needs \usepackage{booktabs,graphicx}", r"\begin{table}[t]",
             r"\centering", rf"\caption{{{escape(comb.caption())}}}", rf"\label{{tab:{comb.key}}}", _FIT_OPEN,
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(heads) + r" \\", " ".join(rules),
             " & ".join(subs) + r" \\", r"\midrule"]
    for i, row in enumerate(comb.rows):
        if i and row.kind != comb.rows[i - 1].kind and comb.rows[i - 1].kind == "run":
            lines.append(r"\midrule")
        cells = []
        for dataset, cols in comb.groups:
            table = comb.tables[dataset]
            source = comb.source_row(dataset, row)
            cells += [_cell(table, c, source) if source else "--" for c in cols]
        lines.append(" & ".join([_label(row), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}"]
    if comb.notes:
        lines.append(r"\par\footnotesize " + r" \\ ".join(escape(n) for n in comb.notes))
    return "\n".join([*lines, r"\end{table}"]) + "\n"
