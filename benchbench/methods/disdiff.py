"""DisDiff (``disdiff``): unsupervised disentanglement of a frozen diffusion model into N factor gradient fields.

Reference: Yang et al., "DisDiff: Unsupervised Disentanglement of Diffusion Probabilistic Models", NeurIPS 2023,
https://arxiv.org/abs/2301.13721; code ThomasMrY/DisDiff (``ldm/models/diffusion/ddpm.py: p_losses, dis_loss``,
``ldm/modules/encoders/modules.py: Encoder4``, ``openaimodel_shift.py``); methods.md §6 and hazards 1-4 of §10.

A frozen unconditional eps_theta (latent: the ``ldm`` stage on the ``autoencoder`` stage; image: the ``ddpm`` stage)
is split into N sub-gradient fields G_c = G(y_t, z^c, c, t), c = 1..N, conditioned on the N chunks of
z = E(x_0) [B, N · k]. With y_0 the scaled first-stage latent (x_0 itself in image space) and D the frozen decoder:

    L_r  = mean | eps - (eps_theta(y_t, t) - sqrt(alpha_t)(1 - ab_{t-1}) / sqrt(1 - ab_t) · sum_c G_c) |  (L1)
    eps^c = eps_theta - sqrt(1 - ab_t) G_c,   y0^c = (y_t - sqrt(1 - ab_t) eps^c) / sqrt(ab_t),  x0^c = D(y0^c)
    y0    = (y_t - sqrt(1 - ab_t) eps_theta) / sqrt(ab_t),                                         x0   = D(y0)
    r = E'(x0), r^c = E'(x0^c)   (E' = E with frozen weights, eval-mode BatchNorm; no gradient to E's weights)
    d^n_k = ||r_k - sg z_k||, d^p_k = ||r^c_k - sg z_k||, d_k = ||r_k - r^c_k||   (Euclidean over each chunk)
    L_in = CE(d^n - d^p, c),  L_va = CE(d, c),  w = sg mean((y0 - y0^c)^2)  (type "Z"; "IM": mean((x0 - x0^c)^2))
    L = L_r + mean_batch lambda · w · (L_in + L_va),                        one factor c ~ U{1..N} per example.

The two G coefficients differ on purpose (hazard 1): PDAE's mean-shift coefficient in L_r, sqrt(1 - ab_t) in the
disentangling loss and at sampling. L_dis reaches E only through G's conditioning on z^c (hazard 4). E' is the
trainable encoder called with detached weights and BatchNorm in eval mode (running statistics): the same function as
the reference's fresh deep copy in eval mode, without copying the module every step.

G is a fresh copy of the frozen UNet's middle and output blocks (zero-initialised head) fed by the frozen input
blocks' features; every shift ResBlock modulates h <- (GN(h)(1 + t_s) + t_b)(1 + z_s) + z_b with (t_s, t_b) from
e_c = emb(t) + Linear(P_c), P = expm(W - W^T) (W [128, 128] ~ N(0, 1), orthogonal factor embedding) and (z_s, z_b)
from Linear(SiLU(repre_embed(z^c))), repre_embed = Linear(k -> embed width) shared by the factors. The N factors
run as one batch of N · B.

Representation: ``encode`` returns the raw N · k code (TAD and ``benchbench score`` see it); :meth:`code_postprocess`
is the reference evaluation's per-factor PCA(1) (one principal component per k-dim chunk, fitted on dataset codes),
giving the N numbers the factor metrics see (methods.md §6.6). The reference fits the PCA on every dataset image;
benchbench fits it on ``eval.postprocess_fit`` images (10,000 by default; set it to the dataset size for the exact
protocol).

Frozen weights: with ``frozen_weights="online"`` (the default, the reference's effective behaviour) the frozen UNet is
the stage's non-EMA weights, as the reference's ``load_ema_ckpt: true`` path loads the checkpoint's ``model.*`` (not
``model_ema.*``) weights (methods.md §6.3 quirk); "ema" freezes the stage's EMA weights instead.

Deviations from the reference, with reasons: the EMA of G has no
(1 + n) / (10 + n) decay warm-up (the shared training loop's EMA is plain); the autoencoder is trained without LPIPS
and patch-GAN terms (:mod:`benchbench.methods.ldm`).

CLIP-guided DisDiff (``model.encoder=clip``): E is a frozen CLIP image encoder with trainable per-factor heads
(:mod:`benchbench.nets.clip_encoder`); everything else, E' included (the same module with detached weights), is
unchanged.

Generation: z from a Gaussian fitted to training codes (running moments, as PDAE's stand-in), then the reference's
DDIMSampler (:func:`benchbench.ddim.ldm_grid`: timesteps range(0, T, T // K) + 1, last step to ab_0, no clipping,
``eta`` = 1 as its ``log_images``) with eps_theta - sqrt(1 - ab_t) sum_c G_c (the reference's ``ddim_coef``) and D.
The reference has no inversion: its reconstructions and swaps sample from fresh noise with eta = 1. Ours
(``reconstruct``, ``traverse``, ``factor_traversals``) invert y_0 deterministically on the same grid and decode with
eta = 0, so a figure keeps its image's stochastic code (benchbench choice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from benchbench import ddim
from benchbench.config import Preset, TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.diffusion import Schedule
from benchbench.errors import ConfigError
from benchbench.method import CodeMoments, Method, paper_differences, randn, then_standardize
from benchbench.methods.dpm import DPM, DPMConfig, ddpm_request
from benchbench.methods.ldm import AutoencoderConfig, LatentDPM, LatentDPMConfig, ldm_request
from benchbench.methods.pdae import PRESETS as PDAE_PRESETS
from benchbench.nets.clip_encoder import ClipEncoderConfig, ClipFactorEncoder
from benchbench.nets.clip_encoder import check as check_clip
from benchbench.nets.unet import UNetConfig, UNetDecoder
from benchbench.registry import register_method
from benchbench.stages import Artifact


@dataclass(frozen=True)
class DisDiffConfig:
    """DisDiff settings; defaults are the reference's Shapes3D VQ configuration (methods.md §6).

    Attributes:
        space: "latent" (the reference's, on the ``autoencoder`` + ``ldm`` stages) or "image" (on ``ddpm``; not in
            the reference: D is the identity, so weight types Z and IM coincide).
        ldm: the latent DPM stage and, inside it, the autoencoder (``ldm.autoencoder.kind`` "vq" or "kl").
        dpm: the pixel-space DPM of image space.
        stage_seed: seed of the stage(s) (independent of the run seed, so every run seed shares them).
        frozen_weights: "online" (the stage's non-EMA weights, as the reference loads them) or "ema".
        num_factors: N (6 in every released config; EncDiff says 20, UNVERIFIED).
        factor_dim: k, dims per factor (32).
        encoder_channels: d of Encoder4 (128).
        orth_dim: size of the orthogonal factor embedding W (128).
        dis_weight: lambda (0.05 Shapes3D / CelebA, 0.01 MPI3D; the reference's CLI default 1.0 overrides its
            configs unless ``-dw`` is passed, hazard 2).
        dis_loss_type: "Z" (weight from latent predictions, the README's) or "IM" (from decoded images).
        sample_steps: DDIM steps K of sample, reconstruct and traverse (the reference visualises with 200).
        eta: DDIM eta of ``sample`` (1, the reference's ``ddim_eta``); figures decode with eta = 0 (module doc).
        code_momentum: momentum of the running code moments behind :meth:`DisDiff.sample`.
        encoder: "conv" (the reference's Encoder4) or "clip" (CLIP-guided DisDiff: a frozen CLIP image encoder with
            trainable per-factor heads, :mod:`benchbench.nets.clip_encoder`; ``encoder_channels`` is then unused).
        clip: the CLIP encoder's settings (``--set model.clip.weights=PATH``).
    """

    space: str = "latent"
    ldm: LatentDPMConfig = field(default_factory=LatentDPMConfig)
    dpm: DPMConfig = field(default_factory=DPMConfig)
    stage_seed: int = 0
    frozen_weights: str = "online"
    num_factors: int = 6
    factor_dim: int = 32
    encoder_channels: int = 128
    orth_dim: int = 128
    dis_weight: float = 0.05
    dis_loss_type: str = "Z"
    sample_steps: int = 50
    eta: float = 1.0
    code_momentum: float = 0.99
    encoder: str = "conv"
    clip: ClipEncoderConfig = field(default_factory=ClipEncoderConfig)

    @property
    def code_dim(self) -> int:
        return self.num_factors * self.factor_dim


class _EncoderResBlock(nn.Module):
    """Encoder4's residual block: x + conv1x1(ReLU(BN(conv3x3(ReLU(x)))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                 nn.ReLU(), nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class FactorEncoder(nn.Module):
    """DisDiff's Encoder4: z = E(x) [N, num_factors · factor_dim] from the image x [N, C, R, R] in [-1, 1].

    conv4x4 s2 + BN (+ ReLU) per halving down to 4×4 (four at 64×64; the third has no ReLU, as in the code), ResBlock,
    BN, ReLU, ResBlock, flatten (d · 16), Linear.
    """

    def __init__(self, in_channels: int, resolution: int, channels: int, out_dim: int) -> None:
        super().__init__()
        num_convs = round(np.log2(resolution / 4)) if resolution >= 8 else 0
        if num_convs < 1 or 4 * 2**num_convs != resolution:
            raise ConfigError(f"DisDiff's encoder needs a resolution 4 * 2^k with k >= 1, got {resolution}")
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(num_convs):
            layers += [nn.Conv2d(c_in, channels, 4, stride=2, padding=1), nn.BatchNorm2d(channels)]
            if i != 2:  # Encoder4 leaves out the ReLU after its third conv
                layers.append(nn.ReLU())
            c_in = channels
        layers += [_EncoderResBlock(channels), nn.BatchNorm2d(channels), nn.ReLU(), _EncoderResBlock(channels),
                   nn.Flatten(), nn.Linear(channels * 16, out_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@dataclass(frozen=True)
class FactorPCA:
    """Per-factor PCA(1): ``means`` [N, k] and unit ``dirs`` [N, k]; calling it maps codes [n, N · k] to scores [n, N],
    score_c = (z^c - mean_c) · u_c."""

    means: np.ndarray
    dirs: np.ndarray

    def __call__(self, z: np.ndarray) -> np.ndarray:
        n, k = self.means.shape
        return np.einsum("nck,ck->nc", z.reshape(len(z), n, k) - self.means, self.dirs)


def factor_pca(codes: np.ndarray, num_factors: int) -> FactorPCA:
    """Fit PCA(1) per factor chunk on codes [M, N · k] (sklearn's ``PCA(n_components=1)`` per chunk, as the reference
    evaluation; u_c is the top eigenvector of chunk c's covariance, its sign fixed so that its largest-magnitude entry
    is positive, which only flips the scores' sign)."""
    m, dim = codes.shape
    if dim % num_factors:
        raise ValueError(f"code width {dim} is not a multiple of {num_factors} factors")
    chunks = codes.reshape(m, num_factors, -1).astype(np.float64)
    means = chunks.mean(0)  # [N, k]
    dirs = []
    for c in range(num_factors):
        x = chunks[:, c] - means[c]
        _, vecs = np.linalg.eigh(x.T @ x)
        u = vecs[:, -1]
        dirs.append(u * np.sign(u[np.argmax(np.abs(u))]))
    return FactorPCA(means, np.stack(dirs))


def factor_embedding(weight: Tensor) -> Tensor:
    """P = expm(W - W^T) [D, D]: an orthogonal matrix whose rows embed the factors (``orth_emb``)."""
    return torch.linalg.matrix_exp(weight - weight.T)


def disentangle_loss(z: Tensor, r: Tensor, r_c: Tensor, c: Tensor, num_factors: int) -> tuple[Tensor, Tensor]:
    """Per-example (L_in, L_va) of the module doc.

    Args:
        z: the codes [B, N · k] (detached here).
        r: E'(x0) [B, N · k], the re-encoded unconditional prediction.
        r_c: E'(x0^c) [B, N · k], the re-encoded factor-c prediction.
        c: the factor of each example [B] (long).
    Returns:
        (L_in [B], L_va [B]): CE(d^n - d^p, c) and CE(d, c).
    """
    b = z.shape[0]
    z, r, r_c = (v.float().view(b, num_factors, -1) for v in (z.detach(), r, r_c))
    d_n = (r - z).norm(dim=2)
    d_p = (r_c - z).norm(dim=2)
    d = (r - r_c).norm(dim=2)
    return F.cross_entropy(d_n - d_p, c, reduction="none"), F.cross_entropy(d, c, reduction="none")


def _pdae_dpm(preset: str) -> DPMConfig:
    """PDAE's DPM of ``preset``: image-space DisDiff shares the ``ddpm`` stage with PDAE (methods.md §5)."""
    entry = PDAE_PRESETS[preset]
    return (entry["shapes3d"] if isinstance(entry, dict) else entry).model.dpm  # type: ignore[union-attr,index]


def _presets() -> dict[str, object]:
    """smoke / quick / paper (the comments say what is and is not a paper setting)."""
    # smoke: 16×16 images, f = 4 -> 4×4 latents, tiny networks, 10 steps per stage.
    smoke_train = TrainConfig(steps=10, batch_size=8, lr=1e-3, log_every=5, ckpt_every=10)
    smoke_ae = AutoencoderConfig(channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, codebook_size=64,
                                 num_groups=4, mid_attention=False, train=smoke_train)
    smoke_ldm = LatentDPMConfig(autoencoder=smoke_ae, unet=UNetConfig(
        in_channels=3, out_channels=3, resolution=4, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
        attention_resolutions=(), num_groups=4, dropout=0.0), sample_steps=5, train=smoke_train)
    smoke = DisDiffConfig(ldm=smoke_ldm, dpm=_pdae_dpm("smoke"), num_factors=3, factor_dim=4, encoder_channels=8,
                          orth_dim=8, sample_steps=5)
    # quick (CPU laptop, not a paper setting): 32×32 images -> 8×8×3 VQ latents; small autoencoder and latent UNet,
    # Encoder4 with d = 32 (128 in the paper: the factor metrics encode ~10^5 images), N = 6 × k = 32 as the paper.
    quick_ae = AutoencoderConfig(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, codebook_size=512,
                                 num_groups=8, mid_attention=False,
                                 train=TrainConfig(steps=1500, batch_size=16, lr=1e-3, betas=(0.5, 0.9), amp=False,
                                                   log_every=100, ckpt_every=500))
    quick_ldm = LatentDPMConfig(autoencoder=quick_ae, unet=UNetConfig(
        in_channels=3, out_channels=3, resolution=8, base_channels=32, channel_mult=(1, 2), num_res_blocks=1,
        attention_resolutions=(4,), num_groups=8, num_heads=4, dropout=0.0), sample_steps=20,
        train=TrainConfig(steps=2000, batch_size=32, lr=1e-3, ema_decay=0.995, grad_clip=1.0, amp=False,
                          log_every=100, ckpt_every=500))
    # The quick stages train a few thousand steps with a short EMA; quick freezes the EMA weights (benchbench choice).
    quick = DisDiffConfig(ldm=quick_ldm, dpm=_pdae_dpm("quick"), encoder_channels=32, sample_steps=20,
                          frozen_weights="ema")
    quick_train = TrainConfig(steps=800, batch_size=16, lr=1e-3, weight_decay=0.01, ema_decay=0.99, grad_clip=1.0,
                              warmup_steps=50, amp=False, log_every=50, ckpt_every=400)
    # paper: the reference's <ds>-vq-4-16(-dis) configs (methods.md §6): autoencoder ch 32 (1, 2, 4), 2 blocks, VQ 3 ×
    # 2048; LDM UNet ch 64 (1, 2, 4, 4), attention at 16/8/4, 8 heads, 2 blocks; DisDiff AdamW 2e-6 × 128 = 2.56e-4,
    # warm-up 10k steps, batch 128, EMA 0.9999 over G only (``ema_exclude``), lambda 0.05 (MPI3D 0.01), type Z.
    # Training lengths are UNVERIFIED benchbench choices (no stopping criterion in the configs): 100k autoencoder
    # steps, 200k LDM steps, 100k DisDiff steps (~27 Shapes3D epochs at batch 128).
    paper_train = TrainConfig(steps=100_000, batch_size=128, lr=2.56e-4, weight_decay=0.01, ema_decay=0.9999,
                              warmup_steps=10_000, amp=False, log_every=1000, ckpt_every=10_000)
    paper_model = DisDiffConfig(dpm=_pdae_dpm("paper"), sample_steps=200)
    paper = Preset(paper_model, paper_train)
    # CelebA: the reference's loader (ldm/data/dis.py Celebarain = CelebAlmdb with split None, crop_d2c, do_augment
    # False) reads every image of the LMDB and never flips.
    celeba = Preset(paper_model, paper_train, data=(("split", "all"), ("flip", False)))
    return {
        "smoke": Preset(smoke, smoke_train, data=(("resolution", 16),)),
        "quick": Preset(quick, quick_train, data=(("resolution", 32),)),
        "paper": {"default": paper, "shapes3d": paper, "celeba": celeba,
                  "mpi3d": Preset(replace(paper_model, dis_weight=0.01), paper_train),
                  "cars3d": Preset(paper_model, paper_train, data=(("repeat", 10),))},  # Cars3D repeated 10x (§1.1)
    }


PRESETS = _presets()


def _check(cfg: DisDiffConfig, spec: DataSpec) -> None:
    """ConfigError for settings that cannot build DisDiff for ``spec``; ``benchbench run`` calls it before any stage
    is built (registered as the method's ``check``)."""
    if cfg.space not in ("latent", "image"):
        raise ConfigError(f"disdiff: model.space must be 'latent' or 'image', got {cfg.space!r}")
    if cfg.frozen_weights not in ("online", "ema"):
        raise ConfigError(f"disdiff: model.frozen_weights must be 'online' or 'ema', got {cfg.frozen_weights!r}")
    if cfg.dis_loss_type not in ("Z", "IM"):
        raise ConfigError(f"disdiff: model.dis_loss_type must be 'Z' or 'IM', got {cfg.dis_loss_type!r}")
    if cfg.num_factors < 2 or cfg.factor_dim < 1:
        raise ConfigError("disdiff: model.num_factors must be >= 2 and model.factor_dim >= 1")
    if cfg.num_factors > cfg.orth_dim:
        raise ConfigError(f"disdiff: model.orth_dim ({cfg.orth_dim}) must be >= model.num_factors")
    if cfg.space == "latent" and cfg.ldm.autoencoder.kind not in ("vq", "kl"):
        raise ConfigError(f"disdiff: model.ldm.autoencoder.kind must be 'vq' or 'kl', got {cfg.ldm.autoencoder.kind!r}")
    if cfg.encoder not in ("conv", "clip"):
        raise ConfigError(f"disdiff: model.encoder must be 'conv' or 'clip', got {cfg.encoder!r}")
    if cfg.encoder == "clip":
        check_clip(cfg.clip)
    side = spec.resolution
    if side < 8 or 4 * 2 ** round(np.log2(side / 4)) != side:
        raise ConfigError(f"disdiff: the encoder needs a resolution 4 * 2^k (k >= 1), got {side}; set data.resolution")


def _stages(cfg: object) -> dict[str, object]:
    m: DisDiffConfig = cfg.model  # type: ignore[attr-defined]
    if m.space == "latent":
        return {"ldm": ldm_request(cfg.dataset, cfg.data, m.ldm, m.stage_seed)}  # type: ignore[attr-defined]
    return {"dpm": ddpm_request(cfg.dataset, cfg.data, m.dpm, m.stage_seed)}  # type: ignore[attr-defined]


@register_method(
    "disdiff", config=DisDiffConfig, presets=PRESETS, stages=_stages, check=_check,
    description="DisDiff (Yang et al. 2023): N factor gradient fields on a frozen (latent) DPM",
)
class DisDiff(Method):
    """Encoder E, factor decoder G and a frozen DPM (Yang et al. 2023); the module doc has the objective.

    Args:
        cfg: DisDiff settings.
        spec: the dataset.
        stages: {"ldm": Artifact} in latent space, {"dpm": Artifact} in image space (the runner provides them).
    """

    cfg: DisDiffConfig
    ema_exclude = ("encoder.",)  # the reference EMA-averages the UNet side only; E is used as trained

    def __init__(self, cfg: DisDiffConfig, spec: DataSpec, stages: dict[str, Artifact] | None = None) -> None:
        _check(cfg, spec)
        super().__init__(cfg, spec)
        key = "ldm" if cfg.space == "latent" else "dpm"
        if not stages or key not in stages:
            raise ConfigError(f"disdiff in {cfg.space} space needs the {key!r} stage (benchbench run builds it first)")
        frozen: LatentDPM | DPM = LatentDPM(cfg.ldm, spec) if cfg.space == "latent" else DPM(cfg.dpm, spec)
        frozen.load_state_dict(stages[key].load_state(online=cfg.frozen_weights == "online"))
        self.frozen = frozen.requires_grad_(False).eval()
        self.schedule: Schedule = frozen.schedule
        unet = frozen.unet
        width = unet.cfg.embed_dim
        self.encoder: nn.Module = (
            ClipFactorEncoder(cfg.clip, cfg.num_factors, cfg.factor_dim) if cfg.encoder == "clip"
            else FactorEncoder(spec.channels, spec.resolution, cfg.encoder_channels, cfg.code_dim))
        self.repre_embed = nn.Linear(cfg.factor_dim, width)
        self.orth_weight = nn.Parameter(torch.randn(cfg.orth_dim, cfg.orth_dim))
        self.factor_proj = nn.Linear(cfg.orth_dim, width)
        self.shift = UNetDecoder(replace(unet.cfg, cond_dim=width, cond_mode="scale_shift"))  # G
        self.code_moments = CodeMoments(cfg.code_dim, cfg.code_momentum)  # the Gaussian behind ``sample``

    def train(self, mode: bool = True) -> DisDiff:
        """Train mode for E and G only: the frozen model stays in eval mode."""
        super().train(mode)
        self.frozen.eval()
        return self

    # Frozen parts.

    def to_latent(self, x: Tensor) -> Tensor:
        """y_0 [N, c, r, r]: the scaled first-stage latent (latent space) or x itself (image space)."""
        return self.frozen.to_latent(x) if isinstance(self.frozen, LatentDPM) else x

    def from_latent(self, y: Tensor, quantize: bool = True) -> Tensor:
        """D(y) [N, C, R, R]: the frozen decoder (latent space) or the identity (image space)."""
        return self.frozen.from_latent(y, quantize) if isinstance(self.frozen, LatentDPM) else y

    # The decoder G.

    def fields(self, y_t: Tensor, t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """eps_theta(y_t, t) [B, c, r, r] (no grad) and every factor's field G_c [B, N, c, r, r] for codes z [B, N · k].

        One pass of the frozen input blocks feeds both the frozen output blocks and G, which runs on the N factors as
        one batch of N · B (factor-major)."""
        n, b = self.cfg.num_factors, y_t.shape[0]
        unet = self.frozen.unet
        with torch.no_grad():
            h, skips, emb = unet.encoder(y_t, t)
            eps = unet.decoder(h, skips, emb)
        part = self.factor_proj(factor_embedding(self.orth_weight)[:n])  # [N, width]
        emb_c = (emb[None] + part[:, None]).flatten(0, 1)  # e_c = emb(t) + part(c): [N · B, width]
        codes = self.repre_embed(z.view(b, n, -1).transpose(0, 1).flatten(0, 1))  # [N · B, width]
        g = self.shift(h.repeat(n, 1, 1, 1), [s.repeat(n, 1, 1, 1) for s in skips], emb_c, codes)
        return eps, g.view(n, b, *g.shape[1:]).transpose(0, 1)

    # Training.

    def frozen_encode(self, x: Tensor) -> Tensor:
        """E'(x): the encoder with detached weights and eval-mode BatchNorm (the reference's frozen eval copy)."""
        was = self.encoder.training
        self.encoder.eval()
        params = {k: v.detach() for k, v in self.encoder.named_parameters()}
        buffers = dict(self.encoder.named_buffers())
        try:
            return functional_call(self.encoder, {**params, **buffers}, (x,))
        finally:
            self.encoder.train(was)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """L = L_r + mean lambda w (L_in + L_va) on x [N, C, R, R] (module doc).

        Random numbers in this order: t [B], eps (like y_0), c [B].
        """
        s, n = self.schedule, self.cfg.num_factors
        z = self.encoder(x)
        if self.training:
            self.code_moments.update(z)
        y0 = self.to_latent(x)
        b = y0.shape[0]
        t = torch.randint(0, s.num_steps, (b,), device=x.device)
        noise = torch.randn_like(y0)
        y_t = s.q_sample(y0, t, noise)
        eps, g = self.fields(y_t, t, z)
        eps_hat = eps - s.gather(s.pdae_shift_coef, t, eps) * g.sum(1)
        l_r = F.l1_loss(eps_hat.float(), noise.float())

        c = torch.randint(0, n, (b,), device=x.device)
        g_c = g[torch.arange(b, device=x.device), c]
        sigma = (1.0 - s.gather(s.alphas_bar, t, eps)).sqrt()
        y0_c = s.predict_x0(y_t, t, eps - sigma * g_c)
        with torch.no_grad():
            y0_u = s.predict_x0(y_t, t, eps)
            x0_u = self.from_latent(y0_u, quantize=False)
            r = self.frozen_encode(x0_u)
        x0_c = self.from_latent(y0_c, quantize=False)
        r_c = self.frozen_encode(x0_c)
        l_in, l_va = disentangle_loss(z, r, r_c, c, n)
        with torch.no_grad():
            gap = (y0_u - y0_c) if self.cfg.dis_loss_type == "Z" else (x0_u - x0_c)
            w = gap.float().square().flatten(1).mean(1)
        l_dis = (self.cfg.dis_weight * w * (l_in + l_va)).mean()
        return {"loss": l_r + l_dis, "l_r": l_r.detach(), "l_in": l_in.mean().detach(), "l_va": l_va.mean().detach(),
                "w": w.mean()}

    # Representation.

    def encode(self, x: Tensor) -> Tensor:
        """The raw code z = E(x) [N, num_factors · factor_dim] (TAD's input; factor metrics see PCA scores)."""
        return self.encoder(x)

    code_rule = "pca+standardized"

    def code_postprocess(self, codes: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Per-factor PCA(1) fitted on dataset codes [M, N · k] -> [n, N] scores (methods.md §6.6), then the diffusion
        code rule (``benchbench.method.CODE_RULES``): the scores z-normalised with the same codes' statistics."""
        return then_standardize(factor_pca(codes, self.cfg.num_factors), codes)

    # Sampling and figures.

    def eps_hat(self, z: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """eps_theta - sqrt(1 - ab_t) sum_c G_c for fixed codes z [B, N · k] (the reference's sampling form)."""

        def fn(y_t: Tensor, t: Tensor) -> Tensor:
            eps, g = self.fields(y_t, t, z)
            return eps - (1.0 - self.schedule.gather(self.schedule.alphas_bar, t, eps)).sqrt() * g.sum(1)

        return fn

    def _latent_shape(self, x_like: int) -> tuple[int, ...]:
        u = self.frozen.unet.cfg
        return (x_like, u.in_channels, u.resolution, u.resolution)

    def decode(self, y_T: Tensor, z: Tensor, eta: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """LDM DDIM from y_T [B, c, r, r] with codes z [B, N · k], then D: [B, C, R, R] in [-1, 1]."""
        grid = ddim.ldm_grid(self.schedule, self.cfg.sample_steps)
        return self.from_latent(ddim.sample(self.eps_hat(z), y_T, grid, eta=eta, generator=generator)).clamp(-1, 1)

    def invert(self, x: Tensor, z: Tensor) -> Tensor:
        """y_T [B, c, r, r]: deterministic DDIM inversion of y_0 = to_latent(x) under eps_hat(., z) (module doc)."""
        return ddim.invert(self.eps_hat(z), self.to_latent(x), ddim.ldm_grid(self.schedule, self.cfg.sample_steps,
                                                                              invert=True))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples [n, C, R, R]: z from the code Gaussian, y_T ~ N(0, I), DDIM with ``eta``, D. All noise is drawn
        on the CPU from ``generator`` (z, y_T, then one draw per step when eta > 0)."""
        z = self.code_moments.sample(n, generator)
        y_T = randn(self._latent_shape(n), generator, device=self.device)
        return self.decode(y_T, z, self.cfg.eta, generator)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """x -> z and y_T (DDIM inversion of y_0 under eps_hat(., z)) -> decode: [N, C, R, R]."""
        z = self.encode(x)
        return self.decode(self.invert(x, z), z)

    @torch.no_grad()
    def traverse(self, x: Tensor, dim: int, values: Tensor) -> Tensor:
        """Decode x [N, C, R, R] (its inverted y_T kept) with raw code dimension ``dim`` set to ``values`` [V]."""
        z = self.encode(x)
        y_T = self.invert(x, z)
        v, n = len(values), len(x)
        zs = z.repeat(v, 1)
        zs[:, dim] = values.to(zs).repeat_interleave(n)
        return self.decode(y_T.repeat(v, 1, 1, 1), zs).view(v, n, *x.shape[1:])

    def protocol(self) -> dict[str, str]:
        """Sampler, inversion, generator and frozen weights of this instance (recorded with every number)."""
        k = self.cfg.sample_steps
        grid = ddim.ldm_grid(self.schedule, k)
        return {
            "sampler": f"LDM DDIM K={k} (make_ddim_timesteps uniform + 1: {ddim.describe(grid)}), eta={self.cfg.eta:g}"
                       f", no clipping, eps - sqrt(1 - ab_t) sum_c G_c",
            "inversion": f"none in the reference; ours (figures): deterministic DDIM inversion on the same grid "
                         f"({ddim.describe(ddim.ldm_grid(self.schedule, k, invert=True))}), decoded with eta = 0",
            "generator": "z ~ Gaussian fitted to training codes (benchbench stand-in; the reference samples with codes "
                         "of encoded images), y_T ~ N(0, I), the sampler, then D",
            "frozen": f"{self.cfg.space}-space DPM stage, "
                      f"{'non-EMA (load_ema_ckpt quirk)' if self.cfg.frozen_weights == 'online' else 'EMA'} weights",
        }

    def deviations(self) -> list[str]:
        """What still differs from DisDiff's configs for this instance."""
        out = ["G's EMA has no (1 + n) / (10 + n) decay warm-up (the shared loop's EMA is plain)",
               "training lengths are UNVERIFIED benchbench choices (no stopping criterion in the configs)"]
        if self.cfg.space == "latent":
            out.insert(0, "the first-stage autoencoder trains with L1 + its VQ/KL term only: no LPIPS or patch-GAN "
                          "(their pre-trained weights cannot be downloaded)")
        else:
            out.insert(0, "image space is not in the reference (latent space only): the frozen model is PDAE's DPM")
        if self.cfg.frozen_weights == "ema":
            out.append("the frozen model uses the stage's EMA weights; the reference freezes the non-EMA ones")
        if self.spec.family not in ("shapes3d", "mpi3d", "celeba"):
            out.append(f"DisDiff has no config for {self.spec.family or self.spec.name}: the Shapes3D one is reused")
        return out + paper_differences(PRESETS, self.cfg, self.spec.family, "disdiff")

    @torch.no_grad()
    def factor_traversals(self, x: Tensor, codes: Tensor, num_values: int) -> Tensor:
        """One row per factor: x [1, C, R, R]'s PCA(1) score of factor c moved over mean ± 2 std of the scores of
        ``codes`` [M, N · k], the other factors and y_T kept. Returns [N, V, C, R, R]."""
        n, k = self.cfg.num_factors, self.cfg.factor_dim
        pca = factor_pca(codes.detach().cpu().double().numpy(), n)
        scores = torch.as_tensor(pca(codes.detach().cpu().double().numpy()))  # [M, N]
        z = self.encode(x)
        own = torch.as_tensor(pca(z.cpu().double().numpy()))[0]  # [N]
        y_T = self.invert(x, z)
        rows = []
        for c in range(n):
            target = scores[:, c].mean() + scores[:, c].std() * torch.linspace(-2, 2, num_values, dtype=torch.float64)
            shift = (target - own[c])[:, None] * torch.as_tensor(pca.dirs[c])[None]  # [V, k]: score_c -> target
            zs = z.repeat(num_values, 1)
            zs[:, c * k:(c + 1) * k] += shift.to(zs)
            rows.append(self.decode(y_T.repeat(num_values, 1, 1, 1), zs))
        return torch.stack(rows)
