"""Latent-diffusion stages: the first-stage ``autoencoder`` and the unconditional latent DPM ``ldm`` built on it.

References: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022,
https://arxiv.org/abs/2112.10752 (Sec. 3.1 perceptual compression, Sec. 3.2 latent diffusion: the eps objective on
y = E(x), Eq. 2); DisDiff's configs ``configs/autoencoder/<ds>_{vq,kl}_4_16.yaml`` and
``configs/latent-diffusion/<ds>-{vq,kl}-4-16.yaml`` (methods.md §6.1).

``autoencoder``: f = 4 downsampling, VQ (3 channels, codebook 2048) or KL (4 channels, kl_weight 1e-6). The reference
trains it with an L1 + LPIPS reconstruction loss and a patch discriminator; LPIPS needs pre-trained VGG weights that a
benchbench install cannot download, so the loss here is L1 plus the bottleneck's term (VQ: commitment + 0.25 codebook,
the weighting of taming's ``VectorQuantizer2``, :class:`benchbench.nets.first_stage.VectorQuantizer`; KL: kl_weight
KL(q(y|x) || N(0, I))), no perceptual or adversarial term. Our autoencoder's reconstructions are therefore blurrier
than the reference's; the latent space has the same shape. Encoder and decoder carry LDM's mid-block attention. The
reference accumulates gradients over 2 batches of 128 (``accumulate_grad_batches: 2``, lr 4.5e-6 x 2 x 128 =
1.152e-3); for these batch-mean losses that is one optimiser step on 256 images, which the paper preset takes
directly (batch 256).

``ldm``: the ADM UNet of :mod:`benchbench.nets.unet` on the autoencoder's latents: LDM's "linear" schedule
(linspace(sqrt(0.0015), sqrt(0.0155))^2, T = 1000), eps-prediction, **L1** loss, latents multiplied by 1 / std of the
first training batch (``scale_by_std``). For the VQ autoencoder the latent is the pre-quantisation output (the
reference's ``VQModelInterface.encode``); decoding quantises it first.

The latent DPM's state holds the autoencoder's weights too (frozen), so the ``ldm`` artifact alone rebuilds both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchbench import ddim
from benchbench.config import TrainConfig
from benchbench.datasets.base import DataConfig, DataSpec
from benchbench.diffusion import Schedule
from benchbench.errors import ConfigError
from benchbench.method import Method, randn
from benchbench.nets.first_stage import (
    Decoder,
    Encoder,
    VectorQuantizer,
    diagonal_gaussian_kl,
    sample_gaussian,
)
from benchbench.nets.unet import UNet, UNetConfig
from benchbench.stages import Artifact, StageRequest, register_stage


@dataclass(frozen=True)
class AutoencoderConfig:
    """The first-stage autoencoder (defaults: DisDiff's ``<ds>_vq_4_16``, methods.md §6.1).

    Attributes:
        kind: "vq" or "kl".
        channels, channel_mult, num_res_blocks: encoder/decoder widths; f = 2^(len(channel_mult) - 1).
        z_channels: latent channels (3 for VQ, 4 for KL in the reference).
        codebook_size: VQ codebook entries (2048).
        commitment: VQ weight beta (0.25).
        beta_on_codebook: put beta on the codebook term, as taming's VectorQuantizer2 (legacy) does (module doc).
        kl_weight: KL weight (1e-6).
        num_groups: GroupNorm groups.
        mid_attention: LDM's mid-block self-attention in encoder and decoder (the reference always has it).
        train: the stage's training settings (reference: Adam, lr 4.5e-6 x accumulate 2 x batch 128 = 1.15e-3, as one
            step on 256 images here).
    """

    kind: str = "vq"
    channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 3
    codebook_size: int = 2048
    commitment: float = 0.25
    beta_on_codebook: bool = True
    kl_weight: float = 1e-6
    num_groups: int = 32
    mid_attention: bool = True
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=100_000, batch_size=256, lr=1.152e-3, betas=(0.5, 0.9), amp=False, log_every=1000, ckpt_every=10_000))

    @property
    def factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)


@register_stage("autoencoder", description="first-stage VQ / KL autoencoder of latent diffusion (Rombach et al. 2022)")
class Autoencoder(Method):
    """x [N, C, R, R] <-> y [N, z_channels, R / f, R / f]; see the module doc for the loss."""

    cfg: AutoencoderConfig

    def __init__(self, cfg: AutoencoderConfig, spec: DataSpec, deps: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, spec)
        if cfg.kind not in ("vq", "kl"):
            raise ConfigError(f"autoencoder kind must be 'vq' or 'kl', got {cfg.kind!r}")
        if spec.resolution % cfg.factor:
            raise ConfigError(f"autoencoder: resolution {spec.resolution} is not divisible by f = {cfg.factor}")
        z_out = cfg.z_channels * (2 if cfg.kind == "kl" else 1)
        self.encoder = Encoder(spec.channels, cfg.channels, cfg.channel_mult, cfg.num_res_blocks, z_out,
                               cfg.num_groups, cfg.mid_attention)
        self.quant_conv = nn.Conv2d(z_out, z_out, 1)
        self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)
        self.decoder = Decoder(cfg.z_channels, cfg.channels, cfg.channel_mult, cfg.num_res_blocks, spec.channels,
                               cfg.num_groups, cfg.mid_attention)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.z_channels, cfg.commitment, cfg.beta_on_codebook) \
            if cfg.kind == "vq" else None

    def moments(self, x: Tensor) -> Tensor:
        """quant_conv(encoder(x)): [N, z_out, r, r] (KL: mean and log-variance stacked on channels)."""
        return self.quant_conv(self.encoder(x))

    def encode(self, x: Tensor) -> Tensor:
        """Deterministic latent y [N, z_channels, r, r]: VQ pre-quantisation output, KL posterior mean."""
        m = self.moments(x)
        return m.chunk(2, dim=1)[0] if self.cfg.kind == "kl" else m

    def decode(self, y: Tensor, quantize: bool = True) -> Tensor:
        """y [N, z_channels, r, r] -> image [N, C, R, R]; VQ quantises first unless ``quantize`` is False."""
        if self.quantizer is not None and quantize:
            y, _ = self.quantizer(y)
        return self.decoder(self.post_quant_conv(y))

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """L1(x, x_rec) + the bottleneck term (module doc)."""
        m = self.moments(x)
        if self.quantizer is not None:
            y, reg = self.quantizer(m)
            weight = 1.0
        else:
            mean, logvar = m.chunk(2, dim=1)
            y, reg = sample_gaussian(mean, logvar), diagonal_gaussian_kl(mean.float(), logvar.float())
            weight = self.cfg.kl_weight
        rec = F.l1_loss(self.decoder(self.post_quant_conv(y)).float(), x.float())
        return {"loss": rec + weight * reg, "l1": rec.detach(), "reg": reg.detach()}

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x)).clamp(-1, 1)


@dataclass(frozen=True)
class LatentDPMConfig:
    """An unconditional eps-DPM on first-stage latents (defaults: DisDiff's ``<ds>-vq-4-16``, methods.md §6.1).

    Attributes:
        autoencoder: the first stage it builds on (its own stage, cached separately).
        autoencoder_seed: that stage's seed.
        unet: the latent noise predictor (in/out channels = z_channels, resolution = R / f).
        num_steps, beta_start, beta_end: LDM "linear" schedule (sqrt-spaced 0.0015 -> 0.0155, T = 1000).
        sample_steps: DDIM steps of :meth:`LatentDPM.sample`.
        train: the stage's training settings: the reference's AdamW (PyTorch's default weight decay 0.01), base lr
            2e-6 x batch 128 = 2.56e-4, warm-up over 10k steps (``LambdaLinearScheduler``, from 1e-6 x lr there,
            from lr / 10k here), EMA 0.9999; 200k steps is an UNVERIFIED benchbench choice.
    """

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    autoencoder_seed: int = 0
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(
        in_channels=3, out_channels=3, resolution=16, base_channels=64, channel_mult=(1, 2, 4, 4),
        attention_resolutions=(16, 8, 4), num_heads=8, dropout=0.0))
    num_steps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0155
    sample_steps: int = 50
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=200_000, batch_size=128, lr=2.56e-4, weight_decay=0.01, warmup_steps=10_000, ema_decay=0.9999,
        amp=False, log_every=1000, ckpt_every=10_000))

    def schedule(self) -> Schedule:
        return Schedule.ldm_linear(self.num_steps, self.beta_start, self.beta_end)


@register_stage("ldm", description="unconditional latent DPM on a first-stage autoencoder (Rombach et al. 2022)")
class LatentDPM(Method):
    """eps_theta(y_t, t) on y = scale · E(x) (L1 loss). ``deps["autoencoder"]`` loads the trained first stage;
    without it the autoencoder's weights come with the ``ldm`` artifact's state dict."""

    cfg: LatentDPMConfig
    scale: Tensor

    def __init__(self, cfg: LatentDPMConfig, spec: DataSpec, deps: dict[str, Artifact] | None = None) -> None:
        super().__init__(cfg, spec)
        self.autoencoder = Autoencoder(cfg.autoencoder, spec)
        if deps and "autoencoder" in deps:
            self.autoencoder.load_state_dict(deps["autoencoder"].load_state())
        self.autoencoder.requires_grad_(False).eval()
        side = spec.resolution // cfg.autoencoder.factor
        u = cfg.unet
        if u.resolution != side or u.in_channels != cfg.autoencoder.z_channels or u.out_channels != u.in_channels:
            raise ConfigError(
                f"ldm: the latent UNet must take {cfg.autoencoder.z_channels}x{side}x{side} latents (got "
                f"{u.in_channels}x{u.resolution}x{u.resolution}); set model.ldm.unet.resolution={side} and "
                f"in/out_channels={cfg.autoencoder.z_channels}"
            )
        self.unet = UNet(u)
        self.schedule = cfg.schedule()
        self.register_buffer("scale", torch.zeros(()))  # 1 / std of the first training batch's latents
        self._scale_checked = False

    def train(self, mode: bool = True) -> LatentDPM:
        super().train(mode)
        self.autoencoder.eval()
        return self

    @torch.no_grad()
    def to_latent(self, x: Tensor) -> Tensor:
        """y_0 = scale · E(x): x [N, C, R, R] -> [N, z_channels, R / f, R / f]."""
        return self.autoencoder.encode(x) * self.scale.to(x.dtype)

    def from_latent(self, y: Tensor, quantize: bool = True) -> Tensor:
        """D(y / scale) -> [N, C, R, R] (differentiable in y; the autoencoder itself is frozen)."""
        return self.autoencoder.decode(y / self.scale.to(y.dtype), quantize=quantize)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """L1 eps loss on latents of x [N, C, R, R]; the first call fixes ``scale`` (scale_by_std)."""
        if not self._scale_checked:  # read the buffer once (a device sync), not every step
            if float(self.scale) == 0.0:
                with torch.no_grad():
                    self.scale.fill_(1.0 / self.autoencoder.encode(x).float().std().clamp_min(1e-8))
            self._scale_checked = True
        y0 = self.to_latent(x)
        t = torch.randint(0, self.schedule.num_steps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(y0)
        l1 = F.l1_loss(self.unet(self.schedule.q_sample(y0, t, noise), t).float(), noise.float())
        return {"loss": l1}

    def eps(self, y_t: Tensor, t: Tensor) -> Tensor:
        return self.unet(y_t, t)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images [n, C, R, R]: LDM's deterministic DDIM (:func:`benchbench.ddim.ldm_grid`) in latent space from
        CPU-drawn y_T, then the decoder."""
        u = self.cfg.unet
        y_T = randn((n, u.in_channels, u.resolution, u.resolution), generator, device=self.device)
        y_0 = ddim.sample(self.eps, y_T, ddim.ldm_grid(self.schedule, self.cfg.sample_steps))
        return self.from_latent(y_0).clamp(-1, 1)


def ldm_request(dataset: str, data: DataConfig, cfg: LatentDPMConfig, seed: int = 0) -> StageRequest:
    """The ``ldm`` stage (and, as its dependency, the ``autoencoder`` stage) for ``dataset`` with options ``data``."""
    ae = StageRequest(kind="autoencoder", dataset=dataset, data=data, config=cfg.autoencoder,
                      seed=cfg.autoencoder_seed)
    return StageRequest(kind="ldm", dataset=dataset, data=data, config=cfg, seed=seed, deps=(("autoencoder", ae),))
