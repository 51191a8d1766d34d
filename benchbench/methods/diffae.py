"""Diffusion autoencoder (``diffae``).

Reference: Preechakul et al., "Diffusion Autoencoders: Toward a Meaningful and Decodable Representation",
CVPR 2022, https://arxiv.org/abs/2111.15640; methods.md §4. A semantic encoder z_sem = Enc(x_0) (Sec. 3, "Semantic
encoder") conditions an eps-predicting UNet through AdaGN, h <- (GN(h)(1 + t_s) + t_b)(1 + z_s) (Sec. 3,
"Diffusion-based decoder", with the official code's "1 +" offsets; :mod:`benchbench.nets.unet`, ``cond_mode="scale"``).
Both are trained jointly from scratch with the simple DDPM loss (Ho et al. 2020, Eq. 14, conditioned on z_sem),
t ~ U{0..T-1}:

    L = E_{x_0, t, eps} mean_pixels || eps_theta(x_t, t, Enc(x_0)) - eps ||^2,   x_t = q_sample(x_0, t, eps).

The stochastic code x_T is the deterministic DDIM inversion of x_0 under the conditional model (Sec. 3, "Stochastic
encoder"); decoding runs conditional DDIM (Song et al. 2021, Eq. 12, eta = 0) from (z_sem, x_T). Both run as the
official sampler does (:func:`benchbench.ddim.diffae_grid`): the ``space_timesteps`` "ddimK" grid, x0_hat clipped to
[-1, 1] at every step (``clip_denoised=True``), the inversion starting with x_0 at ab_0 and ending at ab = 0
(``ddim_reverse_sample_loop``). Representation for the metrics: z_sem (methods.md §8).

Unconditional sampling. Diff-AE draws z_sem from a second "latent DDIM" (Sec. 4, "Sampling with diffusion
autoencoders"; official code: a 10-layer skip MLP on z-normalised codes, constant beta 0.008, L1 loss; methods.md §4)
trained after the autoencoder: the ``latent`` stage (:mod:`benchbench.methods.latent_prior`), built by ``benchbench
run`` after training with ``code_prior="latent"``; :meth:`DiffAE.sample` then decodes with ``generate_steps`` DDIM
steps (10: the CelebA script's ``fid(10,10)``). ``code_prior="gaussian"`` instead draws z ~ N(mu, Sigma), a
full-covariance Gaussian fitted to the encoder's codes of recent training batches (a cruder stand-in, not the
paper's generator). It is kept in buffers (saved with checkpoints, resumed with them, copied into the EMA model by
train.py) and updated in ``loss`` without gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from benchbench import ddim
from benchbench.config import Preset, TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.diffusion import EpsFn, Schedule
from benchbench.errors import ConfigError
from benchbench.method import Method, paper_differences, randn, standardize_codes
from benchbench.methods.dpm import check_image_nets
from benchbench.methods.latent_prior import DIFFAE_LATENT, LatentConfig
from benchbench.methods.latent_prior import quick as quick_latent
from benchbench.nets.unet import SemanticEncoder, SemanticEncoderConfig, UNet, UNetConfig
from benchbench.registry import register_method

# Diff-AE CelebA-64 (templates.py: ffhq64_autoenc; methods.md §4): UNet base 64, (1, 2, 4, 8), 2 blocks, attention at
# 16, embed 512, dropout 0.1, res-block up/down; encoder (1, 2, 4, 8, 8), attention at 16, 2 blocks, unconditioned
# single-conv blocks (no dropout: ``BeatGANsEncoderModel``, use_time_condition=False), 19,320,512 parameters.
PAPER_UNET = UNetConfig(time_embed_dim=512, cond_dim=512, cond_mode="scale")
PAPER_ENCODER = SemanticEncoderConfig(out_dim=512)


@dataclass(frozen=True)
class DiffAEConfig:
    """Diff-AE settings; defaults are the CelebA-64 autoencoder (methods.md §4).

    Attributes:
        unet: the conditional noise predictor; ``cond_dim`` must equal ``z_dim`` and ``cond_mode`` be "scale".
        encoder: the semantic encoder; ``out_dim`` must equal ``z_dim``.
        z_dim: size of z_sem (512 in the paper; 512 on ground-truth sets is a benchbench choice, methods.md §9).
            Changing it means changing all three: ``--set model.z_dim=D --set model.unet.cond_dim=D
            --set model.encoder.out_dim=D``.
        num_steps, beta_start, beta_end: the linear DDPM schedule (T = 1000, 1e-4 -> 0.02).
        sample_steps: DDIM steps for reconstruct, traverse and sample (and for the DDIM inversion); 20 is the
            official code's T_eval during training, its CelebA FID script uses 10.
        clip_denoised: clip x0_hat to [-1, 1] at every DDIM step of sampling and inversion (the official default).
        code_prior: prior of z_sem for ``sample``: "latent" (the latent DDIM stage) or "gaussian" (module doc).
        latent: the latent DDIM (``celeba64d2c_autoenc_latent``).
        generate_steps: DDIM steps of the image sampler in ``sample`` (``fid(10,10)``: 10).
        stats_momentum: weight of a new batch in the running mean/covariance of z_sem (1/momentum batches is
            roughly the window; the first batches are averaged uniformly).
    """

    unet: UNetConfig = field(default_factory=lambda: PAPER_UNET)
    encoder: SemanticEncoderConfig = field(default_factory=lambda: PAPER_ENCODER)
    z_dim: int = 512
    num_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    sample_steps: int = 20
    clip_denoised: bool = True
    code_prior: str = "latent"
    latent: LatentConfig = field(default_factory=lambda: DIFFAE_LATENT)
    generate_steps: int = 10
    stats_momentum: float = 0.001


def _check(cfg: DiffAEConfig, spec: DataSpec) -> None:
    """Raise ConfigError for settings that cannot build a Diff-AE for ``spec`` (checked at build time, so that
    several ``--set`` overrides may pass through inconsistent intermediate configs)."""
    d = cfg.z_dim
    if cfg.unet.cond_dim != d or cfg.encoder.out_dim != d:
        raise ConfigError(
            f"diffae: model.z_dim={d} but model.unet.cond_dim={cfg.unet.cond_dim} and model.encoder.out_dim="
            f"{cfg.encoder.out_dim}; set all three, e.g. --set model.z_dim={d} --set model.unet.cond_dim={d} "
            f"--set model.encoder.out_dim={d}"
        )
    if cfg.unet.cond_mode != "scale":
        raise ConfigError("diffae: model.unet.cond_mode must be 'scale' (Diff-AE's h (1 + z_s), methods.md §4)")
    for key in ("sample_steps", "generate_steps"):
        try:
            ddim.ddim_stride_timesteps(cfg.num_steps, getattr(cfg, key))
        except ValueError as e:
            raise ConfigError(f"diffae: model.{key}={getattr(cfg, key)}: {e}; pick a step count such as 10, 20, "
                              f"50 or 100") from None
    if not 0 < cfg.stats_momentum <= 1:
        raise ConfigError(f"diffae: model.stats_momentum must be in (0, 1], got {cfg.stats_momentum}")
    check_image_nets("diffae", (("unet", cfg.unet), ("encoder", cfg.encoder)), spec)
    if cfg.unet.out_channels != spec.channels:
        raise ConfigError(f"diffae: model.unet.out_channels must be {spec.channels} (eps has the image's channels)")


# Presets.

_SMOKE_Z = 8
_QUICK_Z = 16
# 72M training samples at batch 128 (methods.md §4): Adam 1e-4, no weight decay, grad clip 1, EMA 0.9999, fp16.
PAPER_TRAIN = TrainConfig(steps=562_500, batch_size=128, lr=1e-4, grad_clip=1.0, ema_decay=0.9999,
                          log_every=1000, ckpt_every=10_000)
_PAPER = Preset(DiffAEConfig(), PAPER_TRAIN)
# CelebA: Diff-AE's ``celebalmdb`` holds all 202,599 images (dataset.py CelebAlmdb, split None, d2c crop, flips).
_PAPER_CELEBA = Preset(DiffAEConfig(), PAPER_TRAIN, data=(("split", "all"),))

PRESETS = {
    # Seconds on a CPU: 16x16 images, a two-level UNet without attention, 8-d code.
    "smoke": Preset(
        DiffAEConfig(
            unet=UNetConfig(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                            attention_resolutions=(), dropout=0.0, num_groups=4, cond_dim=_SMOKE_Z),
            encoder=SemanticEncoderConfig(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                                          attention_resolutions=(), num_groups=4, out_dim=_SMOKE_Z),
            z_dim=_SMOKE_Z, sample_steps=5, stats_momentum=0.2, code_prior="gaussian", generate_steps=5,
        ),
        TrainConfig(steps=10, batch_size=8, lr=1e-3, log_every=5, ckpt_every=5),
        data=(("resolution", 16),),
    ),
    # Not a paper setting: a CPU-laptop run at 32x32 with a 16-d code (the paper's is 512-d). The semantic encoder is
    # smaller than the UNet's encoder half because evaluation at quick sizes encodes ~165k distinct images (FactorVAE
    # and BetaVAE-score batches): base 16 with attention costs ~2.2 ms per image on one busy core, this one ~0.9 ms.
    # Fewer code dims also keep DCI's gradient-boosted trees (one per factor, cost ~ dims) affordable. Measured on
    # shapes3d-synth with one thread on a shared 2-core machine: 1000 steps in 194 s, figures and scoring 90 s,
    # 4 min 50 s in all (4 min of CPU time).
    "quick": Preset(
        DiffAEConfig(
            unet=UNetConfig(resolution=32, base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                            attention_resolutions=(8,), num_groups=8, dropout=0.0, cond_dim=_QUICK_Z),
            encoder=SemanticEncoderConfig(resolution=32, base_channels=8, channel_mult=(1, 2, 4), num_res_blocks=1,
                                          attention_resolutions=(), num_groups=4, out_dim=_QUICK_Z),
            z_dim=_QUICK_Z, sample_steps=10, stats_momentum=0.02, latent=quick_latent(DIFFAE_LATENT),
        ),
        TrainConfig(steps=1000, batch_size=16, lr=1e-3, grad_clip=1.0, ema_decay=0.99, warmup_steps=100,
                    log_every=50, ckpt_every=500),
        data=(("resolution", 32),),
    ),
    # CelebA-64 is the paper's setting; shapes3d and mpi3d reuse it (benchbench choice, methods.md §9 "*").
    "paper": {"default": _PAPER, "celeba": _PAPER_CELEBA},
}


@register_method(
    "diffae", config=DiffAEConfig, presets=PRESETS, check=_check,
    description="Diff-AE (Preechakul et al. 2022): semantic encoder + z-conditioned DDIM, latent DDIM z prior",
)
class DiffAE(Method):
    """Semantic encoder + z_sem-conditioned DDIM (Preechakul et al. 2022, Sec. 3); the module doc has the details.

    Buffers: ``z_mean`` [D], ``z_cov`` [D, D] (running statistics of training codes) and ``z_batches`` (how many
    batches they summarise).
    """

    cfg: DiffAEConfig
    z_mean: Tensor
    z_cov: Tensor
    z_batches: Tensor

    def __init__(self, cfg: DiffAEConfig, spec: DataSpec) -> None:
        _check(cfg, spec)
        super().__init__(cfg, spec)
        self.encoder = SemanticEncoder(cfg.encoder)
        self.unet = UNet(cfg.unet)
        self.schedule = Schedule.linear(cfg.num_steps, cfg.beta_start, cfg.beta_end)
        # N(0, I) until the first training batch replaces it.
        self.register_buffer("z_mean", torch.zeros(cfg.z_dim))
        self.register_buffer("z_cov", torch.eye(cfg.z_dim))
        self.register_buffer("z_batches", torch.zeros((), dtype=torch.long))

    # Training.

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Simple eps-MSE (Ho et al. 2020, Eq. 14) conditioned on Enc(x_0); x [N, C, H, W] in [-1, 1].

        Random numbers are drawn in this order: t [N] (``torch.randint``), then eps (``torch.randn_like``).

        Returns:
            {"loss": mean over pixels and batch, "z_std": mean per-dimension std of z_sem in the batch}.
        """
        t = torch.randint(0, self.cfg.num_steps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(x)
        z = self.encoder(x)
        eps = self.unet(self.schedule.q_sample(x, t, noise), t, z)
        mse = F.mse_loss(eps.float(), noise.float())
        if self.training:
            self._update_latent_stats(z.detach().float())
        return {"loss": mse, "z_std": z.detach().float().std(0).mean()}

    @torch.no_grad()
    def _update_latent_stats(self, z: Tensor) -> None:
        """Fold a batch of codes z [B, D] into the running mean and covariance.

        With weight a for the batch (mean m, biased covariance C): mu' = mu + a (m - mu) and
        Sigma' = (1 - a) Sigma + a C + a (1 - a) (m - mu)(m - mu)^T, the exact covariance of the two-part mixture.
        a = max(1 / (k + 1), stats_momentum) after k batches, so the first batch replaces the N(0, I) start.
        """
        k = int(self.z_batches)
        a = max(1.0 / (k + 1), self.cfg.stats_momentum)
        m = z.mean(0)
        zc = z - m
        c = zc.T @ zc / z.shape[0]
        delta = (m - self.z_mean).unsqueeze(1)
        self.z_cov.mul_(1 - a).add_(a * c + a * (1 - a) * (delta @ delta.T))
        self.z_mean.add_(a * delta.squeeze(1))
        self.z_batches.add_(1)

    # Inference.

    def _eps_fn(self, z: Tensor) -> EpsFn:
        """eps_theta(., ., z) for the samplers; z [B, D] matches the batch they run on."""
        return lambda x_t, t: self.unet(x_t, t, z)

    # The factor metrics see z_sem z-normalised with dataset statistics, as Diff-AE's own attribute classifiers
    # do (``manipulate_znormalize``, methods.md §4): raw z_sem of a small model can sit entirely under
    # FactorVAE's absolute 0.05 std prune threshold. TAD and ``benchbench score`` see raw z_sem.
    code_postprocess = staticmethod(standardize_codes)
    code_rule = "standardized"  # the diffusion code rule (benchbench.method.CODE_RULES)

    def encode(self, x: Tensor) -> Tensor:
        """The metrics' representation [N, z_dim] of x [N, C, H, W]: raw z_sem."""
        return self.encoder(x)

    def stochastic_code(self, x: Tensor, z: Tensor) -> Tensor:
        """x_T [N, C, H, W]: DDIM inversion of x [N, C, H, W] given its z_sem [N, D] (stochastic encoder)."""
        grid = ddim.diffae_grid(self.schedule, self.cfg.sample_steps, invert=True)
        return ddim.invert(self._eps_fn(z), x, grid, clip=self.cfg.clip_denoised)

    def decode(self, x_T: Tensor, z: Tensor, steps: int | None = None) -> Tensor:
        """Deterministic DDIM decoding (eta = 0, ``steps`` or ``sample_steps``) of (z_sem [N, D], x_T [N, C, H, W])
        -> [N, C, H, W] in [-1, 1]."""
        grid = ddim.diffae_grid(self.schedule, steps or self.cfg.sample_steps)
        return ddim.sample(self._eps_fn(z), x_T, grid, clip=self.cfg.clip_denoised).clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """x [N, C, H, W] -> encode, invert to x_T, decode: [N, C, H, W] in [-1, 1]."""
        z = self.encoder(x)
        return self.decode(self.stochastic_code(x, z), z)

    @torch.no_grad()
    def traverse(self, x: Tensor, dim: int, values: Tensor) -> Tensor:
        """Decode each x's own x_T with code dimension ``dim`` set to each of ``values`` [V] (in ``encode``'s units):
        [V, N, C, H, W] in [-1, 1]."""
        z = self.encoder(x)
        x_T = self.stochastic_code(x, z)
        v, n = len(values), x.shape[0]
        values = values.to(z)
        zs = z.unsqueeze(0).repeat(v, 1, 1)  # [V, N, D]
        zs[:, :, dim] = values[:, None]
        out = self.decode(x_T.repeat(v, 1, 1, 1), zs.flatten(0, 1))  # value-major, as the reshape below
        return out.view(v, n, *x.shape[1:])

    def protocol(self) -> dict[str, str]:
        """Sampler, inversion and generator of this instance (recorded with every number)."""
        k, clip = self.cfg.sample_steps, "x0 clipped to [-1,1] each step" if self.cfg.clip_denoised else "no clipping"
        grid = ddim.diffae_grid(self.schedule, k)
        return {
            "sampler": f"DDIM K={k} (Diff-AE space_timesteps ddim{k}: {ddim.describe(grid)}), eta=0, {clip}",
            "inversion": f"DDIM reverse K={k} (ddim_reverse_sample_loop): x0 at ab_0, same t, last step to ab = 0, "
                         f"{clip}",
            "generator": f"z_sem: {self.code_generator()}; x_T ~ N(0, I), then the sampler with "
                         f"K={self.cfg.generate_steps} (fid(10,10) uses 10)",
        }

    def deviations(self) -> list[str]:
        """What still differs from Diff-AE's CelebA-64 autoencoder for this instance."""
        out = self.code_prior_deviations("the paper's latent DDIM (Sec. 4)")
        if self.spec.family != "celeba":
            out.append(f"Diff-AE has no run on {self.spec.family or self.spec.name}: the CelebA-64 setting is reused "
                       f"(benchbench choice)")
        if not self.cfg.clip_denoised:
            out.append("x0 is not clipped in the sampler (Diff-AE clips it every step)")
        return out + paper_differences(PRESETS, self.cfg, self.spec.family, "diffae")

    def latent_prior(self) -> tuple[Tensor, Tensor]:
        """(mu [D], L [D, D]) with L L^T = Sigma of the Gaussian z_sem prior (float64, CPU; eigh for PSD safety)."""
        mu = self.z_mean.detach().double().cpu()
        cov = self.z_cov.detach().double().cpu()
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
        return mu, evecs * evals.clamp_min(0).sqrt()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples [n, C, H, W] in [-1, 1]: z from the latent DDIM (or N(mu, Sigma), module doc), x_T ~ N(0, I),
        DDIM decode in ``generate_steps`` steps.

        Both noises are drawn on the CPU from ``generator``, z's first, so a seed gives the same samples anywhere.
        """
        z = self.sample_codes(n, generator)
        x_T = randn((n, self.spec.channels, self.spec.resolution, self.spec.resolution), generator, device=self.device)
        return self.decode(x_T, z.to(self.device, torch.float32), self.cfg.generate_steps)

    def gaussian_codes(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(mu, Sigma) of the running code statistics [n, D] (float32, on the model's device)."""
        mu, lower = self.latent_prior()
        return (mu + randn((n, self.cfg.z_dim), generator).double() @ lower.T).to(self.device, torch.float32)
