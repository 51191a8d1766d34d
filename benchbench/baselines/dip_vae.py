"""DIP-VAE-I and DIP-VAE-II baselines (``dipvae1``, ``dipvae2``).

Reference: Kumar, Sattigeri and Balakrishnan, "Variational Inference of Disentangled Latent Concepts from Unlabeled
Observations", ICLR 2018, https://openreview.net/pdf?id=H1kG7GZAW (Eqs. 6 and 7), as disentanglement_lib implements
them (``methods/unsupervised/vae.py: DIPVAE, compute_covariance_z_mean, regularize_diag_off_diag_dip``, commit
86a644d) on the β-VAE architecture (methods.md §2):

    recon + KL + λ_od Σ_{i≠j} M_ij² + λ_d Σ_i (M_ii − 1)²,
    DIP-VAE-I:  M = Cov_batch[mu(x)]                          (Eq. 6)
    DIP-VAE-II: M = E_batch[diag exp(logvar(x))] + Cov_batch[mu(x)]   (Eq. 7, the covariance of q(z))

with λ_d = lambda_d_factor · λ_od and the covariances biased (1/N) over the batch.

Grid of disentanglement_lib's study: λ_od ∈ {1, 2, 5, 10, 20, 50}; lambda_d_factor 10 (I) and 1 (II)
(``--set model.lambda_od=...``); λ_od = 10 is benchbench's default, not a published choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from benchbench.baselines.beta_vae import PAPER_TRAIN
from benchbench.baselines.beta_vae import PRESETS as BETA_PRESETS
from benchbench.baselines.vae import GaussianVAE
from benchbench.baselines.vae_losses import dip_covariance, dip_penalty, kl_mean
from benchbench.config import Preset
from benchbench.registry import register_method

GRID = {"model.lambda_od": (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)}


@dataclass(frozen=True)
class DIPVAEConfig:
    """DIP-VAE settings.

    Attributes:
        latent_dim: code size D (10 on ground-truth sets).
        lambda_od: weight of the off-diagonal penalty (grid in GRID).
        lambda_d_factor: λ_d / λ_od (10 for DIP-VAE-I, 1 for DIP-VAE-II in the study).
    """

    latent_dim: int = 10
    lambda_od: float = 10.0
    lambda_d_factor: float = 10.0


def _presets(lambda_d_factor: float) -> dict[str, object]:
    def cfg(**kw: int) -> DIPVAEConfig:
        return DIPVAEConfig(lambda_d_factor=lambda_d_factor, **kw)

    return {
        "smoke": Preset(cfg(latent_dim=4), BETA_PRESETS["smoke"].train),
        "quick": Preset(cfg(), BETA_PRESETS["quick"].train),  # the β-VAE's CPU schedule, not a paper setting
        "paper": {"default": Preset(cfg(), PAPER_TRAIN), "celeba": Preset(cfg(latent_dim=32), PAPER_TRAIN)},
    }


class _DIPVAE(GaussianVAE):
    """KL plus the DIP penalty on the matrix of ``dip_type`` (module doc)."""

    cfg: DIPVAEConfig
    dip_type = "i"

    def regularizer(self, mu: Tensor, logvar: Tensor, z: Tensor) -> dict[str, Tensor]:
        """{"reg": KL + DIP penalty, "kl", "dip"} for mu, logvar [N, D]."""
        kl = kl_mean(mu, logvar)
        cov = dip_covariance(mu, logvar, self.dip_type)
        dip = dip_penalty(cov, self.cfg.lambda_od, self.cfg.lambda_d_factor * self.cfg.lambda_od)
        return {"reg": kl + dip, "kl": kl, "dip": dip}


@register_method(
    "dipvae1", config=DIPVAEConfig, presets=_presets(10.0), description="DIP-VAE-I (Kumar et al. 2018), Cov[mu]"
)
class DIPVAE1(_DIPVAE):
    """DIP-VAE-I: the penalty on Cov[mu(x)] (Eq. 6)."""

    dip_type = "i"


@register_method(
    "dipvae2", config=DIPVAEConfig, presets=_presets(1.0), description="DIP-VAE-II (Kumar et al. 2018), Cov[z]"
)
class DIPVAE2(_DIPVAE):
    """DIP-VAE-II: the penalty on E[Cov(z|x)] + Cov[mu(x)] (Eq. 7)."""

    dip_type = "ii"
