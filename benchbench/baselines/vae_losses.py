"""The regularisers of disentanglement_lib's VAE family, as pure functions of the posterior and the code.

Reference: Locatello et al., "Challenging Common Assumptions in the Unsupervised Learning of Disentangled
Representations", ICML 2019, https://arxiv.org/abs/1811.12359; code ``methods/unsupervised/vae.py`` and
``methods/shared/architectures.py: fc_discriminator`` of google-research/disentanglement_lib (commit 86a644d).
Each function restates one TF function of that file; the tests pin their values on tiny tensors against a numpy
transcription of the TF code. Shapes: mu, logvar, z [N, D] (batch N, code D).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchbench.baselines.vae import gaussian_kl


def kl_mean(mu: Tensor, logvar: Tensor) -> Tensor:
    """``compute_gaussian_kl``: mean_n ½ Σ_d (mu² + exp(logvar) − logvar − 1), a scalar."""
    return gaussian_kl(mu, logvar).mean()


# Section: β-TCVAE (Chen et al., NeurIPS 2018, https://arxiv.org/abs/1802.04942).


def gaussian_log_density(samples: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """Elementwise log N(samples; mean, exp(log_var)) = −½ ((s − m)² e^{−log_var} + log_var + log 2π) (broadcasts)."""
    tmp = samples - mean
    return -0.5 * (tmp * tmp * torch.exp(-log_var) + log_var + math.log(2.0 * math.pi))


def total_correlation(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Minibatch-weighted-sampling estimate of TC(q(z)) on a batch, without its constant (``total_correlation``).

    With log q(z_j|x_i) = Σ_l log N(z_jl; mu_il, exp(logvar_il)) [j, i, l]:

        TC ≈ mean_j [ logsumexp_i Σ_l log q(z_jl|x_i) − Σ_l logsumexp_i log q(z_jl|x_i) ],

    Chen et al. 2018, Eq. 4 and §C (MWS); the dropped constant, (D − 1) · log(N · dataset size), does not change the
    gradient. z, mu, logvar: [N, D]; returns a scalar.
    """
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    log_qz_prob = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # [j, i, l]
    log_qz_product = torch.logsumexp(log_qz_prob, dim=1).sum(dim=1)  # [j]
    log_qz = torch.logsumexp(log_qz_prob.sum(dim=2), dim=1)  # [j]
    return (log_qz - log_qz_product).mean()


# Section: DIP-VAE (Kumar et al., ICLR 2018, https://openreview.net/pdf?id=H1kG7GZAW).


def covariance_z_mean(mu: Tensor) -> Tensor:
    """Cov_p(x)[mu(x)] = E[mu muᵀ] − E[mu] E[mu]ᵀ over the batch (biased, 1/N): mu [N, D] -> [D, D]."""
    mu = mu.float()
    e_mumu = (mu[:, :, None] * mu[:, None, :]).mean(0)
    e_mu = mu.mean(0)
    return e_mumu - e_mu[:, None] * e_mu[None, :]


def dip_penalty(cov: Tensor, lambda_od: float, lambda_d: float) -> Tensor:
    """``regularize_diag_off_diag_dip``: λ_od Σ_{i≠j} cov_ij² + λ_d Σ_i (cov_ii − 1)², cov [D, D] -> scalar."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.square().sum() + lambda_d * (diag - 1).square().sum()


def dip_covariance(mu: Tensor, logvar: Tensor, dip_type: str) -> Tensor:
    """The matrix DIP-VAE pushes to the identity: "i" Cov[mu] (Eq. 6), "ii" E[diag exp(logvar)] + Cov[mu] (Eq. 7)."""
    cov = covariance_z_mean(mu)
    if dip_type == "i":
        return cov
    if dip_type == "ii":
        return torch.diag(logvar.float().exp().mean(0)) + cov
    raise ValueError(f"DIP variant must be 'i' or 'ii', got {dip_type!r}")


# Section: AnnealedVAE (Burgess et al. 2018, https://arxiv.org/abs/1804.03599).


def annealed_capacity(c_max: float, step: Tensor | int, iteration_threshold: int) -> Tensor:
    """``anneal``: C(step) = min(c_max, c_max · step / iteration_threshold), growing linearly from 0 (float32)."""
    step = torch.as_tensor(step).to(torch.float32)  # stays on the step's device (no sync in the training step)
    return (c_max * 1.0 * step / iteration_threshold).clamp(max=c_max * 1.0)


def annealed_penalty(kl: Tensor, capacity: Tensor, gamma: float) -> Tensor:
    """γ · |KL − C| (Burgess et al. 2018, Eq. 8), KL the batch mean of the summed-over-dims KL."""
    return gamma * (kl - capacity.to(kl)).abs()


# Section: FactorVAE (Kim & Mnih, ICML 2018, https://arxiv.org/abs/1802.05983).


def shuffle_codes(z: Tensor) -> Tensor:
    """``shuffle_codes``: each code dimension permuted independently across the batch (torch RNG), z [N, D]."""
    n = z.shape[0]
    idx = torch.stack([torch.randperm(n, device=z.device) for _ in range(z.shape[1])], dim=1)  # [N, D]
    return torch.gather(z, 0, idx)


class TCDiscriminator(nn.Module):
    """``fc_discriminator`` (Kim & Mnih 2018, Appendix A): 6 dense layers of 1000 leaky-ReLU units, 2 logits.

    Column 0 scores "sample of q(z)", column 1 "sample of Π_j q(z_j)". TF's leaky ReLU slope 0.2 and its dense-layer
    initialisation (Glorot-uniform kernels, zero biases) are kept. z [N, D] -> logits [N, 2].
    """

    def __init__(self, latent_dim: int, width: int = 1000, depth: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(c_in, width), nn.LeakyReLU(0.2)]
            c_in = width
        layers.append(nn.Linear(c_in, 2))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.float())


def factor_tc(logits_z: Tensor) -> Tensor:
    """The discriminator's TC estimate mean_n (logit_n0 − logit_n1) = E[log D(z) − log(1 − D(z))], a scalar."""
    return (logits_z[:, 0] - logits_z[:, 1]).mean()


def discriminator_loss(logits_z: Tensor, logits_shuffled: Tensor) -> Tensor:
    """The discriminator minimises −(½ mean log p_z[:, 0] + ½ mean log p_perm[:, 1]) (the reference's −discr_loss);
    p = softmax(logits), computed as log_softmax. logits [N, 2] each; returns a scalar."""
    return -(0.5 * F.log_softmax(logits_z, 1)[:, 0].mean() + 0.5 * F.log_softmax(logits_shuffled, 1)[:, 1].mean())
