"""The ``latent`` stage: a diffusion model on a trained method's codes, the papers' unconditional code generator.

Diff-AE (Preechakul et al., CVPR 2022, Sec. 3.3, "latent DDIM"; code ``templates_latent.py:
celeba64d2c_autoenc_latent``, ``experiment.py``, ``renderer.py: render_uncondition``), PDAE (Zhang et al.,
NeurIPS 2022, App.; ``config/celeba64_latent.yml``, ``trainer/train_latent_diffusion.py``) and InfoDiffusion
(Wang et al., ICML 2023; ``models.py: LatentUNet``, ``run.py --mode train_latent_ddim``, ``sampling.py:
LatentDiffusionProcess``) sample codes z for unconditional generation from a DPM trained on the codes of the
training images, encoded once by the frozen, trained encoder. methods.md §4, §5, §7.

    z_n = (z - mean) / std          (Diff-AE, PDAE: per-dim statistics of all encoded codes; InfoDiffusion: raw z)
    L = E_{t ~ U{0..T-1}, eps} mean | eps - eps_theta(sqrt(ab_t) z_n + sqrt(1 - ab_t) eps, t) |^p
        p = 1 (Diff-AE, PDAE: ``LossType.l1``) or 2 (InfoDiffusion's ``Diff.loss_fn``)
    beta_t = 0.008 for all t, T = 1000 (Diff-AE and PDAE ``const0.008``); InfoDiffusion: linear 1e-5 -> 1e-2
    sampling: DDIM (eta 0, no clipping; Diff-AE ``fid(10,10)`` = 10 steps) or ancestral DDPM over all T steps
    (InfoDiffusion without ``--deterministic``), then z = z_n * std + mean.

eps_theta is :class:`~benchbench.nets.mlp_skip.MLPSkipNet`. DisDiff's released code has no code generator at all
(its FID scripts sample whatever ``sample_diffusion.py`` gives); benchbench gives DisDiff PDAE's latent DPM, since
DisDiff builds on PDAE (a benchbench choice, named in its ``protocol()``).

The stage is keyed by the run whose encoder produced the codes (method, config hash, seed and a checksum of the
trained weights), so every evaluation of that run reuses one artifact; the encoded codes are kept beside it
(``codes.npy``) so an interrupted build resumes without encoding again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchbench import ddim
from benchbench.config import TrainConfig
from benchbench.diffusion import Schedule, ddpm_sample
from benchbench.errors import ConfigError
from benchbench.method import Method, randn
from benchbench.nets.mlp_skip import MLPSkipNet
from benchbench.stages import register_stage

SAMPLERS = ("ddim", "ddpm")


@dataclass(frozen=True)
class LatentConfig:
    """A latent DPM on codes and its stage's training settings.

    Attributes:
        hidden: MLPSkipNet width (2048; 0: 4 x code size, InfoDiffusion's ``LatentUNet``).
        num_layers: MLPSkipNet layers (10).
        time_emb_dim: sinusoidal time embedding size (64).
        dropout: dropout of the hidden layers (0; InfoDiffusion 0.1).
        num_steps: T (1000).
        schedule: "constant" (beta for every t: Diff-AE, PDAE) or "linear" (beta_start -> beta_end: InfoDiffusion).
        beta: the constant beta (0.008).
        beta_start, beta_end: the linear schedule (InfoDiffusion: 1e-5 -> 1e-2).
        loss: "l1" (Diff-AE, PDAE) or "mse" (InfoDiffusion).
        znormalize: train on (z - mean) / std with the encoded codes' statistics (Diff-AE, PDAE: True).
        sampler: "ddim" (Diff-AE, PDAE) or "ddpm" (ancestral, all T steps).
        sample_steps: DDIM steps (Diff-AE's ``fid(10,10)``: 10; PDAE's ``latent_ddim_style="ddim100"``: 100).
        grid: the DDIM timestep grid (:mod:`benchbench.ddim`): "diffae" (``space_timesteps`` "ddimK") or "pdae"
            (PDAE's ``timestep_map``).
        clip_noise: clamp z_T to [-1, 1] before sampling (PDAE's ``latent_diffusion_sample``: "may slightly improve
            sample quality").
        clip_x0: clamp each DDIM step's predicted (normalised) z_0 to [-1, 1] and recompute eps from it (PDAE: its
            latent loop calls the image ``ddim_sample``, which clamps).
        num_codes: training images encoded (the first of the training split); 0: all of them.
        encode_batch: images per encoder call while encoding.
        train: the stage's training loop settings (optimiser, batch, steps, EMA).
    """

    hidden: int = 2048
    num_layers: int = 10
    time_emb_dim: int = 64
    dropout: float = 0.0
    num_steps: int = 1000
    schedule: str = "constant"
    beta: float = 0.008
    beta_start: float = 1e-5
    beta_end: float = 1e-2
    loss: str = "l1"
    znormalize: bool = True
    sampler: str = "ddim"
    sample_steps: int = 10
    grid: str = "diffae"
    clip_noise: bool = False
    clip_x0: bool = False
    num_codes: int = 0
    encode_batch: int = 256
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "mse"):
            raise ConfigError(f"latent.loss must be 'l1' or 'mse', got {self.loss!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"latent.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.schedule not in ("constant", "linear"):
            raise ConfigError(f"latent.schedule must be 'constant' or 'linear', got {self.schedule!r}")
        if self.grid not in ("diffae", "pdae"):
            raise ConfigError(f"latent.grid must be 'diffae' or 'pdae', got {self.grid!r}")
        if not 1 <= self.sample_steps <= self.num_steps:
            raise ConfigError(f"latent.sample_steps must be in 1..{self.num_steps}, got {self.sample_steps}")

    def betas(self) -> Schedule:
        if self.schedule == "linear":
            return Schedule.linear(self.num_steps, self.beta_start, self.beta_end)
        return Schedule.constant(self.num_steps, self.beta)

    def describe(self) -> str:
        """One line naming the generator, e.g. ``latent DDIM 10 steps (MLPSkipNet 10x2048, const beta 0.008)``."""
        steps = f"DDIM {self.sample_steps} steps" if self.sampler == "ddim" else f"DDPM {self.num_steps} steps"
        beta = (f"linear beta {self.beta_start:g}-{self.beta_end:g}" if self.schedule == "linear"
                else f"const beta {self.beta:g}")
        width = self.hidden or "4D"
        return f"latent {steps} (MLPSkipNet {self.num_layers}x{width}, {beta}, {self.loss})"


# Diff-AE ``celeba64d2c_autoenc_latent``: AdamW lr 1e-4 wd 0.01, batch 512, 301M samples (~588k steps), EMA 0.9999,
# grad clip 1 (``TrainConfig`` defaults of Diff-AE), no AMP for the latent net (``amp.autocast(False)``).
DIFFAE_LATENT = LatentConfig(train=TrainConfig(
    steps=588_000, batch_size=512, lr=1e-4, weight_decay=0.01, grad_clip=1.0, ema_decay=0.9999, amp=False,
    log_every=1000, ckpt_every=20_000))
# PDAE ``celeba64_latent.yml``: AdamW lr 1e-3 wd 0.01, batch 128 per process, EMA 0.9999, no AMP; no stopping
# criterion in the released trainer (``num_iterations`` is gradient accumulation): benchbench trains 500k steps
# (UNVERIFIED, a benchbench choice). Sampling (``gaussian_diffusion.py: latent_diffusion_sample``): z_T clamped to
# [-1, 1], 100 DDIM steps whose predicted z_0 is clamped to [-1, 1] (reference code; the paper says neither).
PDAE_LATENT = LatentConfig(sample_steps=100, grid="pdae", clip_noise=True, clip_x0=True, train=TrainConfig(
    steps=500_000, batch_size=128, lr=1e-3, weight_decay=0.01, ema_decay=0.9999, amp=False,
    log_every=1000, ckpt_every=20_000))
# InfoDiffusion ``train_latent_ddim``: LatentUNet (10 layers, width 4 a_dim, dropout 0.1), its image schedule
# (linear 1e-5 -> 1e-2), MSE, raw codes, AdamW lr 1e-4 wd 1e-5, grad clip 1, warm-up + cosine over ``epochs``
# to 2 x lr (CelebA: 50 epochs of 162,770 codes at batch 64: 127,200 steps), no EMA. Its FID command
# (``eval_fid.sh``: ``--is_latent`` without ``--deterministic``) samples codes by ancestral DDPM over all 1000 steps.
INFODIFFUSION_LATENT = LatentConfig(
    hidden=0, dropout=0.1, schedule="linear", beta_start=1e-5, beta_end=1e-2, loss="mse", znormalize=False,
    sampler="ddpm",
    train=TrainConfig(steps=127_200, batch_size=64, lr=2e-4, weight_decay=1e-5, grad_clip=1.0, amp=False,
                      warmup_steps=2_544, lr_schedule="cosine", log_every=1000, ckpt_every=20_000))


def quick(cfg: LatentConfig, steps: int = 1500) -> LatentConfig:
    """A CPU-minutes variant of a paper latent config (same net family, width 256, 6 layers, 1,000 codes)."""
    from dataclasses import replace

    hidden = cfg.hidden and 256
    return replace(cfg, hidden=hidden, num_layers=6, num_codes=1000, train=replace(
        cfg.train, steps=steps, batch_size=128, lr=max(cfg.train.lr, 1e-3),
        ema_decay=0.99 if cfg.train.ema_decay else 0.0,
        warmup_steps=min(cfg.train.warmup_steps, 50), log_every=100, ckpt_every=500))


@dataclass(frozen=True)
class CodeSpec:
    """What the latent stage knows of its data: the code size and the codes' statistics [D]."""

    name: str
    dim: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


class CodeData:
    """Encoded training codes [M, D] served to the shared training loop as rows (``rows(indices) -> [B, D]``)."""

    train_flip = False

    def __init__(self, codes: np.ndarray, name: str = "codes") -> None:
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or len(codes) < 2:
            raise ConfigError(f"the latent stage needs codes [M >= 2, D], got shape {codes.shape}")
        self.codes = codes
        t = torch.from_numpy(codes).double()
        std = t.std(0)  # unbiased, as Diff-AE's ``conds.std(dim=0)``
        std = torch.where(std > 0, std, torch.ones_like(std))
        self.spec = CodeSpec(name, codes.shape[1], tuple(t.mean(0).tolist()), tuple(std.tolist()))

    def __len__(self) -> int:
        return len(self.codes)

    def train_indices(self) -> None:
        return None

    def training_pool(self) -> None:
        return None

    def flips_training_batches(self) -> bool:
        return False

    def rows(self, indices: np.ndarray) -> Tensor:
        return torch.from_numpy(self.codes[indices])


@register_stage("latent", description="latent DPM on a trained method's codes (Diff-AE / PDAE / InfoDiffusion)")
class LatentPrior(Method):
    """eps_theta(z_t, t) on codes with the statistics it normalises by (buffers ``mean``, ``std`` [D]).

    Built as a stage: ``LatentPrior(cfg, spec, deps)`` with ``spec`` a :class:`CodeSpec` (or an int code size when
    loading an artifact, whose buffers then restore the statistics).
    """

    cfg: LatentConfig
    mean: Tensor
    std: Tensor

    def __init__(self, cfg: LatentConfig, spec: CodeSpec | int, deps: dict[str, Any] | None = None) -> None:
        dim = spec if isinstance(spec, int) else spec.dim
        super().__init__(cfg, spec)
        self.net = MLPSkipNet(dim, hidden=cfg.hidden or 4 * dim, num_layers=cfg.num_layers,
                              time_emb_dim=cfg.time_emb_dim, dropout=cfg.dropout)
        self.schedule = cfg.betas()
        mean = torch.zeros(dim) if isinstance(spec, int) else torch.tensor(spec.mean, dtype=torch.float32)
        std = torch.ones(dim) if isinstance(spec, int) else torch.tensor(spec.std, dtype=torch.float32)
        if not cfg.znormalize:
            mean, std = torch.zeros(dim), torch.ones(dim)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @property
    def dim(self) -> int:
        return len(self.mean)

    def loss(self, z: Tensor) -> dict[str, Tensor]:
        """L1 (or MSE) on eps for a batch of raw codes z [B, D] (module doc)."""
        zn = (z - self.mean) / self.std
        t = torch.randint(0, self.schedule.num_steps, (z.shape[0],), device=z.device)
        noise = torch.randn_like(zn)
        pred = self.net(self.schedule.q_sample(zn, t, noise), t).float()
        loss = (pred - noise).abs().mean() if self.cfg.loss == "l1" else F.mse_loss(pred, noise)
        return {"loss": loss}

    def eps(self, z_t: Tensor, t: Tensor) -> Tensor:
        return self.net(z_t, t)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n raw codes [n, D]: z_T ~ N(0, I) from ``generator`` (CPU), the configured sampler, then denormalised."""
        z_T = randn((n, self.dim), generator, device=self.mean.device)
        if self.cfg.clip_noise:
            z_T = z_T.clamp(-1.0, 1.0)
        if self.cfg.sampler == "ddim":
            build = ddim.pdae_grid if self.cfg.grid == "pdae" else ddim.diffae_grid
            zn = ddim.sample(self.eps, z_T, build(self.schedule, self.cfg.sample_steps), clip=self.cfg.clip_x0)
        else:
            zn = ddpm_sample(self.eps, z_T, self.schedule, generator)
        return zn * self.std + self.mean


def load_prior(cfg: LatentConfig, artifact: Any, device: torch.device | None = None) -> LatentPrior:
    """The trained prior of a built ``latent`` stage artifact, in eval mode."""
    state = artifact.load_state()
    prior = LatentPrior(cfg, int(state["mean"].numel()))
    prior.load_state_dict(state)
    prior.requires_grad_(False).eval()
    return prior.to(device) if device is not None else prior
