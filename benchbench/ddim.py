"""DDIM on explicit timestep grids: each method's sampler and inversion as its official code runs them.

Song et al., "Denoising Diffusion Implicit Models", ICLR 2021, https://arxiv.org/abs/2010.02502, Eq. 12:

    x0_hat = (x - sqrt(1 - ab) eps) / sqrt(ab)                       [clipped to [-1, 1] when ``clip``]
    eps'   = (x - sqrt(ab) x0_hat) / sqrt(1 - ab)                    (eps re-derived from the clipped x0_hat)
    x'     = sqrt(ab') x0_hat + sqrt(1 - ab' - sigma^2) eps' + sigma n,
    sigma  = eta sqrt((1 - ab') / (1 - ab)) sqrt(1 - ab / ab'),

where ab is the level x is at and ab' the level it moves to. The official codes differ in which timesteps they query
the network at, which level x is taken to be at there, where the last step goes, whether x0_hat is clipped and eta.
A :class:`DDIMGrid` holds exactly that: network timesteps ``t`` [K] (ascending), levels ``ab`` [K] and the level
``end`` after the last step. :func:`sample` walks it from t[-1] down (x' of step i is at ab[i - 1], of the last step
at ``end``); :func:`invert` walks it from t[0] up (x starts at ab[0], step i moves to ab[i + 1], the last to ``end``).

The grid builders below (each cites its official file) and the convention each method uses:

    Diff-AE   sample  t = {0, s, 2s, ...} (``space_timesteps`` "ddimK"), ab = ab_t, end = 1, clip
              invert  the same t, end = 0 (``ddim_reverse_sample_loop``: x_0 taken at ab_0, the last step to 0), clip
    PDAE      map = int(linspace(0, T - 1, K + 1)); sample t = map[1:], end = ab_{map[0]}; invert t = map[:-1],
              end = ab_{map[-1]}; clip in both (``diffusion/ddim.py``)
    LDM       t = {0, c, 2c, ...} + 1 (``make_ddim_timesteps`` "uniform"), end = ab_0, no clip (DisDiff's DDIMSampler)
    InfoDiff. all T steps, network at t, level ab_{t-1} (ab_{-1} = 1), end = 1, eta 0.01 (``sampling.py``)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from benchbench.diffusion import Schedule

EpsFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class DDIMGrid:
    """Network timesteps ``t`` [K] int64 (ascending), levels ``ab`` [K] float64, level ``end`` after the last step."""

    t: np.ndarray
    ab: np.ndarray
    end: float

    def __post_init__(self) -> None:
        if len(self.t) != len(self.ab) or len(self.t) < 1:
            raise ValueError("a DDIM grid needs as many levels as timesteps, at least one")


def _levels(schedule: Schedule, t: np.ndarray) -> np.ndarray:
    return schedule.alphas_bar.numpy()[t]


def ddim_stride_timesteps(num_steps: int, sample_steps: int) -> np.ndarray:
    """Diff-AE / guided-diffusion ``space_timesteps(T, "ddimK")``: range(0, T, i) for the smallest integer stride i
    giving exactly K steps (phizaz/diffae ``diffusion/diffusion.py``). K = T gives every step."""
    if not 1 <= sample_steps <= num_steps:
        raise ValueError(f"sample_steps must be in 1..{num_steps}, got {sample_steps}")
    for stride in range(1, num_steps + 1):
        if len(range(0, num_steps, stride)) == sample_steps:
            return np.arange(0, num_steps, stride)
    raise ValueError(f"no integer stride gives exactly {sample_steps} of {num_steps} steps (Diff-AE's ddimK rule)")


def diffae_grid(schedule: Schedule, sample_steps: int, invert: bool = False) -> DDIMGrid:
    """Diff-AE's respaced DDIM (phizaz/diffae ``diffusion/base.py``: ``ddim_sample_loop`` ends at ab = 1,
    ``ddim_reverse_sample_loop`` starts with x_0 at ab_{t_0} and ends at ``alphas_cumprod_next`` = 0)."""
    t = ddim_stride_timesteps(schedule.num_steps, sample_steps)
    return DDIMGrid(t, _levels(schedule, t), 0.0 if invert else 1.0)


def pdae_timestep_map(num_steps: int, sample_steps: int) -> np.ndarray:
    """PDAE's ``get_ddim_betas_and_timestep_map``: sorted {int(s) for s in linspace(0, T - 1, K + 1)}
    (ckczzj/PDAE ``diffusion/gaussian_diffusion.py``); K + 1 entries, 0 and T - 1 included."""
    if not 1 <= sample_steps < num_steps:
        raise ValueError(f"sample_steps must be in 1..{num_steps - 1}, got {sample_steps}")
    return np.array(sorted({int(s) for s in np.linspace(0, num_steps - 1, sample_steps + 1)}), dtype=np.int64)


def pdae_grid(schedule: Schedule, sample_steps: int, invert: bool = False) -> DDIMGrid:
    """PDAE's DDIM (ckczzj/PDAE ``diffusion/ddim.py``): sampling queries map[K..1] and ends at ab_{map[0]} = ab_0
    ("treat ending point x_0 as output"); encoding starts with the data at ab_{map[0]}, queries map[0..K-1] and
    ends at ab_{map[K]}."""
    m = pdae_timestep_map(schedule.num_steps, sample_steps)
    ab = _levels(schedule, m)
    if invert:
        return DDIMGrid(m[:-1], ab[:-1], float(ab[-1]))
    return DDIMGrid(m[1:], ab[1:], float(ab[0]))


def ldm_timesteps(num_steps: int, sample_steps: int) -> np.ndarray:
    """LDM ``make_ddim_timesteps("uniform", K, T)``: range(0, T, T // K) + 1 (ThomasMrY/DisDiff
    ``ldm/modules/diffusionmodules/util.py``; {1, 101, ..., 901} for K = 10)."""
    if not 1 <= sample_steps <= num_steps:
        raise ValueError(f"sample_steps must be in 1..{num_steps}, got {sample_steps}")
    t = np.arange(0, num_steps, num_steps // sample_steps) + 1
    return t[t < num_steps]


def ldm_grid(schedule: Schedule, sample_steps: int, invert: bool = False) -> DDIMGrid:
    """LDM's DDIMSampler (ThomasMrY/DisDiff ``ldm/models/diffusion/ddim.py``): queries the +1-offset grid, the last
    step goes to ``ddim_alphas_prev[0]`` = ab_0. The reference has no inversion; ours (benchbench choice) mirrors the
    sampler: the data at ab_0, queried at t = 0 and at the grid's steps but the last, ending at the last level."""
    t = ldm_timesteps(schedule.num_steps, sample_steps)
    if invert:
        t_inv = np.concatenate([[0], t[:-1]])
        return DDIMGrid(t_inv, _levels(schedule, t_inv), float(_levels(schedule, t[-1:])[0]))
    return DDIMGrid(t, _levels(schedule, t), float(schedule.alphas_bar[0]))


def infodiffusion_grid(schedule: Schedule, invert: bool = False) -> DDIMGrid:
    """InfoDiffusion's deterministic loop (isjakewong/InfoDiffusion ``sampling.py: _ddim_one_diffusion_step``): every
    step, the network queried at t while x is taken at ``alpha_prev_bars[t]`` = ab_{t-1} (ab_{-1} = 1; the indexing
    quirk), the last step to ab_{-1} = 1. Its t = 0 query is a no-op (x0_hat = x at level 1) and is left out.
    Inversion (``_ddim_one_reverse_diffusion_step``) queries t = 1..T-2 from level ab_0 and ends at ab_{T-2}."""
    n = schedule.num_steps
    ab = schedule.alphas_bar.numpy()
    if invert:
        t = np.arange(1, n - 1)
        return DDIMGrid(t, ab[t - 1], float(ab[n - 2]))
    t = np.arange(1, n)
    return DDIMGrid(t, ab[t - 1], 1.0)


def uniform_grid(schedule: Schedule, sample_steps: int) -> DDIMGrid:
    """Diff-AE's stride grid ending at ab = 1 (the sampler of the unconditional DPM stages and of InfoDiffusion's
    ``sampler="ddim"``)."""
    return diffae_grid(schedule, sample_steps)


def _step(x: Tensor, eps: Tensor, ab: float, ab_next: float, clip: bool, sigma: float = 0.0,
          noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One DDIM move of x [B, ...] from level ab to ab_next (module doc); returns (x', x0_hat)."""
    x0 = (x - (1.0 - ab) ** 0.5 * eps) / ab**0.5
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
        eps = (x - ab**0.5 * x0) / (1.0 - ab) ** 0.5
    out = ab_next**0.5 * x0 + max(1.0 - ab_next - sigma**2, 0.0) ** 0.5 * eps
    if sigma > 0 and noise is not None:
        out = out + sigma * noise
    return out, x0


@torch.no_grad()
def sample(eps_fn: EpsFn, x: Tensor, grid: DDIMGrid, eta: float = 0.0, clip: bool = False,
           generator: torch.Generator | None = None, trajectory: list[Tensor] | None = None) -> Tensor:
    """DDIM from x [B, ...] at level ab[-1] down the grid to level ``end``.

    Args:
        eps_fn: noise predictor (x_t, t [B]) -> eps.
        eta: 0 deterministic; > 0 adds sigma n with n drawn on the CPU from ``generator``.
        clip: clip x0_hat to [-1, 1] at every step (and re-derive eps from it).
        trajectory: if given, receives x0_hat of every step (first step first).
    Returns:
        x at level ``end`` [B, ...] (not clamped).
    """
    for i in range(len(grid.t) - 1, -1, -1):
        ab, ab_next = float(grid.ab[i]), (float(grid.ab[i - 1]) if i else grid.end)
        tt = torch.full((x.shape[0],), int(grid.t[i]), device=x.device, dtype=torch.long)
        eps = eps_fn(x, tt).to(x.dtype)
        sigma = eta * ((1 - ab_next) / (1 - ab)) ** 0.5 * max(1 - ab / ab_next, 0.0) ** 0.5 if eta > 0 else 0.0
        noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype) if sigma > 0 else None
        x, x0 = _step(x, eps, ab, ab_next, clip, sigma, noise)
        if trajectory is not None:
            trajectory.append(x0)
    return x


@torch.no_grad()
def invert(eps_fn: EpsFn, x: Tensor, grid: DDIMGrid, clip: bool = False,
           trajectory: list[Tensor] | None = None) -> Tensor:
    """Deterministic DDIM inversion: x [B, ...] taken at level ab[0], up the grid to level ``end`` (the code x_T)."""
    for i in range(len(grid.t)):
        ab, ab_next = float(grid.ab[i]), (float(grid.ab[i + 1]) if i + 1 < len(grid.t) else grid.end)
        tt = torch.full((x.shape[0],), int(grid.t[i]), device=x.device, dtype=torch.long)
        x, x0 = _step(x, eps_fn(x, tt).to(x.dtype), ab, ab_next, clip)
        if trajectory is not None:
            trajectory.append(x0)
    return x


def describe(grid: DDIMGrid) -> str:
    """Short text of a grid for protocol records, e.g. "t = 0, 50, ..., 950 (20 steps), end ab = 1"."""
    t = [int(v) for v in grid.t]
    shown = ", ".join(map(str, t)) if len(t) <= 4 else f"{t[0]}, {t[1]}, ..., {t[-1]}"
    return f"t = {shown} ({len(t)} steps), last step to ab = {grid.end:.6g}"
