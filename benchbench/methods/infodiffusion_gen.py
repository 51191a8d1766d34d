"""InfoDiffusion's unconditional generation as its FID scripts do it: the image sampler and two-phase sampling.

Reference: isjakewong/InfoDiffusion (``eval_fid.sh``, ``run.py: eval`` mode ``eval_fid``, ``sampling.py:
DiffusionProcess, TwoPhaseDiffusionProcess, LatentDiffusionProcess``; commit 75c7b31, the same in branch
``InfoDiffusion-dev``); methods.md §7.

The FID command of ``eval_fid.sh`` passes no ``--deterministic``, so both of its samplers are ancestral DDPM over all
T = 1000 steps (``_ddpm_one_diffusion_step``: mu = (x - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t), variance
(1 - ab_{t-1}) / (1 - ab_t) beta_t, no noise at t = 0, no clipping), i.e. :func:`benchbench.diffusion.ddpm_sample`:

* ``--is_latent`` (the command the README runs, benchbench's ``code_prior=latent``): a from the latent DDPM on the
  codes (the ``latent`` stage), then the a-conditioned decoder;
* two-phase (``TwoPhaseDiffusionProcess``, the commented-out "without learned latent" command, benchbench's
  ``code_prior=two-phase``): a ~ N(0, I); the step counter c = 0, 1, ... of the loop (t = T - 1 - c) picks the
  network, the unconditional "vanilla" DDPM (``--model vanilla``, the ``ddpm`` stage here) while c <= split_step
  (500) and the a-conditioned decoder after it, so the vanilla model draws the coarse structure and the decoder the
  details conditioned on a.

As released, ``sampling()`` passes its counter once (``t = 0``) into the step generator and advances only its own
copy, so ``t <= split_step`` holds at every step and the vanilla model draws every step: the released two-phase
sampler is the vanilla DDPM alone and never sees a. ``two_phase="released"`` (default, the reference code's
behaviour) reproduces that; ``two_phase="intended"`` switches at the split as the code means to.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from benchbench.config import TrainConfig
from benchbench.diffusion import EpsFn, Schedule, ddpm_sample
from benchbench.methods.dpm import DPMConfig, ddpm_request
from benchbench.nets.unet import UNetConfig
from benchbench.stages import StageRequest

GENERATE_SAMPLERS = ("ddpm", "sampler")
TWO_PHASE = ("released", "intended")


def vanilla_dpm(unet: UNetConfig, num_steps: int, beta_start: float, beta_end: float, train: TrainConfig) -> DPMConfig:
    """The unconditional "vanilla" DDPM of two-phase sampling: the decoder's UNet without the code, same schedule.

    The reference's ``Diff`` uses its plain ``UNet`` (two-conv ResBlocks, ch 64, (1, 2, 4, 8)); benchbench builds the
    decoder's shape with the ADM block (``block_layout="adm"``), recorded as a deviation.
    """
    plain = replace(unet, cond_dim=0, cond_mode="scale", block_layout="adm")
    return DPMConfig(unet=plain, num_steps=num_steps, beta_start=beta_start, beta_end=beta_end, sample_steps=num_steps,
                     train=train)


# ``--model vanilla --mode train --epochs 50 --batch_size 128`` (eval_fid.sh): run.py's one training loop, AdamW lr
# 1e-4 (wd 1e-5) warmed up over one epoch to 2 x lr, then cosine to 0; clip 1; no EMA; 162,770 CelebA train images
# at batch 128: 1,271 steps per epoch, 63,550 steps.
VANILLA_TRAIN = TrainConfig(steps=63_550, batch_size=128, lr=2e-4, weight_decay=1e-5, grad_clip=1.0, ema_decay=0.0,
                            amp=False, warmup_steps=1_271, lr_schedule="cosine", log_every=500, ckpt_every=5_000)


def vanilla_request(cfg: object) -> dict[str, StageRequest]:
    """The runner's stage requests of an InfoDiffusion run: the vanilla DDPM, only for ``code_prior=two-phase``."""
    m = cfg.model  # type: ignore[attr-defined]
    if m.code_prior != "two-phase":
        return {}
    return {"vanilla": ddpm_request(cfg.dataset, cfg.data, m.vanilla, m.vanilla_seed)}  # type: ignore[attr-defined]


def vanilla_down_to(num_steps: int, split_step: int, two_phase: str) -> int:
    """The smallest t at which the vanilla DDPM still draws (it draws every t >= this): T - 1 - split_step
    ("intended": step counters 0..split_step), 0 ("released": every step)."""
    return 0 if two_phase == "released" else max(num_steps - 1 - split_step, 0)


def two_phase_sample(eps_vanilla: EpsFn, eps_code: EpsFn, x_T: Tensor, schedule: Schedule, split_step: int,
                     two_phase: str, generator: torch.Generator | None = None) -> Tensor:
    """``TwoPhaseDiffusionProcess`` (module doc) on x_T [N, C, H, W]: ancestral DDPM over all T steps, the vanilla
    eps_theta(x_t, t) for t >= ``vanilla_down_to`` and the code-conditioned one below; noise from ``generator``."""
    lowest = vanilla_down_to(schedule.num_steps, split_step, two_phase)

    def eps(x_t: Tensor, t: Tensor) -> Tensor:
        return eps_vanilla(x_t, t) if int(t[0]) >= lowest else eps_code(x_t, t)

    return ddpm_sample(eps, x_T, schedule, generator)


def describe_generation(code_prior: str, generate_sampler: str, num_steps: int, split_step: int,
                        two_phase: str) -> str:
    """The image side of generation in words (the codes' side is ``Method.code_generator``)."""
    if code_prior == "two-phase":
        if two_phase == "released":
            return (f"two-phase as released: the vanilla DDPM draws all {num_steps} ancestral steps (the released "
                    f"loop never advances its step counter past 0 <= split_step={split_step}); a is never used")
        return (f"two-phase: ancestral DDPM, the vanilla DDPM for the first {split_step + 1} steps (t >= "
                f"{num_steps - 1 - split_step}), then the decoder conditioned on a ~ N(0, I)")
    if generate_sampler == "ddpm":
        return f"ancestral DDPM over all {num_steps} steps (eval_fid.sh: no --deterministic)"
    return "the method's sampler (model.sampler)"
