"""Posterior mean gap (PDAE's "gap" curves).

Reference: Zhang et al., "Unsupervised Representation Learning from Pre-trained Diffusion Probabilistic
Models", NeurIPS 2022, https://arxiv.org/abs/2212.12990 (Sec. 3, Fig. 2); reference code ckczzj/PDAE
``sampler/gap_measure.py``. metrics.md §10.

For a pre-trained DPM, the gap at step t is the mean squared difference between the true posterior mean
mu_tilde_t(x_t, x_0) and the model mean mu_theta(x_t) = mu_tilde_t(x0_hat, x_t), optionally shifted by a
learned mean shift (PDAE: Sigma_t G(x_t, z, t)). Because both means share x_t,

    mu_tilde - mu_theta = c0_t (x_0 - x0_hat),   x_0 - x0_hat = sqrt((1 - ab_t) / ab_t) (eps_hat - n)
    gap_t = w_t * mean (n - eps_hat)^2,          w_t = beta_t^2 / (alpha_t (1 - ab_t))

with eps_hat = eps_theta (no shift) or the shifted prediction. This holds for whatever noise n built x_t.
PDAE's figure draws n with ``torch.rand_like`` (uniform [0, 1), off the training distribution); we draw
Gaussian noise by default and keep ``noise="uniform"`` to reproduce the figure. The gap is per element
(PDAE's "MSE"); multiply by C*H*W for a squared norm.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from benchbench import plotstyle
from benchbench.diffusion import Schedule
from benchbench.errors import MetricInputError
from benchbench.metrics.base import MetricResult
from benchbench.metrics.settings import PMGSettings
from benchbench.registry import register_metric

# (x_t [B,C,H,W], t [B], x_0 [B,C,H,W]) -> (eps_pretrained [B,C,H,W], eps_shifted [B,C,H,W] or None)
Predictor = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor | None]]


def timestep_grid(num_steps: int, grid: str = "default") -> np.ndarray:
    """Timesteps to evaluate: "full" = all; "default" = 0..20 densely plus every 10th step and T-1."""
    if grid == "full":
        return np.arange(num_steps)
    if grid != "default":
        raise MetricInputError(f"pmg grid {grid!r}: choose default or full")
    dense = np.arange(min(21, num_steps))
    return np.unique(np.concatenate([dense, np.arange(0, num_steps, 10), [num_steps - 1]]))


def gap_weights(schedule: Schedule) -> Tensor:
    """w_t = beta_t^2 / (alpha_t (1 - alpha_bar_t)) [T] (float64), so that gap_t = w_t mean (n - eps_hat)^2."""
    return schedule.betas**2 / (schedule.alphas * (1.0 - schedule.alphas_bar))


@torch.no_grad()
def posterior_mean_gap(
    predict: Predictor,
    x0: Tensor,
    schedule: Schedule,
    timesteps: np.ndarray,
    noise: str = "gaussian",
    batch_size: int = 64,
    generator: torch.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Per-timestep gap with and without the shift.

    Args:
        predict: the model, see ``Predictor``; the shifted prediction may be None (no shift model).
        x0: images [N, C, H, W] in [-1, 1] on the model's device.
        schedule: the DPM's noise schedule.
        timesteps: steps t to evaluate [S].
        noise: "gaussian" or "uniform" (PDAE's figure quirk).
        batch_size: (image, t) pairs per ``predict`` call; images x timesteps are packed together.
        generator: CPU generator for the noise (same numbers on any device).
    Returns:
        {"t": [S], "gap_pretrained": [S], "gap_shifted": [S] (NaN without a shift)} as float64 arrays.
    """
    if noise not in ("gaussian", "uniform"):
        raise MetricInputError(f"pmg noise {noise!r}: choose gaussian or uniform")
    w = gap_weights(schedule)
    n_img, s = len(x0), len(timesteps)
    sums = torch.zeros(2, s, dtype=torch.float64)
    pairs = [(i, j) for j in range(s) for i in range(n_img)]  # every image at every t
    has_shift = True
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        img = torch.tensor([p[0] for p in chunk])
        col = torch.tensor([p[1] for p in chunk])
        t = torch.as_tensor(timesteps, dtype=torch.long)[col].to(x0.device)
        x0_b = x0[img.to(x0.device)]
        shape = tuple(x0_b.shape)
        n = torch.rand(shape, generator=generator) if noise == "uniform" else torch.randn(shape, generator=generator)
        n = n.to(x0.device, x0.dtype)
        x_t = schedule.q_sample(x0_b, t, n)
        eps_pre, eps_shift = predict(x_t, t, x0_b)
        for row, eps in enumerate((eps_pre, eps_shift)):
            if eps is None:
                has_shift = False
                continue
            per = (n - eps).double().pow(2).flatten(1).mean(1).cpu()  # [B]
            sums[row].index_add_(0, col, per)
    means = sums / n_img * w[torch.as_tensor(timesteps)].unsqueeze(0)
    shifted = means[1].numpy() if has_shift else np.full(s, np.nan)
    return {"t": np.asarray(timesteps), "gap_pretrained": means[0].numpy(), "gap_shifted": shifted}


def pmg_figure(curve: dict[str, np.ndarray], title: str = "") -> Figure:
    """PDAE's Fig. 2 as a figure (not saved): timestep t vs per-element MSE, one line per model, a legend."""
    fig = plotstyle.figure(4.5, 2.8)
    ax = fig.subplots()
    ax.plot(curve["t"], curve["gap_pretrained"], label="pre-trained DPM")
    if not np.isnan(np.asarray(curve["gap_shifted"], float)).all():
        ax.plot(curve["t"], curve["gap_shifted"], label="with learned mean shift")
    ax.set_xlabel("timestep t (of the DPM's schedule)")
    ax.set_ylabel("posterior mean gap (per-element MSE)")
    ax.legend()
    ax.set_title(title or "Posterior mean gap")
    return fig


def save_curve(curve: dict[str, np.ndarray], directory: Path, title: str = "") -> tuple[Path, Path]:
    """Write ``pmg.csv`` (t, gap_pretrained, gap_shifted) and ``pmg.png`` / ``.pdf`` (linear y) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / "pmg.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t", "gap_pretrained", "gap_shifted"])
        for row in zip(curve["t"], curve["gap_pretrained"], curve["gap_shifted"]):
            writer.writerow([int(row[0]), repr(float(row[1])), repr(float(row[2]))])
    png_path, _ = plotstyle.save(pmg_figure(curve, title), directory / "pmg")
    return csv_path, png_path


# PDAE's figure (sampler/gap_measure.py, ckczzj/PDAE commit 4f9c29a): ``total_num`` 1,000 images drawn with
# replacement (np.random.choice(..., True)), every t = 999..0, noise torch.rand_like (uniform [0, 1)).
PDAE_FIGURE_IMAGES = 1000
PROTOCOLS = ("benchbench", "pdae")


def resolve_settings(settings: PMGSettings) -> PMGSettings:
    """The effective settings: ``protocol="pdae"`` sets PDAE's figure protocol (all T steps, uniform noise, 1,000
    images); "benchbench" keeps the settings as given. These effective settings are what is stored."""
    if settings.protocol not in PROTOCOLS:
        raise MetricInputError(f"pmg protocol {settings.protocol!r}: choose one of {', '.join(PROTOCOLS)} "
                               "(set eval.pmg.protocol=...)")
    if settings.protocol == "pdae":
        return replace(settings, grid="full", noise="uniform", num_images=PDAE_FIGURE_IMAGES)
    return settings


def image_indices(settings: PMGSettings, seed: int, size: int) -> np.ndarray:
    """Dataset indices of the images x_0 [M] (sorted): drawn with ``np.random.default_rng(seed)``, without
    replacement (at most ``size``), or with replacement under PDAE's figure protocol, as its ``Subset``."""
    rng = np.random.default_rng(seed)
    if settings.protocol == "pdae":
        return np.sort(rng.choice(size, size=settings.num_images, replace=True))
    return np.sort(rng.choice(size, size=min(settings.num_images, size), replace=False))


def uniform_mean(t: np.ndarray, gap: np.ndarray, num_steps: int) -> float:
    """Mean of the gap over all ``num_steps`` steps, each weighted 1 / T: exact when ``t`` is every step, else the
    mean of the piecewise-linear interpolant through the grid (the default grid weights t <= 20 about 8x if its
    points are averaged directly). t [S] sorted, covering 0 and T - 1; gap [S]."""
    if len(t) == num_steps:
        return float(np.mean(gap))
    return float(np.mean(np.interp(np.arange(num_steps), t, gap)))


@register_metric("pmg", higher_is_better=False, needs="diffusion", settings_key="pmg", label="PMG",
                 resolve=resolve_settings, draw=image_indices)
def pmg_metric(predict: Predictor, schedule: Schedule, x0: Tensor, settings: PMGSettings, seed: int,
               out_dir: Path | None) -> MetricResult:
    """Registered wrapper: the uniform mean of the gap over all T steps (shifted when there is a shift, else the
    pre-trained DPM's); the grid's plain average is kept in the extras as ``grid_mean_*``."""
    settings = resolve_settings(settings)
    curve = posterior_mean_gap(predict, x0, schedule, timestep_grid(schedule.num_steps, settings.grid),
                               settings.noise, settings.batch_size, torch.Generator().manual_seed(seed))
    t, steps = curve["t"], schedule.num_steps
    pre, shifted = uniform_mean(t, curve["gap_pretrained"], steps), uniform_mean(t, curve["gap_shifted"], steps)
    extras = {"mean_gap_pretrained": pre, "mean_gap_shifted": None if np.isnan(shifted) else shifted,
              "scalar": "uniform mean over all T steps" + ("" if len(t) == steps else
                                                            " (linear interpolation between grid steps)"),
              "grid_mean_pretrained": float(np.mean(curve["gap_pretrained"])),
              "grid_mean_shifted": None if np.isnan(shifted) else float(np.mean(curve["gap_shifted"])),
              "num_timesteps": len(t), "num_images": len(x0), "protocol": settings.protocol,
              "fraction_t_shift_lower": float(np.mean(curve["gap_shifted"] < curve["gap_pretrained"]))}
    if out_dir is not None:
        csv_path, png_path = save_curve(curve, out_dir)
        extras.update(csv=csv_path.name, figure=png_path.name)
    return MetricResult(pre if np.isnan(shifted) else shifted, extras)
