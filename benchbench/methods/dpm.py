"""The unconditional DPM stage (``ddpm``): the frozen pre-trained model PDAE and image-space DisDiff build on.

Reference: Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, https://arxiv.org/abs/2006.11239:
linear beta 1e-4 -> 0.02 over T = 1000 (Sec. 4), eps-prediction trained with the simple loss (Eq. 14)

    L_simple = E_{t ~ U{0..T-1}, x_0, eps} mean_pixels || eps - eps_theta(sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps, t) ||^2,

sampled with DDIM (Song et al., ICLR 2021, https://arxiv.org/abs/2010.02502, Eq. 12) as PDAE samples its pre-trained
DPMs (``test_pretrained_dpms``: :func:`benchbench.ddim.pdae_grid`, x0_hat clipped every step). The network is the
ADM-style UNet of :mod:`benchbench.nets.unet`; for 64×64 data its defaults are the Diff-AE CelebA-64 UNet, so PDAE and
Diff-AE share a decoder (methods.md §5, "benchbench choices"). The stage is cached per (dataset, data options,
DPMConfig, stage seed) by :mod:`benchbench.stages`; :func:`ddpm_request` is the one place that request is built, so
every method that needs the DPM shares one artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from benchbench import ddim
from benchbench.config import TrainConfig
from benchbench.datasets.base import DataConfig, DataSpec
from benchbench.diffusion import Schedule
from benchbench.errors import ConfigError
from benchbench.method import Method, randn
from benchbench.nets.unet import UNet, UNetConfig
from benchbench.stages import StageRequest, register_stage


@dataclass(frozen=True)
class DPMConfig:
    """An unconditional eps-prediction DPM and the training settings of its stage.

    Attributes:
        unet: the noise predictor; ``in_channels``/``out_channels``/``resolution`` must match the dataset
            (a preset sets them together with ``data.resolution``).
        num_steps: diffusion length T.
        beta_start, beta_end: linear beta schedule (Ho et al. 2020: 1e-4 -> 0.02).
        sample_steps: DDIM steps of :meth:`DPM.sample`.
        train: the stage's own training loop settings (independent of the method that asks for it).
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    num_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    sample_steps: int = 50
    train: TrainConfig = field(default_factory=TrainConfig)

    def schedule(self) -> Schedule:
        return Schedule.linear(self.num_steps, self.beta_start, self.beta_end)


def check_image_nets(method: str, nets: tuple[tuple[str, Any], ...], spec: DataSpec) -> None:
    """ConfigError naming the override to set when a network ``model.<name>`` (any config with ``resolution`` and
    ``in_channels``) is not built for the images of ``spec``."""
    for name, sub in nets:
        if sub.resolution != spec.resolution or sub.in_channels != spec.channels:
            raise ConfigError(
                f"{method}: model.{name} is built for {sub.in_channels}x{sub.resolution}x{sub.resolution} images but "
                f"{spec.name!r} yields {spec.channels}x{spec.resolution}x{spec.resolution}; set --set "
                f"data.resolution={sub.resolution} or change model.unet.resolution and model.encoder.resolution"
            )


def check_unet(unet: UNetConfig, spec: DataSpec, key: str) -> None:
    """Raise a ConfigError naming the override to set when ``unet`` does not fit the images of ``spec``."""
    if unet.resolution != spec.resolution:
        raise ConfigError(
            f"{key}.resolution is {unet.resolution} but {spec.name} images are {spec.resolution}x{spec.resolution}; "
            f"add --set {key}.resolution={spec.resolution}"
        )
    if unet.in_channels != spec.channels or unet.out_channels != spec.channels:
        raise ConfigError(f"{key} in/out channels must equal the dataset's {spec.channels} channels")
    if unet.cond_dim:
        raise ConfigError(f"{key}.cond_dim must be 0: the DPM stage is unconditional")


@register_stage("ddpm", description="unconditional eps-prediction DPM (Ho et al. 2020)")
class DPM(Method):
    """eps_theta(x_t, t): an unconditional DDPM trained with L_simple (Ho et al. 2020, Eq. 14).

    Built as a stage: ``DPM(cfg, spec, deps)`` (``deps`` is unused: the DPM depends on no other stage).
    """

    cfg: DPMConfig

    def __init__(self, cfg: DPMConfig, spec: DataSpec, deps: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, spec)
        check_unet(cfg.unet, spec, "model.dpm.unet")
        self.unet = UNet(cfg.unet)
        self.schedule = cfg.schedule()

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """L_simple on a batch x [N, C, H, W]: t ~ U{0..T-1}, one Gaussian noise per image."""
        t = torch.randint(0, self.schedule.num_steps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(x)
        x_t = self.schedule.q_sample(x, t, noise)
        mse = F.mse_loss(self.unet(x_t, t).float(), noise.float())
        return {"loss": mse}

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        """eps_theta(x_t, t): x_t [N, C, H, W], t [N] -> [N, C, H, W]."""
        return self.unet(x_t, t)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples [n, C, H, W] in [-1, 1] by PDAE's deterministic DDIM (``sample_steps``) from CPU-drawn x_T."""
        c, r = self.spec.channels, self.spec.resolution
        x_T = randn((n, c, r, r), generator, device=self.device)
        grid = ddim.pdae_grid(self.schedule, self.cfg.sample_steps)
        return ddim.sample(self.eps, x_T, grid, clip=True).clamp(-1, 1)


def ddpm_request(dataset: str, data: DataConfig, dpm: DPMConfig, seed: int = 0) -> StageRequest:
    """The ``ddpm`` stage for ``dataset`` with options ``data``: one artifact per (dataset, data, dpm, seed).

    The stage seed is the stage's own (default 0), independent of the run seed, so every seed of every run
    that needs this DPM reuses one artifact (methods.md §5).
    """
    return StageRequest(kind="ddpm", dataset=dataset, data=data, config=dpm, seed=seed)
