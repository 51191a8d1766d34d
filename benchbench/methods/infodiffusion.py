"""InfoDiffusion (``infodiffusion``): a diffusion decoder conditioned on a code regularised towards its prior.

Reference: Wang et al., "InfoDiffusion: Representation Learning Using Information Maximizing Diffusion Models",
ICML 2023, https://arxiv.org/abs/2306.08757; code isjakewong/InfoDiffusion (``models.py: InfoDiff``, branches ``main``
and ``InfoDiffusion-dev``); methods.md §7 and hazard 6 of §10.

An encoder gives a deterministic code a = Enc(x_0) [N, a_dim]; a z-conditioned eps-predicting UNet is trained jointly
with it from scratch. The objective is the InfoVAE form L_diff + (1 - alpha) KL + (alpha + lambda - 1) D(q(a) || p(a))
with alpha = 1, lambda = 0.1 and D = MMD, which is what the code trains for the reported setting
(``--mmd_weight 0.1 --kld_weight 0``, prior N(0, I)):

    L = mean || eps - eps_theta(x_t, t, a) ||^2 + (1 / T) mean || x0_tilde - x_0 ||^2 + 0.1 MMD(a, N(0, I)),
    x0_tilde = (x_0 - beta_1 / sqrt(1 - ab_1) eps_hat) / sqrt(alpha_1),

where eps_hat is the prediction at the sampled t (the reference's quirk; the term is numerically negligible).
The MMD is :func:`benchbench.baselines.info_vae.mmd` (biased estimate, kernel exp(-||x - y||^2 / D^2)).
``kld_weight > 0`` instead trains the code's KL variant: mu, log sigma^2 = Linear(a), Linear(a), the decoder sees the
reparameterised sample, the KL (mean over the batch of the sum over dimensions, dev branch) is weighted by
``kld_weight`` and the representation is mu. As in the dev branch, both weights > 0 is an error.

Architecture (benchbench default: the dev branch, which its README calls closer to the paper). Decoder: the ADM UNet
of :mod:`benchbench.nets.unet` (CelebA-64: base 64, (1, 2, 4, 8), 2 blocks, attention at 16, dropout 0.1, time
embedding 256); the code enters through fc_a = Linear(a_dim -> 256) and, per ResBlock, (z_s, z_b) =
Linear(SiLU(fc_a(a))) applied right after the time modulation, h <- (GN(h)(1 + t_s) + t_b)(1 + z_s) + z_b. The dev
branch applies that second modulation to a second GN/conv stage of the block; we use the main branch's placement
(one stage), so a block has the same layout as every other benchbench UNet. Encoder: the same UNet layout with a
single output channel at full resolution, flattened, then Linear -> a. The reference's encoder has no time input; ours
runs the UNet at the fixed t = 0, where the time modulation reduces to a learned per-channel affine map (what GN's own
affine does), so it is the same function class.

Diffusion: linear beta 1e-5 -> 1e-2 over T = 1000 (the code's default, not DDPM's), no EMA. Generation samples a from
its prior N(0, I) (the point of regularising q(a) towards it) and decodes with ``sampler``: "official" is the
reference's ``--deterministic`` loop (``sampling.py``; :func:`benchbench.ddim.infodiffusion_grid`): all T steps,
eta = 0.01, the network queried at t with x taken at ab_{t-1} (its indexing quirk, kept), no clipping, and inversion by
its ``reverse_sampling`` (which the reference calls without the code a, a bug not reproduced: ours conditions on a).
"ddim" (benchbench, for CPU presets) is deterministic DDIM on Diff-AE's ``sample_steps`` stride grid, inversion to
ab = 0, no clipping. Reconstructions and traversals decode with the sampler's eta from a fixed seed (0), so figures
are repeatable. The reference's FID uses a latent DDPM on a, which is not built here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchbench import ddim
from benchbench.baselines.info_vae import mmd
from benchbench.config import Preset, TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.diffusion import EpsFn, Schedule
from benchbench.errors import ConfigError
from benchbench.method import Method, paper_differences, randn, standardize_codes
from benchbench.nets.unet import SemanticEncoder, SemanticEncoderConfig, UNet, UNetConfig
from benchbench.registry import register_method

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
    """

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
    if cfg.num_steps < 3:
        raise ConfigError(f"infodiffusion: model.num_steps must be >= 3, got {cfg.num_steps}")
    try:
        ddim.ddim_stride_timesteps(cfg.num_steps, cfg.sample_steps)
    except ValueError as e:
        raise ConfigError(f"infodiffusion: model.sample_steps={cfg.sample_steps}: {e}") from None
    encoder = ("encoder", cfg.encoder) if cfg.encoder_kind == "unet" else ("conv_encoder", cfg.conv_encoder)
    for name, sub in (("unet", cfg.unet), encoder):
        if sub.resolution != spec.resolution or sub.in_channels != spec.channels:
            raise ConfigError(
                f"infodiffusion: model.{name} is built for {sub.in_channels}x{sub.resolution}x{sub.resolution} "
                f"images but {spec.name!r} yields {spec.channels}x{spec.resolution}x{spec.resolution}; set "
                f"--set data.resolution={sub.resolution} or change model.unet.resolution and model.encoder.resolution"
            )
    if cfg.unet.out_channels != spec.channels:
        raise ConfigError(f"infodiffusion: model.unet.out_channels must be {spec.channels}")


class CodeEncoder(nn.Module):
    """a = Linear(flatten(UNet(x, t = 0))): InfoDiffusion's encoder (module doc). x [N, C, R, R] -> a [N, a_dim]."""

    def __init__(self, cfg: UNetConfig, a_dim: int) -> None:
        super().__init__()
        self.unet = UNet(cfg)
        # The UNet's output conv is zero-initialised for noise prediction (ADM); as an encoder that would map every
        # image to the same code (the head's bias) and give the head no gradient, so it gets PyTorch's default init.
        out = self.unet.decoder.out[-1]
        self.unet.decoder.out[-1] = nn.Conv2d(out.in_channels, out.out_channels, 3, padding=1)
        self.head = nn.Linear(cfg.resolution * cfg.resolution, a_dim)

    def forward(self, x: Tensor) -> Tensor:
        t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return self.head(self.unet(x, t).flatten(1))


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) summed over dims, mean over the batch: mu, logvar [N, D] -> scalar."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1).mean()


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
                            sample_steps=5),
        TrainConfig(steps=10, batch_size=8, lr=1e-3, log_every=5, ckpt_every=5),
        data=(("resolution", 16),),
    ),
    # The quick batch is 16, where the reference's biased MMD estimate is lower for collapsed codes than for codes
    # drawn from the prior (test_infodiffusion.py); 400-step probes on shapes3d-synth gave per-dim code std 0.09
    # with it and 0.18 with the unbiased estimate, which quick therefore uses (the paper preset's batch 64 keeps
    # the reference's estimator).
    "quick": Preset(
        InfoDiffusionConfig(unet=_QUICK_UNET, encoder=_QUICK_ENCODER, encoder_kind="conv", conv_encoder=_QUICK_CONV,
                            a_dim=16, sampler="ddim", sample_steps=10, mmd_unbiased=True),
        TrainConfig(steps=1000, batch_size=16, lr=1e-3, weight_decay=1e-5, grad_clip=1.0, ema_decay=0.0,
                    warmup_steps=100, lr_schedule="cosine", log_every=50, ckpt_every=500),
        data=(("resolution", 32),),
    ),
    # CelebA-64 is the reported setting; Shapes3D and MPI3D reuse it (benchbench choice: no official run exists,
    # methods.md §9 "*"; the reference has no 3DShapes training loader).
    "paper": {"default": _PAPER, "celeba": _PAPER_CELEBA},
}


@register_method(
    "infodiffusion", config=InfoDiffusionConfig, presets=PRESETS, check=_check,
    description="InfoDiffusion (Wang et al. 2023): code-conditioned diffusion decoder + MMD prior on the code",
)
class InfoDiffusion(Method):
    """Encoder a = Enc(x_0) and an a-conditioned eps_theta trained jointly (Wang et al. 2023); see the module doc."""

    cfg: InfoDiffusionConfig

    def __init__(self, cfg: InfoDiffusionConfig, spec: DataSpec) -> None:
        _check(cfg, spec)
        super().__init__(cfg, spec)
        self.encoder: nn.Module = (CodeEncoder(cfg.encoder, cfg.a_dim) if cfg.encoder_kind == "unet"
                                   else SemanticEncoder(replace(cfg.conv_encoder, out_dim=cfg.a_dim)))
        self.fc_a = nn.Linear(cfg.a_dim, cfg.unet.cond_dim)
        self.unet = UNet(cfg.unet)
        if cfg.kld_weight > 0:
            self.mu_head = nn.Linear(cfg.a_dim, cfg.a_dim)
            self.logvar_head = nn.Linear(cfg.a_dim, cfg.a_dim)
        self.schedule = Schedule.linear(cfg.num_steps, cfg.beta_start, cfg.beta_end)

    @property
    def x0_weight(self) -> float:
        return 1.0 / self.cfg.num_steps if self.cfg.x0_weight is None else self.cfg.x0_weight

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """The module doc's objective on x [N, C, H, W] in [-1, 1].

        Random numbers are drawn in this order: t [N], eps (like x), the prior sample for the MMD (like a), then, in
        the KL variant, the reparameterisation noise.

        Returns:
            {"loss", "mse" (eps term), "x0" (x0_tilde term, unweighted), "mmd" or "kl" (unweighted)}.
        """
        s = self.schedule
        t = torch.randint(0, s.num_steps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(x)
        a = self.encoder(x)
        terms: dict[str, Tensor] = {}
        if self.cfg.kld_weight > 0:
            mu, logvar = self.mu_head(a), self.logvar_head(a)
            cond = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            prior = self.cfg.kld_weight * gaussian_kl(mu.float(), logvar.float())
            terms["kl"] = gaussian_kl(mu.float(), logvar.float()).detach()
        else:
            cond = a
            d = mmd(a, torch.randn_like(a), self.cfg.mmd_unbiased) if self.cfg.mmd_weight > 0 else a.new_zeros(())
            prior = self.cfg.mmd_weight * d
            terms["mmd"] = d.detach()
        eps_hat = self.unet(s.q_sample(x, t, noise), t, self.fc_a(cond)).float()
        mse = F.mse_loss(eps_hat, noise.float())
        # x0_tilde from the first-step posterior with the eps predicted at the sampled t (reference quirk).
        beta1, alpha1, ab1 = float(s.betas[0]), float(s.alphas[0]), float(s.alphas_bar[0])
        x0_tilde = (x.float() - beta1 / (1.0 - ab1) ** 0.5 * eps_hat) / alpha1**0.5
        rec = F.mse_loss(x0_tilde, x.float())
        terms.update(mse=mse.detach(), x0=rec.detach())
        return {"loss": mse + self.x0_weight * rec + prior, **terms}

    # Inference.

    # The factor metrics see a standardised per dimension with dataset statistics, as InfoDiffusion's own
    # evaluation standardises its codes (methods.md §7); TAD's AUROC is unchanged by it.
    code_postprocess = staticmethod(standardize_codes)
    code_rule = "standardized"  # the diffusion code rule (benchbench.method.CODE_RULES)

    def encode(self, x: Tensor) -> Tensor:
        """The representation [N, a_dim] of x [N, C, H, W]: a (mu in the KL variant)."""
        a = self.encoder(x)
        return self.mu_head(a) if self.cfg.kld_weight > 0 else a

    def _eps_fn(self, a: Tensor) -> EpsFn:
        cond = self.fc_a(a)
        return lambda x_t, t: self.unet(x_t, t, cond)

    def _grid(self, invert: bool = False) -> ddim.DDIMGrid:
        if self.cfg.sampler == "official":
            return ddim.infodiffusion_grid(self.schedule, invert)
        return ddim.diffae_grid(self.schedule, self.cfg.sample_steps, invert)

    @property
    def eta(self) -> float:
        return OFFICIAL_ETA if self.cfg.sampler == "official" else 0.0

    def decode(self, x_T: Tensor, a: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Decoding of (a [N, a_dim], x_T [N, C, H, W]) with ``sampler`` -> [N, C, H, W] in [-1, 1]; the eta noise
        comes from ``generator`` (default: a fresh one seeded 0, so figures repeat)."""
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        return ddim.sample(self._eps_fn(a), x_T, self._grid(), eta=self.eta, generator=gen).clamp(-1, 1)

    def invert(self, x: Tensor, a: Tensor) -> Tensor:
        """x_T [N, C, H, W]: deterministic inversion of x given a [N, a_dim] (``reverse_sampling`` or DDIM)."""
        return ddim.invert(self._eps_fn(a), x, self._grid(invert=True))

    def protocol(self) -> dict[str, str]:
        """Sampler, inversion and generator of this instance (recorded with every number)."""
        if self.cfg.sampler == "official":
            sampler = (f"InfoDiffusion's loop (sampling.py): all {self.schedule.num_steps} steps, network at t with x "
                       f"at ab_(t-1) (reference quirk), eta={OFFICIAL_ETA:g}, last step to ab = 1, no clipping")
            inversion = (f"reverse_sampling: {ddim.describe(self._grid(invert=True))}, conditioned on a (the "
                         f"reference passes no code)")
        else:
            k = self.cfg.sample_steps
            sampler = f"DDIM K={k} (benchbench; Diff-AE stride: {ddim.describe(self._grid())}), eta=0, no clipping"
            inversion = f"DDIM reverse K={k}, last step to ab = 0, no clipping"
        return {"sampler": sampler, "inversion": inversion,
                "generator": "a ~ N(0, I) (the MMD prior), x_T ~ N(0, I), then the sampler"}

    def deviations(self) -> list[str]:
        """What still differs from InfoDiffusion's CelebA setting for this instance."""
        out = ["generation draws a from N(0, I); the reference's FID draws it from a latent DDPM on a",
               "the a_dim behind each published number is UNVERIFIED (the README trains with 32, evaluates with 256)"]
        if self.cfg.encoder_kind == "conv":
            out.append("the encoder is Diff-AE's semantic encoder (CPU preset), not InfoDiffusion's UNet encoder")
        else:
            out.append("the encoder UNet carries a time modulation at t = 0 (the reference's has no time input): "
                       "the same function class")
        if self.cfg.unet.block_layout != "infodiffusion_dev":
            out.append("the decoder uses benchbench's one-stage block, not the dev branch's four-conv AuxResBlock")
        if self.cfg.sampler != "official":
            out.append("the sampler is benchbench's DDIM, not the reference's 1000-step eta = 0.01 loop")
        if self.spec.family != "celeba":
            out.append(f"InfoDiffusion's code trains on no {self.spec.family or self.spec.name} loader: the CelebA "
                       f"setting is reused (benchbench choice; the setting behind any published number there is "
                       f"UNVERIFIED)")
        return out + paper_differences(PRESETS, self.cfg, self.spec.family, "infodiffusion")

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples [n, C, H, W]: a ~ N(0, I) (the prior the MMD pulls q(a) towards), x_T ~ N(0, I), ``sampler``.
        All noise comes from ``generator`` on the CPU: a, x_T, then the eta noise of each step."""
        a = randn((n, self.cfg.a_dim), generator, device=self.device)
        x_T = randn((n, self.spec.channels, self.spec.resolution, self.spec.resolution), generator, device=self.device)
        return self.decode(x_T, a, generator if generator is not None else torch.Generator().manual_seed(0))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """x [N, C, H, W] -> a, inversion to x_T given a, decoding: [N, C, H, W]."""
        a = self.encode(x)
        return self.decode(self.invert(x, a), a)

    @torch.no_grad()
    def traverse(self, x: Tensor, dim: int, values: Tensor) -> Tensor:
        """Decode each x's inverted x_T with a[:, dim] set to each of ``values`` [V]: [V, N, C, H, W]."""
        a = self.encode(x)
        x_T = self.invert(x, a)
        v, n = len(values), len(x)
        codes = a.repeat(v, 1)
        codes[:, dim] = values.to(codes).repeat_interleave(n)
        return self.decode(x_T.repeat(v, 1, 1, 1), codes).view(v, n, *x.shape[1:])
