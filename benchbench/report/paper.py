"""DisDiff's Table 1 layout (issue 13.5): methods as rows, FactorVAE and DCI under each of Cars3D, Shapes3D, MPI3D.

DisDiff (Yang et al., NeurIPS 2023, https://arxiv.org/abs/2301.13721) Table 1 reports FactorVAE score and DCI
disentanglement, mean ± std, for every method on Cars3D, Shapes3D and MPI3D (../shared/spec/paper_tables.md §1).
:func:`combined_tables` lays the per-dataset tables of one preset out that way, over whichever of those datasets
have records; real datasets and their ``-synth`` look-alikes are never mixed in one table. Cells, formats and ranks
are those of the per-dataset tables (so the ranking is the same in both views); with ``--paper`` every published
cell of those datasets is a reported row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchbench.report.tables import Column, Row, Table

DATASETS = ("cars3d", "shapes3d", "mpi3d")
METRICS = ("factorvae", "dci")
NAMES = {"cars3d": "Cars3D", "shapes3d": "Shapes3D", "mpi3d": "MPI3D"}


@dataclass
class Combined:
    """One combined table: ``groups`` is [(dataset, [FactorVAE column, DCI column])] in DisDiff's order."""

    key: str
    title: str
    preset: str
    synthetic: bool
    groups: list[tuple[str, list[Column]]]
    tables: dict[str, Table]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def dataset_label(self, dataset: str) -> str:
        base = dataset.removesuffix("-synth")
        return NAMES.get(base, base) + (" (synth)" if dataset.endswith("-synth") else "")

    def source_row(self, dataset: str, row: Row) -> Row | None:
        """The row of ``dataset``'s table with this row's label and kind, or None."""
        return next((r for r in self.tables[dataset].rows if r.label == row.label and r.kind == row.kind), None)

    def caption(self) -> str:
        text = (f"{self.title}: FactorVAE score and DCI disentanglement, mean ± sample std over seeds, laid out as "
                "DisDiff's Table 1; best per column in bold, second underlined; italic rows are references, never "
                "ranked.")
        if self.synthetic:
            text += " Synthetic look-alike data: not comparable with published results."
        return text


def combined_tables(tables: list[Table], paper: bool = False) -> list[Combined]:
    """Per preset, one combined table of the real datasets and one of their look-alikes, each where at least two of
    those datasets have a FactorVAE or DCI column (with ``paper``, real ones from one dataset on: the published rows
    then appear in the paper's layout). A dataset with several settings partitions contributes its first."""
    out = []
    presets = list(dict.fromkeys(t.preset for t in tables))
    for preset in presets:
        for synthetic in (False, True):
            names = [f"{d}-synth" if synthetic else d for d in DATASETS]
            chosen: dict[str, Table] = {}
            for t in tables:
                if t.preset == preset and t.dataset in names and t.dataset not in chosen:
                    chosen[t.dataset] = t
            groups = []
            for dataset in names:
                t = chosen.get(dataset)
                cols = [] if t is None else [next(c for c in t.columns if c.metric == m)
                                             for m in METRICS if any(c.metric == m for c in t.columns)]
                if cols:
                    groups.append((dataset, cols))
            if len(groups) < (1 if paper and not synthetic else 2):
                continue
            rows: list[Row] = []
            for kind in ("run", "floor", "reported"):
                for dataset, _ in groups:
                    for r in chosen[dataset].rows:
                        if r.kind == kind and not any(x.label == r.label and x.kind == kind for x in rows):
                            rows.append(r)
            key = f"table1-{'synth-' if synthetic else ''}{preset}"
            title = f"{'Look-alike datasets' if synthetic else 'Cars3D, Shapes3D, MPI3D'}, {preset} preset"
            notes = [n for d, _ in groups for n in chosen[d].notes if n.startswith("Published protocol")]
            out.append(Combined(key, title, preset, synthetic, groups, {d: chosen[d] for d, _ in groups}, rows,
                                list(dict.fromkeys(notes))))
    return out
