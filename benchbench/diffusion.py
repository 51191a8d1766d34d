"""Gaussian diffusion on the papers' symbols: schedules, q_sample, the true posterior, x0/eps conversions.

Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, https://arxiv.org/abs/2006.11239.
Notation (methods.md): beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod_{s<=t} alpha_s (alpha_bar_{-1} = 1),
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Eq. 4). Timesteps are 0-based: t in {0..T-1}.
The schedule keeps float64 tables and gathers them per batch, so the methods and the posterior-mean-gap
metric share one set of coefficients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Schedule:
    """A discrete noise schedule and the coefficients derived from it (float64 tables [T]).

    Attributes (all [T], float64): betas, alphas, alphas_bar, alphas_bar_prev, posterior_variance,
    posterior_coef_x0 (c0_t), posterior_coef_xt (ct_t), snr, pdae_shift_coef.
    """

    betas: Tensor
    alphas: Tensor = field(init=False, repr=False)
    alphas_bar: Tensor = field(init=False, repr=False)
    alphas_bar_prev: Tensor = field(init=False, repr=False)
    posterior_variance: Tensor = field(init=False, repr=False)
    posterior_coef_x0: Tensor = field(init=False, repr=False)
    posterior_coef_xt: Tensor = field(init=False, repr=False)
    snr: Tensor = field(init=False, repr=False)
    pdae_shift_coef: Tensor = field(init=False, repr=False)

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
        """DDPM's linear schedule (Ho et al. 2020, §4: 1e-4 -> 0.02 over T = 1000)."""
        return cls(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64, device="cpu"))

    @classmethod
    def ldm_linear(cls, num_steps: int = 1000, beta_start: float = 0.0015, beta_end: float = 0.0155) -> Schedule:
        """Latent diffusion's "linear" schedule: linspace(sqrt(start), sqrt(end))^2 (methods.md §6.1)."""
        return cls(torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64, device="cpu") ** 2)

    @classmethod
    def constant(cls, num_steps: int = 1000, beta: float = 0.008) -> Schedule:
        """Constant beta (Diff-AE's latent DDIM, methods.md §4)."""
        return cls(torch.full((num_steps,), beta, dtype=torch.float64, device="cpu"))

    def __post_init__(self) -> None:
        # The tables are constants on the CPU whatever device context builds the model (``describe`` builds on the
        # meta device, where a table would hold no values).
        b = self.betas.to("cpu", torch.float64) if self.betas.device.type != "meta" else None
        if b is None:
            raise ValueError("a Schedule needs concrete betas, not meta tensors")
        a = 1.0 - b
        ab = torch.cumprod(a, dim=0)
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64, device="cpu"), ab[:-1]])
        tables = {
            "alphas": a,
            "alphas_bar": ab,
            "alphas_bar_prev": ab_prev,  # alpha_bar_{t-1}, with alpha_bar_{-1} = 1
            # beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)  (Ho et al. Eq. 7)
            "posterior_variance": b * (1.0 - ab_prev) / (1.0 - ab),
            # mu_tilde_t = c0_t x_0 + ct_t x_t with the two coefficients of Eq. 7
            "posterior_coef_x0": b * ab_prev.sqrt() / (1.0 - ab),
            "posterior_coef_xt": (1.0 - ab_prev) * a.sqrt() / (1.0 - ab),
            "snr": ab / (1.0 - ab),  # SNR_t = alpha_bar_t / (1 - alpha_bar_t)
            # PDAE's mean shift Sigma_t G in eps form: eps_hat = eps_theta - coef_t G (methods.md §5)
            "pdae_shift_coef": a.sqrt() * (1.0 - ab_prev) / (1.0 - ab).sqrt(),
        }
        object.__setattr__(self, "betas", b)
        for name, table in tables.items():
            object.__setattr__(self, name, table)

    @property
    def num_steps(self) -> int:
        return len(self.betas)

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


# Generic samplers. ``eps_fn(x_t, t) -> eps`` wraps any noise predictor (conditional ones close over their code).
# The methods sample as their official code does with :mod:`benchbench.ddim` (explicit grids, per-step clipping);
# these plain versions (respaced grid ending at ab = 1, inversion from ab = 1, no clipping) remain for tests and tools.
EpsFn = Callable[[Tensor, Tensor], Tensor]


def respaced_timesteps(num_steps: int, sample_steps: int) -> np.ndarray:
    """Evenly spaced subset of {0..T-1} with ``sample_steps`` entries, ascending, always including 0
    (Diff-AE/guided-diffusion ``ddimK`` spacing when K divides T)."""
    if not 1 <= sample_steps <= num_steps:
        raise ValueError(f"sample_steps must be in 1..{num_steps}, got {sample_steps}")
    if num_steps % sample_steps == 0:
        return np.arange(0, num_steps, num_steps // sample_steps)
    return np.unique(np.round(np.linspace(0, num_steps - 1, sample_steps)).astype(np.int64))


def _ab(schedule: Schedule, t: int) -> float:
    return 1.0 if t < 0 else float(schedule.alphas_bar[t])


@torch.no_grad()
def ddim_sample(
    eps_fn: EpsFn,
    x_t: Tensor,
    schedule: Schedule,
    sample_steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    start_t: int | None = None,
) -> Tensor:
    """DDIM (Song et al., ICLR 2021, https://arxiv.org/abs/2010.02502, Eq. 12) from x_T down to x_0.

    x_{t'} = sqrt(ab_{t'}) x0_hat + sqrt(1 - ab_{t'} - sigma^2) eps + sigma n,
    sigma = eta sqrt((1 - ab_{t'}) / (1 - ab_t)) sqrt(1 - ab_t / ab_{t'}), with t' the previous respaced step.

    Args:
        eps_fn: noise predictor.
        x_t: [B, ...] start (x_T ~ N(0, I), or a DDIM code from ``ddim_encode``).
        schedule: noise schedule.
        sample_steps: number of respaced steps.
        eta: 0 = deterministic DDIM, 1 = DDPM-like.
        generator: CPU generator for the eta > 0 noise.
        start_t: the step x_t belongs to (default T - 1).
    Returns:
        x_0 estimate [B, ...] (no clipping).
    """
    seq = respaced_timesteps(schedule.num_steps, sample_steps)
    if start_t is not None:
        seq = seq[seq <= start_t]
    x = x_t
    for i in range(len(seq) - 1, -1, -1):
        t, t_prev = int(seq[i]), int(seq[i - 1]) if i > 0 else -1
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        eps = eps_fn(x, tt).to(x.dtype)
        ab, ab_prev = _ab(schedule, t), _ab(schedule, t_prev)
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab**0.5
        sigma = eta * ((1 - ab_prev) / (1 - ab)) ** 0.5 * (1 - ab / ab_prev) ** 0.5 if t_prev >= 0 else 0.0
        x = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return x


@torch.no_grad()
def ddim_encode(eps_fn: EpsFn, x0: Tensor, schedule: Schedule, sample_steps: int) -> Tensor:
    """Deterministic DDIM inversion x_0 -> x_T (the ODE of Song et al. 2021 run forward; Diff-AE Sec. 3.2).

    x_{t_next} = sqrt(ab_next) x0_hat(x_t, t) + sqrt(1 - ab_next) eps(x_t, t), from x_0 (t = -1) upward.
    """
    seq = respaced_timesteps(schedule.num_steps, sample_steps)
    x = x0
    prev = -1
    for t in seq:
        t = int(t)
        # eps is predicted at the current point and step; x_0 itself is queried at the first step (t = 0),
        # so that the last sampler step of ``ddim_sample`` mirrors this first inversion step.
        tt = torch.full((x.shape[0],), max(prev, int(seq[0])), device=x.device, dtype=torch.long)
        eps = eps_fn(x, tt).to(x.dtype)
        ab_cur, ab_next = _ab(schedule, prev), _ab(schedule, t)
        x0_hat = (x - (1 - ab_cur) ** 0.5 * eps) / ab_cur**0.5
        x = ab_next**0.5 * x0_hat + (1 - ab_next) ** 0.5 * eps
        prev = t
    return x


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, x_T: Tensor, schedule: Schedule, generator: torch.Generator | None = None) -> Tensor:
    """Ancestral DDPM sampling over all T steps (Ho et al. 2020, Algorithm 2) with variance beta_tilde_t."""
    x = x_T
    for t in range(schedule.num_steps - 1, -1, -1):
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        eps = eps_fn(x, tt).to(x.dtype)
        x0 = schedule.predict_x0(x, tt, eps)
        x = schedule.posterior_mean(x0, x, tt)
        if t > 0:
            noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
            x = x + float(schedule.posterior_variance[t]) ** 0.5 * noise
    return x
