"""Gaussian diffusion on the papers' symbols: schedules, q_sample, the true posterior, x0/eps conversions.

Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, https://arxiv.org/abs/2006.11239.
Notation (methods.md): beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod_{s<=t} alpha_s (alpha_bar_{-1} = 1),
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Eq. 4). Timesteps are 0-based: t in {0..T-1}.
The schedule keeps float64 tables and gathers them per batch, so the methods and the posterior-mean-gap
metric share one set of coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Schedule:
    """A discrete noise schedule and the coefficients derived from it (float64 tables [T])."""

    betas: Tensor

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
        """DDPM's linear schedule (Ho et al. 2020, §4: 1e-4 -> 0.02 over T = 1000)."""
        return cls(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))

    @classmethod
    def ldm_linear(cls, num_steps: int = 1000, beta_start: float = 0.0015, beta_end: float = 0.0155) -> Schedule:
        """Latent diffusion's "linear" schedule: linspace(sqrt(start), sqrt(end))^2 (methods.md §6.1)."""
        return cls(torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2)

    @classmethod
    def constant(cls, num_steps: int = 1000, beta: float = 0.008) -> Schedule:
        """Constant beta (Diff-AE's latent DDIM, methods.md §4)."""
        return cls(torch.full((num_steps,), beta, dtype=torch.float64))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> Tensor:
        return 1.0 - self.betas

    @property
    def alphas_bar(self) -> Tensor:
        return torch.cumprod(self.alphas, dim=0)

    @property
    def alphas_bar_prev(self) -> Tensor:
        """alpha_bar_{t-1}, with alpha_bar_{-1} = 1."""
        return torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_bar[:-1]])

    @property
    def posterior_variance(self) -> Tensor:
        """beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) (Ho et al. Eq. 7)."""
        return self.betas * (1.0 - self.alphas_bar_prev) / (1.0 - self.alphas_bar)

    @property
    def posterior_coef_x0(self) -> Tensor:
        """c0_t = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) (Eq. 7)."""
        return self.betas * self.alphas_bar_prev.sqrt() / (1.0 - self.alphas_bar)

    @property
    def posterior_coef_xt(self) -> Tensor:
        """ct_t = (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t) (Eq. 7)."""
        return (1.0 - self.alphas_bar_prev) * self.alphas.sqrt() / (1.0 - self.alphas_bar)

    @property
    def snr(self) -> Tensor:
        """SNR_t = alpha_bar_t / (1 - alpha_bar_t)."""
        return self.alphas_bar / (1.0 - self.alphas_bar)

    @property
    def pdae_shift_coef(self) -> Tensor:
        """sqrt(alpha_t)(1 - alpha_bar_{t-1}) / sqrt(1 - alpha_bar_t): eps_hat = eps_theta - coef * G
        (PDAE's mean shift Sigma_t G written in eps form; methods.md §5)."""
        return self.alphas.sqrt() * (1.0 - self.alphas_bar_prev) / (1.0 - self.alphas_bar).sqrt()

    def gather(self, table: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """table[t] as [B, 1, ..., 1] broadcastable against ``like`` [B, ...], in ``like``'s dtype/device."""
        out = table.to(t.device)[t].to(like.dtype)
        return out.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise (Eq. 4). Shapes [B, ...]; t [B]."""
        ab = self.gather(self.alphas_bar, t, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def predict_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (no clipping)."""
        ab = self.gather(self.alphas_bar, t, x_t)
        return (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()

    def predict_eps(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
        ab = self.gather(self.alphas_bar, t, x_t)
        return (x_t - ab.sqrt() * x0) / (1.0 - ab).sqrt()

    def posterior_mean(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """mu_tilde_t(x_t, x0) = c0_t x0 + ct_t x_t (Eq. 7)."""
        return self.gather(self.posterior_coef_x0, t, x0) * x0 + self.gather(self.posterior_coef_xt, t, x_t) * x_t
