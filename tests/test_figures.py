"""Every figure benchbench writes has a title and labelled rows or axes (checked on the matplotlib objects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from benchbench import figures, plotstyle
from benchbench.baselines.beta_vae import BetaVAE, BetaVAEConfig
from benchbench.config import resolve
from benchbench.metrics.pmg import pmg_figure, save_curve
from benchbench.runner import build_data


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


def _title(fig: Figure) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def _rows(fig: Figure) -> list[str]:
    """Row labels of an image-grid figure (its y tick labels)."""
    return [t.get_text() for t in fig.axes[0].get_yticklabels()]


def _cols(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_xticklabels()]


@pytest.fixture(scope="module")
def data():
    return build_data(resolve("betavae", "shapes3d-synth", "smoke", 0), None)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """Figures passed to plotstyle.save, by file stem (they are still written)."""
    seen: dict[str, Figure] = {}
    real = plotstyle.save

    def spy(fig: Figure, stem: Path) -> list[Path]:
        seen[Path(stem).name] = fig
        return real(fig, stem)

    monkeypatch.setattr(plotstyle, "save", spy)
    return seen


def test_run_figures_have_titles_and_labels(tmp_path: Path, data, captured: dict[str, Figure]) -> None:
    torch.manual_seed(0)
    model = BetaVAE(BetaVAEConfig(latent_dim=3), data.spec)
    written = figures.save_figures(model, data, tmp_path, seed=1, num_images=4, num_values=5,
                                   title="betavae on shapes3d-synth, seed 1", num_samples=6)
    assert sorted(p.name for p in written) == sorted(f"{n}.{e}" for n in ("reconstructions", "traversals", "samples")
                                                     for e in ("png", "pdf"))
    assert all(p.stat().st_size > 500 for p in written)
    assert set(captured) == {"reconstructions", "traversals", "samples"}
    for name, fig in captured.items():
        assert _title(fig).endswith("betavae on shapes3d-synth, seed 1"), name
    rec = captured["reconstructions"]
    assert _rows(rec) == ["input", "reconstruction"]
    trav = captured["traversals"]
    rows = _rows(trav)
    assert len(rows) == 3 and all(r.startswith("z") and "[" in r and "]" in r for r in rows)  # latent + range
    assert _cols(trav) == ["input", "-2.0σ", "-1.0σ", "mean", "+1.0σ", "+2.0σ"]
    (ax,) = trav.axes
    assert len(ax.patches) == 1  # the input image is framed
    frame = ax.patches[0].get_bbox()
    assert frame.x0 < 5 and frame.y0 < 5 and frame.width < 2 * data.spec.resolution  # around the first cell
    assert "Latent traversals" in _title(trav)
    assert _rows(captured["samples"]) == ["samples 1-6"]
    for fig in captured.values():
        assert len(fig.axes) == 1 and fig.axes[0].images  # one image grid per figure


class _FactorModel(BetaVAE):
    """A β-VAE that pretends to have DisDiff's factor-structured traversals (two factors of two dims)."""

    def factor_traversals(self, x: torch.Tensor, codes: torch.Tensor, num_values: int) -> torch.Tensor:
        return self.reconstruct(x).expand(2, num_values, *x.shape[1:]).clone()

    def code_postprocess(self, codes: np.ndarray):
        return lambda z: z.reshape(len(z), 2, -1).sum(-1)  # one score per factor


def test_factor_traversals_are_labelled_by_factor_and_score_range(tmp_path: Path, data,
                                                                  captured: dict[str, Figure]) -> None:
    torch.manual_seed(0)
    model = _FactorModel(BetaVAEConfig(latent_dim=4), data.spec)
    figures.save_figures(model, data, tmp_path, num_images=2, num_values=3, title="t", num_samples=0)
    rows = _rows(captured["traversals"])
    assert [r.split("\n")[0] for r in rows] == ["factor 0", "factor 1"]
    assert all(r.split("\n")[1].startswith("score [") for r in rows)
    assert "samples" not in captured


def test_pmg_curve_has_axes_units_and_legend(tmp_path: Path) -> None:
    curve = {"t": np.arange(5), "gap_pretrained": np.linspace(1, 0, 5), "gap_shifted": np.linspace(0.5, 0, 5)}
    fig = pmg_figure(curve, "Posterior mean gap: pdae on shapes3d-synth, seed 0")
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("timestep t") and "MSE" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["pre-trained DPM", "with learned mean shift"]
    assert ax.get_title().endswith("seed 0")
    save_curve(curve, tmp_path)
    written = figures.save_pmg_figure(tmp_path, "pdae on shapes3d-synth, seed 0")
    assert [p.name for p in written] == ["pmg.png", "pmg.pdf"] and all(p.stat().st_size > 500 for p in written)
    assert figures.read_pmg_csv(tmp_path / "pmg.csv")["gap_shifted"].tolist() == curve["gap_shifted"].tolist()
    assert figures.save_pmg_figure(tmp_path / "elsewhere") == []


def test_comparison_plot_is_labelled(tmp_path: Path) -> None:
    from benchbench import report
    from tests.report_fixtures import write_runs

    write_runs(tmp_path)
    table = report.build_tables(report.load_frame(tmp_path))[0]
    from benchbench.report.plots import comparison_figure

    fig = comparison_figure(table)
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == len(table.columns)
    for ax, col in zip(axes, table.columns):
        assert ax.get_title() == table.column_title(col) and ax.get_ylabel().startswith(col.label)
        assert [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()][:2] == [r.label for r in table.rows][:2]
        assert ax.get_xlabel() == "method"
    assert _title(fig).startswith(table.title())
    assert any("random floor" in t for t in _texts(fig))
