"""Per-run figures that explain themselves (issue 16.2): reconstructions, latent traversals, samples, PMG curves.

Every figure has a title naming method, dataset and seed, labelled rows or axes, and is written as PNG and PDF in
one style (:mod:`benchbench.plotstyle`). The ``*_figure`` builders return the matplotlib figure before saving, so
tests read its labels.

Traversal values follow the code's spread on real images: for dimension d, mean_d + std_d * linspace(-2, 2, V)
over a batch of encoded images, so the same figure works for VAE means (roughly N(0, 1)) and for unnormalised
diffusion-autoencoder codes. For wide codes only the ``max_dims`` dims with the largest spread are shown (a method
may name its own dims, e.g. one per DisDiff factor). Methods with factor-structured codes (DisDiff's
``factor_traversals``) get one row per factor, labelled with the range of the factor's score (its
``code_postprocess`` output: DisDiff's per-factor PCA(1) score).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from benchbench import plotstyle
from benchbench.datasets.base import ImageData, to_model_input
from benchbench.evaluate import to_uint8
from benchbench.method import Method
from benchbench.metrics.pmg import pmg_figure

PAD = 2  # pixels between images


def _canvas(rows: list[list[np.ndarray | None]]) -> np.ndarray:
    """uint8 images [H, W, C] (None: blank) in rows -> one white-padded uint8 canvas [R(H+p)+p, K(W+p)+p, 3]."""
    h, w = next(img for row in rows for img in row if img is not None).shape[:2]
    k = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + PAD) + PAD, k * (w + PAD) + PAD, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            if img is not None:
                y, x = PAD + i * (h + PAD), PAD + j * (w + PAD)
                canvas[y:y + h, x:x + w] = img if img.shape[-1] == 3 else np.repeat(img, 3, axis=-1)
    return canvas


def _grid_figure(rows: list[list[np.ndarray | None]], row_labels: list[str], col_labels: list[str] | None,
                 title: str, cell: float = 0.62) -> tuple[Figure, Axes]:
    """One axes showing the image grid, rows labelled on the left (y ticks) and columns on top (x ticks).

    One image in one axes keeps saving fast (a grid of axes costs seconds per figure in PDF).
    """
    h, w = next(img for row in rows for img in row if img is not None).shape[:2]
    k = max(len(r) for r in rows)
    margin = 0.12 * max(len(t) for t in row_labels) / max(1, max(t.count("\n") + 1 for t in row_labels)) + 0.3
    fig = plotstyle.figure(cell * k + margin, cell * len(rows) * h / w + 0.7)
    ax = fig.subplots()
    ax.imshow(_canvas(rows))
    ax.set_yticks([PAD + i * (h + PAD) + h / 2 for i in range(len(rows))], row_labels)
    if col_labels:
        ax.set_xticks([PAD + j * (w + PAD) + w / 2 for j in range(len(col_labels))], col_labels)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.tick_params(length=0, pad=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(title)
    return fig, ax


def reconstruction_figure(inputs: np.ndarray, recons: np.ndarray, title: str) -> Figure:
    """Inputs [N, H, W, C] uint8 over their reconstructions; rows labelled "input" and "reconstruction"."""
    fig, _ = _grid_figure([list(inputs), list(recons)], ["input", "reconstruction"], None, title)
    return fig


def traversal_figure(image: np.ndarray, rows: list[np.ndarray], row_labels: list[str], steps: list[str],
                     title: str) -> Figure:
    """The input image [H, W, C] (framed, column "input", first row) beside one row per latent [V, H, W, C].

    Args:
        row_labels: one per row, e.g. "z3\\n[-1.2, 1.5]" (the latent and its value range).
        steps: one per traversal column, e.g. "-2σ" ... "+2σ" (offsets from the code mean).
    """
    grid = [[image if i == 0 else None, *list(row)] for i, row in enumerate(rows)]
    fig, ax = _grid_figure(grid, row_labels, ["input", *steps], title)
    h, w = image.shape[:2]
    ax.add_patch(Rectangle((PAD - 1.5, PAD - 1.5), w + 2, h + 2, fill=False, edgecolor=plotstyle.HIGHLIGHT,
                           linewidth=2))
    ax.get_xticklabels()[0].set_color(plotstyle.HIGHLIGHT)
    return fig


def sample_figure(samples: np.ndarray, title: str, cols: int = 8) -> Figure:
    """Unconditional samples [N, H, W, C] uint8 in a grid of ``cols`` columns, rows labelled "samples"."""
    rows = [list(samples[i:i + cols]) for i in range(0, len(samples), cols)]
    labels = [f"samples {i * cols + 1}-{i * cols + len(r)}" for i, r in enumerate(rows)]
    fig, _ = _grid_figure(rows, labels, None, title)
    return fig


def read_pmg_csv(path: Path) -> dict[str, np.ndarray]:
    """``pmg.csv`` (written by :func:`benchbench.metrics.pmg.save_curve`) -> {"t", "gap_pretrained", "gap_shifted"}."""
    with Path(path).open() as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in ("t", "gap_pretrained", "gap_shifted")}


def save_sample_figure(images: np.ndarray, stem: Path, title: str) -> list[Path]:
    """uint8 samples [N, H, W, C] as the labelled ``samples`` figure (``stem``.png and .pdf); FID writes the images
    it scores this way, so ``samples.png`` shows the very generator and noise the FID was computed on."""
    return plotstyle.save(sample_figure(images, title), Path(stem))


def _implements(model: Method, name: str) -> bool:
    return getattr(type(model), name, None) is not getattr(Method, name, None)


def _range(lo: float, hi: float) -> str:
    return f"[{lo:.2g}, {hi:.2g}]"


@torch.no_grad()
def save_figures(
    model: Method,
    data: ImageData,
    out_dir: Path,
    seed: int = 0,
    num_images: int = 8,
    num_values: int = 7,
    max_dims: int = 10,
    title: str = "",
    num_samples: int = 16,
) -> list[Path]:
    """Write ``reconstructions``, ``traversals`` and ``samples`` (.png and .pdf) into ``out_dir``.

    Args:
        title: "<method> on <dataset>, seed <k>" (each figure's title starts with what it shows).
    Returns:
        The paths written (a method without ``reconstruct``, ``traverse`` or ``sample`` skips that figure).
    """
    model.eval()
    device = model.device
    pool = data.train_indices()
    size = len(data) if pool is None else len(pool)
    pick = np.random.default_rng(seed).choice(size, size=min(64, size), replace=False)
    idx = np.sort(pick if pool is None else pool[pick])
    x = to_model_input(data.images(idx)).to(device)
    suffix = f": {title}" if title else ""
    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = [f"{s:+.1f}σ" if s else "mean" for s in np.linspace(-2, 2, num_values)]
    if _implements(model, "reconstruct"):
        rec = model.reconstruct(x[:num_images])
        fig = reconstruction_figure(to_uint8(x[:num_images]), to_uint8(rec), "Reconstructions" + suffix)
        written += plotstyle.save(fig, out_dir / "reconstructions")
    if callable(getattr(model, "factor_traversals", None)):
        codes = model.encode(x).float()
        frames = model.factor_traversals(x[:1], codes, num_values)  # [F, V, C, H, W]
        fit = getattr(model, "code_postprocess", None)
        scores = fit(codes.cpu().double().numpy())(codes.cpu().double().numpy()) if fit else None
        labels = []
        for c in range(len(frames)):
            if scores is not None and scores.shape[1] == len(frames):
                s = scores[:, c]
                labels.append(f"factor {c}\nscore {_range(s.mean() - 2 * s.std(ddof=1), s.mean() + 2 * s.std(ddof=1))}")
            else:
                labels.append(f"factor {c}")
        fig = traversal_figure(to_uint8(x[:1])[0], [to_uint8(f) for f in frames], labels, steps,
                               "Factor traversals (score mean ± 2 std)" + suffix)
        written += plotstyle.save(fig, out_dir / "traversals")
    elif _implements(model, "traverse"):
        codes = model.encode(x).float()
        mean, std = codes.mean(0), codes.std(0)
        dims = getattr(model, "traversal_dims", None)
        dims = list(dims(codes)) if callable(dims) else torch.argsort(std, descending=True)[:max_dims].tolist()
        rows, labels = [], []
        for d in dims:
            values = mean[d] + std[d] * torch.linspace(-2, 2, num_values, device=codes.device)
            rows.append(to_uint8(model.traverse(x[:1], int(d), values)[:, 0]))  # [V, 1, C, H, W] -> [V, H, W, C]
            labels.append(f"z{int(d)}\n{_range(float(values[0]), float(values[-1]))}")
        fig = traversal_figure(to_uint8(x[:1])[0], rows, labels, steps,
                               "Latent traversals (code mean ± 2 std)" + suffix)
        written += plotstyle.save(fig, out_dir / "traversals")
    if _implements(model, "sample") and num_samples:
        gen = torch.Generator().manual_seed(seed)
        samples = to_uint8(model.sample(num_samples, generator=gen))
        written += plotstyle.save(sample_figure(samples, "Samples" + suffix), out_dir / "samples")
    return written


def save_pmg_figure(out_dir: Path, title: str = "") -> list[Path]:
    """Redraw ``out_dir/pmg.csv`` (if a PMG metric wrote one) as ``pmg.png`` / ``pmg.pdf`` with ``title``."""
    path = Path(out_dir) / "pmg.csv"
    if not path.exists():
        return []
    fig = pmg_figure(read_pmg_csv(path), "Posterior mean gap" + (f": {title}" if title else ""))
    return plotstyle.save(fig, Path(out_dir) / "pmg")
