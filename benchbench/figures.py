"""Per-run figures: a grid of inputs and reconstructions, and a latent traversal per code dimension.

Traversal values follow the code's spread on real images: for dimension d, mean_d + std_d * linspace(-2, 2, V)
over a batch of encoded images, so the same figure works for VAE means (roughly N(0, 1)) and for
unnormalised diffusion-autoencoder codes. For wide codes only the ``max_dims`` dims with the largest spread
are shown (a method may name its own dims, e.g. one per DisDiff factor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchbench.datasets.base import ImageData, to_model_input
from benchbench.evaluate import to_uint8
from benchbench.method import Method


def _grid(rows: list[np.ndarray], pad: int = 2) -> Image.Image:
    """uint8 image rows [[N, H, W, C], ...] -> one PIL image, rows stacked top to bottom."""
    n = max(len(r) for r in rows)
    h, w = rows[0].shape[1:3]
    canvas = np.full((len(rows) * (h + pad) + pad, n * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = img if img.shape[-1] == 3 else np.repeat(img, 3, axis=-1)
    return Image.fromarray(canvas)


def sample_grid(images: np.ndarray, per_row: int = 8) -> Image.Image:
    """uint8 samples [N, H, W, C] -> a grid ``per_row`` wide (``samples.png``)."""
    return _grid([images[i : i + per_row] for i in range(0, len(images), per_row)])


def _implements(model: Method, name: str) -> bool:
    return getattr(type(model), name, None) is not getattr(Method, name, None)


@torch.no_grad()
def save_figures(
    model: Method,
    data: ImageData,
    out_dir: Path,
    seed: int = 0,
    num_images: int = 8,
    num_values: int = 7,
    max_dims: int = 10,
) -> list[Path]:
    """Write ``reconstructions.png`` (inputs over reconstructions) and ``traversals.png`` into ``out_dir``.

    Returns:
        The paths written (a method without ``reconstruct`` or ``traverse`` skips that figure).
    """
    model.eval()
    device = model.device
    pool = data.train_indices()
    size = len(data) if pool is None else len(pool)
    pick = np.random.default_rng(seed).choice(size, size=min(64, size), replace=False)
    idx = np.sort(pick if pool is None else pool[pick])
    x = to_model_input(data.images(idx)).to(device)
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    if _implements(model, "reconstruct"):
        rec = model.reconstruct(x[:num_images])
        path = out_dir / "reconstructions.png"
        _grid([to_uint8(x[:num_images]), to_uint8(rec)]).save(path)
        written.append(path)
    if callable(getattr(model, "factor_traversals", None)):
        # Methods with factor-structured codes (DisDiff) traverse one factor per row.
        frames = model.factor_traversals(x[:1], model.encode(x).float(), num_values)  # [F, V, C, H, W]
        path = out_dir / "traversals.png"
        _grid([to_uint8(x[:1]).repeat(num_values, 0)[:1], *[to_uint8(row) for row in frames]]).save(path)
        written.append(path)
    elif _implements(model, "traverse"):
        codes = model.encode(x).float()
        mean, std = codes.mean(0), codes.std(0)
        dims = getattr(model, "traversal_dims", None)
        dims = list(dims(codes)) if callable(dims) else torch.argsort(std, descending=True)[:max_dims].tolist()
        rows = []
        for d in dims:
            values = mean[d] + std[d] * torch.linspace(-2, 2, num_values, device=codes.device)
            frames = model.traverse(x[:1], int(d), values)  # [V, 1, C, H, W]
            rows.append(to_uint8(frames[:, 0]))
        path = out_dir / "traversals.png"
        _grid([to_uint8(x[:1]).repeat(num_values, 0)[:1], *rows]).save(path)
        written.append(path)
    return written
