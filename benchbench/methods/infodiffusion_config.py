"""InfoDiffusion's settings, their checks and presets (the model is :mod:`benchbench.methods.infodiffusion`).

Sources of every value: isjakewong/InfoDiffusion (``run.py`` arguments, ``models.py``, ``eval_fid.sh``; branches
``main`` @ 75c7b31 and ``InfoDiffusion-dev``) and methods.md §7.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from benchbench import ddim
from benchbench.config import Preset, TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.errors import ConfigError
from benchbench.methods.dpm import DPMConfig, check_image_nets
from benchbench.methods.infodiffusion_gen import GENERATE_SAMPLERS, TWO_PHASE, VANILLA_TRAIN, vanilla_dpm
from benchbench.methods.latent_prior import INFODIFFUSION_LATENT, LatentConfig
from benchbench.methods.latent_prior import quick as quick_latent
from benchbench.nets.unet import SemanticEncoderConfig, UNetConfig

# InfoDiffusion CelebA-64, dev branch (methods.md §7; isjakewong/InfoDiffusion @ 759f79c7, models.py AuxiliaryUNet):
# ch 64, (1, 2, 4, 8), 2 blocks, attention at 16×16, dropout 0.1, time embedding 256, the four-conv AuxResBlock and
# plain conv down/up-sampling (DownSample / UpSample); the code embedding fc_a has the time embedding's width.
# 103,262,275 parameters, the dev decoder's 112,357,571 less the 9,095,296 of the CrossAttnBlock every AuxResBlock
# builds and never calls (use_crossattn is False throughout). The encoder (dev ``Encoder``) keeps the two-conv block
# and plain conv resampling; ours adds the time modulation at t = 0 (module doc).
PAPER_DECODER = UNetConfig(base_channels=64, channel_mult=(1, 2, 4, 8), num_res_blocks=2, attention_resolutions=(16,),
                           dropout=0.1, time_embed_dim=256, cond_dim=256, cond_mode="scale_shift",
                           resblock_updown=False, block_layout="infodiffusion_dev")
PAPER_ENCODER = replace(PAPER_DECODER, out_channels=1, cond_dim=0, cond_mode="scale", block_layout="adm")


@dataclass(frozen=True)
class InfoDiffusionConfig:
    """InfoDiffusion settings; defaults are the CelebA-64 dev-branch model with the reported MMD setting.

    Attributes:
        unet: the a-conditioned decoder; ``cond_dim`` is the width of fc_a's output, ``cond_mode`` "scale_shift".
        encoder: the encoder UNet; ``out_channels`` 1, unconditioned (``cond_dim`` 0).
        encoder_kind: "unet" (the reference's, above) or "conv": a downsampling-only encoder (Diff-AE's semantic
            encoder, ``conv_encoder``), not InfoDiffusion's; the ``quick`` preset uses it because the full-resolution
            UNet encodes ~350 images/s on one CPU core, and the factor metrics encode ~1.6e5 images.
        conv_encoder: the "conv" encoder's settings (its ``out_dim`` is replaced by ``a_dim``).
        a_dim: code size (32: the README's training command; its evaluation commands use 256, methods.md §7).
        mmd_weight: weight of MMD(a, N(0, I)) (0.1, the reported setting).
        mmd_unbiased: use the unbiased MMD estimate instead of the reference's biased one (see
            :func:`benchbench.baselines.info_vae.mmd`: at small batches the biased one favours collapsed codes).
        kld_weight: weight of the per-sample KL of the reparameterised variant (0: off; see the module doc).
        x0_weight: weight of the x0_tilde reconstruction term; None means 1 / T (the reference's).
        num_steps, beta_start, beta_end: the linear schedule (T = 1000, 1e-5 -> 1e-2, the code's default).
        sampler: "official" (all T steps, eta 0.01, the reference's indexing) or "ddim" (``sample_steps``
            deterministic steps); see the module doc.
        sample_steps: DDIM steps of the "ddim" sampler (sample, reconstruct, traverse and the inversion).
        code_prior: codes of :meth:`InfoDiffusion.sample`: "latent" (the reference's ``--is_latent`` FID sampling: a
            latent DDPM, ``LatentUNet``, on the encoder outputs), "gaussian" (the prior N(0, I)) or "two-phase"
            (``TwoPhaseDiffusionProcess``: a ~ N(0, I) and the ``vanilla`` DDPM; see ``infodiffusion_gen``).
        latent: that latent DDPM (``run.py --mode train_latent_ddim``).
        generate_sampler: the image sampler of ``sample`` for "latent" and "gaussian": "ddpm" (ancestral over all
            T steps, the reference's FID command) or "sampler" (``sampler``, as reconstructions use).
        vanilla: the unconditional DDPM of two-phase sampling (the ``ddpm`` stage, built before training).
        vanilla_seed: that stage's seed (independent of the run seed).
        split_step: two-phase: the vanilla DDPM draws loop steps 0..split_step (500).
        two_phase: "released" (the reference loop, whose counter never advances: the vanilla DDPM draws every step)
            or "intended" (the switch at ``split_step``).
    """

    CODE_PRIORS: ClassVar[tuple[str, ...]] = ("latent", "gaussian", "two-phase")

    unet: UNetConfig = field(default_factory=lambda: PAPER_DECODER)
    encoder: UNetConfig = field(default_factory=lambda: PAPER_ENCODER)
    encoder_kind: str = "unet"
    conv_encoder: SemanticEncoderConfig = field(default_factory=SemanticEncoderConfig)
    a_dim: int = 32
    mmd_weight: float = 0.1
    mmd_unbiased: bool = False
    kld_weight: float = 0.0
    x0_weight: float | None = None
    num_steps: int = 1000
    beta_start: float = 1e-5
    beta_end: float = 1e-2
    sampler: str = "official"
    sample_steps: int = 50
    code_prior: str = "latent"
    latent: LatentConfig = field(default_factory=lambda: INFODIFFUSION_LATENT)
    generate_sampler: str = "ddpm"
    vanilla: DPMConfig = field(default_factory=lambda: vanilla_dpm(PAPER_DECODER, 1000, 1e-5, 1e-2, VANILLA_TRAIN))
    vanilla_seed: int = 0
    split_step: int = 500
    two_phase: str = "released"


OFFICIAL_ETA = 0.01  # sampling.py: _ddim_one_diffusion_step


def _check(cfg: InfoDiffusionConfig, spec: DataSpec) -> None:
    """ConfigError for settings that cannot build an InfoDiffusion model for ``spec``."""
    if cfg.mmd_weight > 0 and cfg.kld_weight > 0:
        raise ConfigError("infodiffusion: set model.mmd_weight or model.kld_weight, not both (the reference asserts)")
    if cfg.mmd_weight < 0 or cfg.kld_weight < 0:
        raise ConfigError("infodiffusion: model.mmd_weight and model.kld_weight must be >= 0")
    if cfg.a_dim < 1:
        raise ConfigError(f"infodiffusion: model.a_dim must be >= 1, got {cfg.a_dim}")
    if cfg.unet.cond_dim < 1 or cfg.unet.cond_mode != "scale_shift":
        raise ConfigError("infodiffusion: model.unet needs cond_dim >= 1 (fc_a's width) and cond_mode 'scale_shift'")
    if cfg.encoder_kind not in ("unet", "conv"):
        raise ConfigError(f"infodiffusion: model.encoder_kind must be 'unet' or 'conv', got {cfg.encoder_kind!r}")
    if cfg.encoder.cond_dim or cfg.encoder.out_channels != 1:
        raise ConfigError("infodiffusion: model.encoder must have cond_dim 0 and out_channels 1")
    if cfg.sampler not in ("official", "ddim"):
        raise ConfigError(f"infodiffusion: model.sampler must be 'official' or 'ddim', got {cfg.sampler!r}")
    if cfg.generate_sampler not in GENERATE_SAMPLERS:
        raise ConfigError(f"infodiffusion: model.generate_sampler must be one of {', '.join(GENERATE_SAMPLERS)}, "
                          f"got {cfg.generate_sampler!r}")
    if cfg.two_phase not in TWO_PHASE:
        raise ConfigError(f"infodiffusion: model.two_phase must be one of {', '.join(TWO_PHASE)}, "
                          f"got {cfg.two_phase!r}")
    if cfg.code_prior == "two-phase":
        if not 0 <= cfg.split_step < cfg.num_steps:
            raise ConfigError(f"infodiffusion: model.split_step must be in 0..{cfg.num_steps - 1}, "
                              f"got {cfg.split_step}")
        v = cfg.vanilla
        if (v.num_steps, v.beta_start, v.beta_end) != (cfg.num_steps, cfg.beta_start, cfg.beta_end):
            raise ConfigError("infodiffusion: model.vanilla must use the decoder's schedule (num_steps, beta_start, "
                              "beta_end): two-phase sampling runs both networks on one chain")
        if v.unet.resolution != spec.resolution or v.unet.in_channels != spec.channels or v.unet.cond_dim:
            raise ConfigError(f"infodiffusion: model.vanilla.unet must be unconditional (cond_dim 0) and built for "
                              f"{spec.channels}x{spec.resolution}x{spec.resolution} images")
    if cfg.num_steps < 3:
        raise ConfigError(f"infodiffusion: model.num_steps must be >= 3, got {cfg.num_steps}")
    try:
        ddim.ddim_stride_timesteps(cfg.num_steps, cfg.sample_steps)
    except ValueError as e:
        raise ConfigError(f"infodiffusion: model.sample_steps={cfg.sample_steps}: {e}") from None
    encoder = ("encoder", cfg.encoder) if cfg.encoder_kind == "unet" else ("conv_encoder", cfg.conv_encoder)
    check_image_nets("infodiffusion", (("unet", cfg.unet), encoder), spec)
    if cfg.unet.out_channels != spec.channels:
        raise ConfigError(f"infodiffusion: model.unet.out_channels must be {spec.channels}")


_PAPER_TRAIN = TrainConfig(
    # AdamW lr 1e-4 (wd 1e-5), clip 1.0, warm-up over one epoch to 2 x lr, then cosine to 0 over 50 CelebA epochs
    # at the README's batch 32 (162,770 train images, drop_last: 5,086 steps per epoch, 254,300 steps); no EMA, fp32.
    steps=254_300, batch_size=32, lr=2e-4, weight_decay=1e-5, grad_clip=1.0, ema_decay=0.0, amp=False,
    warmup_steps=5_086, lr_schedule="cosine", log_every=500, ckpt_every=5_000,
)
_PAPER = Preset(InfoDiffusionConfig(), _PAPER_TRAIN)
# CelebA: InfoDiffusion's loader (data.py get_celeba, crop_d2c=False): resize, centre crop, random flips.
_PAPER_CELEBA = Preset(InfoDiffusionConfig(), _PAPER_TRAIN, data=(("crop", "center"),))

_SMOKE_UNET = UNetConfig(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                         attention_resolutions=(), dropout=0.0, num_groups=4, cond_dim=16, cond_mode="scale_shift")
# Not a paper setting: 32×32, a small decoder (Diff-AE's quick UNet), Diff-AE's quick semantic encoder instead of
# the reference's UNet encoder (~2,000 vs ~350 images/s on one core; the factor metrics encode ~1.6e5 images), a 16-d
# code (32 in the paper) and 1,000 steps.
_QUICK_UNET = UNetConfig(resolution=32, base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                         attention_resolutions=(8,), num_groups=8, dropout=0.0, cond_dim=64, cond_mode="scale_shift")
_QUICK_ENCODER = UNetConfig(resolution=32, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                            attention_resolutions=(), num_groups=4, dropout=0.0, out_channels=1)
_QUICK_CONV = SemanticEncoderConfig(resolution=32, base_channels=8, channel_mult=(1, 2, 4), num_res_blocks=1,
                                    attention_resolutions=(), num_groups=4, out_dim=16)

PRESETS = {
    "smoke": Preset(
        InfoDiffusionConfig(unet=_SMOKE_UNET, encoder=replace(_SMOKE_UNET, out_channels=1, cond_dim=0,
                                                               cond_mode="scale"), a_dim=8, sampler="ddim",
                            sample_steps=5, code_prior="gaussian", generate_sampler="sampler",
                            vanilla=vanilla_dpm(_SMOKE_UNET, 1000, 1e-5, 1e-2, TrainConfig(
                                steps=10, batch_size=8, lr=1e-3, log_every=5, ckpt_every=5))),
        TrainConfig(steps=10, batch_size=8, lr=1e-3, log_every=5, ckpt_every=5),
        data=(("resolution", 16),),
    ),
    # The quick batch is 16, where the reference's biased MMD estimate is lower for collapsed codes than for codes
    # drawn from the prior (test_infodiffusion.py); 400-step probes on shapes3d-synth gave per-dim code std 0.09
    # with it and 0.18 with the unbiased estimate, which quick therefore uses (the paper preset's batch 64 keeps
    # the reference's estimator).
    "quick": Preset(
        InfoDiffusionConfig(unet=_QUICK_UNET, encoder=_QUICK_ENCODER, encoder_kind="conv", conv_encoder=_QUICK_CONV,
                            a_dim=16, sampler="ddim", sample_steps=10, mmd_unbiased=True,
                            latent=quick_latent(INFODIFFUSION_LATENT), generate_sampler="sampler",
                            vanilla=vanilla_dpm(_QUICK_UNET, 1000, 1e-5, 1e-2, replace(
                                VANILLA_TRAIN, steps=1000, batch_size=16, lr=1e-3, warmup_steps=100, log_every=50,
                                ckpt_every=500))),
        TrainConfig(steps=1000, batch_size=16, lr=1e-3, weight_decay=1e-5, grad_clip=1.0, ema_decay=0.0,
                    warmup_steps=100, lr_schedule="cosine", log_every=50, ckpt_every=500),
        data=(("resolution", 32),),
    ),
    # CelebA-64 is the reported setting; Shapes3D and MPI3D reuse it (benchbench choice: no official run exists,
    # methods.md §9 "*"; the reference has no 3DShapes training loader).
    "paper": {"default": _PAPER, "celeba": _PAPER_CELEBA},
}
