"""AnnealedVAE baseline (``annealedvae``): β-VAE with a linearly growing capacity target.

Reference: Burgess et al., "Understanding disentangling in β-VAE", 2018, https://arxiv.org/abs/1804.03599 (Eq. 8),
as disentanglement_lib implements it (``methods/unsupervised/vae.py: AnnealedVAE, anneal``, commit 86a644d) on the
β-VAE architecture (methods.md §2):

    recon + γ · |KL − C(s)|,   C(s) = min(C_max, C_max · s / iteration_threshold),

s the 0-based index of the optimiser step (TF's global step before its update). The step count is a buffer of the
model, so it is saved with checkpoints and a resumed run continues the schedule exactly.

Grid of disentanglement_lib's study: C_max ∈ {5, 10, 25, 50, 75, 100}, γ = 1000, iteration_threshold = 100,000 of
300,000 steps (``--set model.c_max=...``); C_max = 25 is benchbench's default, not a published choice. The quick and
smoke presets keep the threshold at a third of their training length; quick uses γ = 10 (see PRESETS).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchbench.baselines.beta_vae import PAPER_TRAIN
from benchbench.baselines.beta_vae import PRESETS as BETA_PRESETS
from benchbench.baselines.vae import GaussianVAE
from benchbench.baselines.vae_losses import annealed_capacity, annealed_penalty, kl_mean
from benchbench.config import Preset
from benchbench.datasets.base import DataSpec
from benchbench.errors import ConfigError
from benchbench.registry import register_method

GRID = {"model.c_max": (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)}


@dataclass(frozen=True)
class AnnealedVAEConfig:
    """AnnealedVAE settings.

    Attributes:
        latent_dim: code size D (10 on ground-truth sets).
        gamma: γ, the weight of |KL − C| (1000 in the study).
        c_max: final capacity C_max in nats (grid in GRID).
        iteration_threshold: steps until C reaches C_max (100,000 in the study).
    """

    latent_dim: int = 10
    gamma: float = 1000.0
    c_max: float = 25.0
    iteration_threshold: int = 100_000

    def __post_init__(self) -> None:
        if self.iteration_threshold < 1:
            raise ConfigError(f"annealedvae: model.iteration_threshold must be >= 1, got {self.iteration_threshold}")


PRESETS = {
    "smoke": Preset(AnnealedVAEConfig(latent_dim=4, iteration_threshold=7), BETA_PRESETS["smoke"].train),
    # The β-VAE's CPU schedule (700 steps), threshold at a third of it as in the study, and γ = 10: not a paper
    # setting. The L1 penalty's gradient is ±γ ∂KL/∂θ however close KL is to C, so at the study's γ = 1000 it drowns
    # the reconstruction signal for far longer than 700 steps (dsprites-synth, one seed: γ = 1000, γ = 100, a
    # threshold of 700 steps and lr 3e-4 all stayed at the mean-image plateau, reconstruction ≈ 450-500 nats with
    # KL held at C by shrinking σ, FactorVAE score 0 with every dim pruned, 0.20 with one dim left at γ = 100;
    # γ = 10 reconstructed at 71 nats with KL 23 of C = 25 and FactorVAE 0.40 against the random floor's 0.29).
    "quick": Preset(AnnealedVAEConfig(gamma=10.0, iteration_threshold=233), BETA_PRESETS["quick"].train),
    "paper": {
        "default": Preset(AnnealedVAEConfig(), PAPER_TRAIN),
        "celeba": Preset(AnnealedVAEConfig(latent_dim=32), PAPER_TRAIN),
    },
}


@register_method(
    "annealedvae",
    config=AnnealedVAEConfig,
    presets=PRESETS,
    description="AnnealedVAE (Burgess et al. 2018), γ|KL − C| with C annealed",
)
class AnnealedVAE(GaussianVAE):
    """γ · |KL − C(step)| on the Gaussian conv VAE; ``num_steps`` counts training-mode loss calls."""

    cfg: AnnealedVAEConfig
    num_steps: Tensor

    def __init__(self, cfg: AnnealedVAEConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.long))

    def regularizer(self, mu: Tensor, logvar: Tensor, z: Tensor) -> dict[str, Tensor]:
        """{"reg": γ |KL − C|, "kl", "capacity"}; in training mode the step counter advances after use."""
        kl = kl_mean(mu, logvar)
        capacity = annealed_capacity(self.cfg.c_max, self.num_steps, self.cfg.iteration_threshold).to(kl)
        if self.training:
            self.num_steps += 1
        return {"reg": annealed_penalty(kl, capacity, self.cfg.gamma), "kl": kl, "capacity": capacity}
