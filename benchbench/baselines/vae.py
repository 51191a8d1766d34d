"""Shared Gaussian VAE with a Bernoulli decoder, the base of the β-VAE and InfoVAE baselines.

Reference: Locatello et al., "Challenging Common Assumptions in the Unsupervised Learning of
Disentangled Representations", ICML 2019, https://arxiv.org/abs/1811.12359 (disentanglement_lib
``methods/unsupervised/vae.py: BaseVAE``, whose subclasses differ only in ``regularizer``);
methods.md §2. The training objective for a batch x [N, C, H, W] in [-1, 1] is

    loss = mean_n [ sum_pixels BCE(logits_n, (x_n + 1) / 2) ] + regularizer(mu, logvar, z),

with z = mu + exp(logvar / 2) · eps, eps ~ N(0, I) (reparameterisation; Kingma & Welling, ICLR 2014).
The Bernoulli targets are in [0, 1], as in disentanglement_lib, not in [-1, 1].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from benchbench.datasets.base import DataSpec
from benchbench.method import Method, randn
from benchbench.nets.conv_vae import ConvDecoder, ConvEncoder


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Per-sample Bernoulli negative log-likelihood, summed over pixels.

    Args:
        logits: decoder output [N, C, H, W].
        x: images [N, C, H, W] in [-1, 1]; the targets are (x + 1) / 2 in [0, 1].
    Returns:
        [N] sum over C·H·W of the sigmoid cross-entropy (float32).
    """
    target = (x.float() + 1) / 2
    return F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").flatten(1).sum(1)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) ‖ N(0, I)) = ½ Σ_d (mu² + exp(logvar) − 1 − logvar); [N, D] -> [N]."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)


class GaussianVAE(Method):
    """Conv VAE with diagonal-Gaussian posterior and Bernoulli decoder; subclasses set ``regularizer``.

    ``cfg`` must have ``latent_dim``. Representation for metrics: the posterior mean (methods.md §8).

    Args:
        cfg: model config (a frozen dataclass with at least ``latent_dim``).
        spec: dataset facts (channels, resolution).
    """

    def __init__(self, cfg: Any, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.latent_dim = int(cfg.latent_dim)
        self.encoder = ConvEncoder(spec.channels, spec.resolution, self.latent_dim)
        self.decoder = ConvDecoder(self.latent_dim, spec.channels, spec.resolution)

    def regularizer(self, mu: Tensor, logvar: Tensor, z: Tensor) -> dict[str, Tensor]:
        """Penalty on the code, added to the reconstruction term.

        Args:
            mu, logvar: posterior parameters [N, D].
            z: reparameterised sample [N, D].
        Returns:
            {"reg": weighted scalar penalty (batch mean), **unweighted logged terms (scalars)}.
        """
        raise NotImplementedError

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Negative ELBO-style objective on x [N, C, H, W]; returns {"loss", "recon", "reg", ...}."""
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = bernoulli_nll(self.decoder(z), x).mean()
        terms = self.regularizer(mu, logvar, z)
        return {"loss": recon + terms["reg"], "recon": recon, **terms}

    def protocol(self) -> dict[str, str]:
        """The VAE baselines' generator and representation (methods.md §2)."""
        return {"representation": "posterior mean of q(z|x) (disentanglement_lib 'mean')",
                "generator": "z ~ N(0, I) decoded to the Bernoulli mean (sigmoid of the logits), mapped to [-1, 1]",
                "likelihood": "Bernoulli on [0, 1] targets, summed over pixels (disentanglement_lib)"}

    def celeba_deviation(self) -> list[str]:
        """On CelebA, InfoDiffusion's VAE rows used its own U-Net-shaped network and a per-pixel MSE (methods.md §2)."""
        if self.spec.family != "celeba":
            return []
        return ["CelebA: disentanglement_lib conv VAE with a Bernoulli loss; InfoDiffusion's published rows used its "
                "U-Net-shaped VAE with a per-pixel MSE loss"]

    def encode(self, x: Tensor) -> Tensor:
        """Posterior mean [N, D] of x [N, C, H, W]."""
        return self.encoder(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Codes z [N, D] -> Bernoulli means mapped to images [N, C, H, W] in [-1, 1]."""
        return torch.sigmoid(self.decoder(z).float()) * 2 - 1

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decoded posterior mean of x [N, C, H, W]: [N, C, H, W] in [-1, 1]."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode z ~ N(0, I) [n, D] drawn on the CPU from ``generator``: [n, C, H, W] in [-1, 1]."""
        return self.decode(randn((n, self.latent_dim), generator, device=self.device))

    @torch.no_grad()
    def traverse(self, x: Tensor, dim: int, values: Tensor) -> Tensor:
        """Set code dimension ``dim`` of each posterior mean to each of ``values`` [V] and decode.

        Args:
            x: images [N, C, H, W] in [-1, 1].
            dim: latent dimension in [0, D).
            values: [V] values for that dimension.
        Returns:
            [V, N, C, H, W] in [-1, 1].
        """
        if not 0 <= dim < self.latent_dim:
            raise ValueError(f"dim must be in [0, {self.latent_dim}), got {dim}")
        mu = self.encode(x)
        v, (n, d) = values.numel(), mu.shape
        z = mu.unsqueeze(0).repeat(v, 1, 1)  # [V, N, D]
        z[:, :, dim] = values.to(mu).reshape(v, 1)
        return self.decode(z.reshape(v * n, d)).reshape(v, n, *x.shape[1:])
