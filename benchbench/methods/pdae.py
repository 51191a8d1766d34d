"""PDAE (``pdae``): representation learning from a frozen pre-trained DPM by posterior-mean-gap filling.

Reference: Zhang et al., "Unsupervised Representation Learning from Pre-trained Diffusion Probabilistic Models",
NeurIPS 2022, https://arxiv.org/abs/2212.12990; code ckczzj/PDAE (``model/unet/shift_unet.py``,
``model/diffusion/gaussian_diffusion.py``); methods.md §5 and hazard 5 of §10.

A frozen unconditional eps_theta (the cached ``ddpm`` stage) is shifted by a learned mean shift Sigma_t G_psi(x_t, z, t)
with z = E_phi(x_0); in eps form (``shift_coef`` of the reference, stored there with the minus sign)

    eps_hat = eps_theta(x_t, t) - sqrt(alpha_t) (1 - ab_{t-1}) / sqrt(1 - ab_t) * G_psi(x_t, z, t),
    L = E_{t ~ U{0..T-1}, x_0, eps} lambda_t mean_pixels || eps - eps_hat ||^2,
    lambda_t = (1 / (1 + SNR_t))^(1 - gamma) (SNR_t / (1 + SNR_t))^gamma = SNR_t^gamma / (1 + SNR_t),  gamma = 0.1.

Only E_phi, G_psi and G's code embedding (``label_emb``) are trained. G_psi is a fresh, randomly initialised copy of
the UNet's middle and output blocks (zero-initialised last conv), fed by the *frozen* encoder half: one pass of that
half gives the features for both the frozen decoder (eps_theta) and G_psi. z enters every G block as
(z_s, z_b) = Linear(SiLU(label_emb(z))), h <- (1 + z_s)(GN(h)(1 + t_s) + t_b) + z_b.

Sampling and inversion run as PDAE's ``diffusion/ddim.py`` (:func:`benchbench.ddim.pdae_grid`): the respaced grid
map = int(linspace(0, T - 1, K + 1)), x0_hat clipped to [-1, 1] at every step, and the mean shift with DDIM's own
coefficient, eps_hat = eps_theta - sqrt(1 - ab_t) G (the training coefficient above differs near t = 0). Generation
applies the shift only on the first (1 - ``sample_stop_percent``) of the steps, as ``latent_diffusion_sample``
(stop_percent 0.3); reconstructions and traversals shift at every step (stop_percent 0).

Simplification: PDAE generates unconditionally with a latent DPM on z (MLPSkipNet, methods.md §5), which is not
implemented yet; :meth:`PDAE.sample` draws z from a full-covariance Gaussian fitted to the codes of the training
batches instead (running moments kept as buffers), then decodes with shifted DDIM.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from benchbench import ddim
from benchbench.config import Preset, TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.diffusion import Schedule
from benchbench.errors import ConfigError
from benchbench.method import CodeMoments, Method, paper_differences, randn, standardize_codes
from benchbench.methods.dpm import DPM, DPMConfig, ddpm_request
from benchbench.nets.attention import AttentionBlock, group_norm
from benchbench.nets.unet import UNetConfig, UNetDecoder
from benchbench.registry import register_method
from benchbench.stages import Artifact


@dataclass(frozen=True)
class PDAEConfig:
    """PDAE settings; ``dpm`` and ``dpm_seed`` identify the shared ``ddpm`` stage (the frozen model).

    Attributes:
        dpm: the pre-trained DPM (its UNet also shapes G_psi, whose blocks mirror the DPM's decoder half).
        dpm_seed: the stage's seed (independent of the run seed).
        z_dim: code size (512 in the paper and on every benchbench dataset, methods.md §9).
        gamma: lambda_t exponent (0.1, PDAE code).
        encoder_channels: output channels of E_phi's stride-2 convs, first to last; a resolution-R input gets
            log2(R / 4) of them (the first ones; the last is repeated if too few), so the map is 4×4 at the end.
        encoder_attention: sides of E_phi's maps followed by self-attention (16: after the 16×16 conv).
        encoder_heads: heads of that attention (4 in PDAE's CelebA-64 encoder).
        sample_steps: DDIM steps for sample, reconstruct and traverse (inversion uses as many; PDAE's "ddimK").
        clip_denoised: clip x0_hat to [-1, 1] at every DDIM step (PDAE's DDIM always does).
        sample_stop_percent: generation drops the shift on the last this-fraction of steps (PDAE: 0.3).
        code_momentum: momentum of the running code moments behind :meth:`PDAE.sample`.
    """

    dpm: DPMConfig = field(default_factory=DPMConfig)
    dpm_seed: int = 0
    z_dim: int = 512
    gamma: float = 0.1
    encoder_channels: tuple[int, ...] = (64, 128, 128, 128)
    encoder_attention: tuple[int, ...] = (16,)
    encoder_heads: int = 4
    sample_steps: int = 100
    clip_denoised: bool = True
    sample_stop_percent: float = 0.3
    code_momentum: float = 0.99


def loss_weights(schedule: Schedule, gamma: float) -> Tensor:
    """lambda_t = (1 / (1 + SNR_t))^(1 - gamma) (SNR_t / (1 + SNR_t))^gamma [T] float64 (= SNR^gamma / (1 + SNR))."""
    snr = schedule.snr
    return (1.0 / (1.0 + snr)) ** (1.0 - gamma) * (snr / (1.0 + snr)) ** gamma


class PDAEEncoder(nn.Module):
    """E_phi: stride-2 conv3x3s with GN/SiLU between them (and self-attention at the listed sides), flatten, Linear.

    PDAE's CelebA-64 encoder (``model/representation/encoder/celeba64.py``): 3->64 (32²), GN SiLU 64->128 (16²),
    attention (4 heads), GN SiLU 128->128 (8²), GN SiLU 128->128 (4²), GN SiLU, flatten 2048, Linear -> 512.
    Other resolutions use log2(R / 4) convs so the flattened map is always 4×4.
    """

    def __init__(self, in_channels: int, resolution: int, channels: tuple[int, ...], z_dim: int,
                 attention: tuple[int, ...] = (16,), num_heads: int = 4, num_groups: int = 32) -> None:
        super().__init__()
        num_convs = round(math.log2(resolution / 4)) if resolution >= 8 else 0
        if num_convs < 1 or 4 * 2**num_convs != resolution:
            raise ConfigError(f"PDAE's encoder needs a resolution 4 * 2^k with k >= 1, got {resolution}")
        if not channels:
            raise ConfigError("model.encoder_channels must name at least one width")
        widths = [channels[min(i, len(channels) - 1)] for i in range(num_convs)]
        layers: list[nn.Module] = []
        c_in, side = in_channels, resolution
        for i, c_out in enumerate(widths):
            if i:
                layers += [group_norm(c_in, num_groups), nn.SiLU()]
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1))
            c_in, side = c_out, side // 2
            if side in attention:
                layers.append(AttentionBlock(c_in, num_heads, num_groups))
        layers += [group_norm(c_in, num_groups), nn.SiLU(), nn.Flatten(), nn.Linear(c_in * 16, z_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x [N, C, R, R] in [-1, 1] -> z [N, z_dim]."""
        return self.net(x)


@dataclass(frozen=True)
class _Pair:
    eps: Tensor  # eps_theta(x_t, t) [N, C, H, W] (frozen model)
    eps_hat: Tensor  # eps_theta - shift_coef_t G_psi(x_t, z, t) [N, C, H, W]


def _presets() -> dict[str, object]:
    """smoke / quick / paper (see the comments in the body for what is and is not a paper setting)."""
    tiny = UNetConfig(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                      attention_resolutions=(), num_groups=4, dropout=0.0)
    smoke_train = TrainConfig(steps=10, batch_size=8, lr=1e-3, log_every=5, ckpt_every=10)
    smoke = PDAEConfig(dpm=DPMConfig(unet=tiny, sample_steps=5, train=smoke_train), z_dim=8,
                       encoder_channels=(8, 8), encoder_attention=(), encoder_heads=1, sample_steps=5)
    # quick (CPU laptop, not a paper setting): 32×32, a small UNet, z_dim 32 (512 in the paper) and no attention in
    # E_phi (at 16×16 it made encoding 35× slower, and the factor metrics encode ~10^5 images). At ~5 DPM steps/s
    # (batch 16, one core) the DPM stage takes ~4 minutes, PDAE training plus evaluation about as long. The EMA
    # decays are short because the runs are: 0.999 would leave 0.999^1200 = 30% of the initial weights in the EMA.
    small = UNetConfig(resolution=32, base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                       attention_resolutions=(8,), num_groups=8, dropout=0.0)
    quick_dpm = DPMConfig(unet=small, sample_steps=20, train=TrainConfig(
        steps=1200, batch_size=16, lr=1e-3, ema_decay=0.995, grad_clip=1.0, amp=False, log_every=50,
        ckpt_every=500))
    quick = PDAEConfig(dpm=quick_dpm, z_dim=32, encoder_channels=(32, 64, 64), encoder_attention=(), sample_steps=20)
    quick_train = TrainConfig(steps=600, batch_size=16, lr=1e-3, ema_decay=0.99, grad_clip=1.0, amp=False,
                              log_every=50, ckpt_every=300)
    # paper: PDAE's CelebA-64 setting (methods.md §5): Diff-AE CelebA-64 UNet for the frozen DPM (benchbench choice;
    # PDAE's own DPM configs are not in its repo), CelebA-64 encoder, z 512, gamma 0.1; Adam 1e-4, batch 128,
    # EMA 0.9999, no AMP. Training lengths are UNVERIFIED benchbench choices: 500k steps at batch 128 for the DPM
    # stage (Diff-AE trains its CelebA-64 autoencoder ~562k steps) and 500k for PDAE (its loop has no stopping
    # criterion). The DPM stage is trained as PDAE's own trainer trains (trainer/train_regular_diffusion.py: Adam, no
    # gradient clipping, EMA 0.9999 every step, fp32: enable_amp False in every released config). The same setting
    # on Shapes3D and MPI3D (64×64) is a benchbench choice: no official PDAE run exists (methods.md §9 "*").
    paper_dpm = DPMConfig(unet=UNetConfig(), sample_steps=100, train=TrainConfig(
        steps=500_000, batch_size=128, lr=1e-4, ema_decay=0.9999, grad_clip=0.0, amp=False, log_every=1000,
        ckpt_every=10_000))
    paper = Preset(PDAEConfig(dpm=paper_dpm), TrainConfig(
        steps=500_000, batch_size=128, lr=1e-4, ema_decay=0.9999, amp=False, log_every=1000, ckpt_every=10_000))
    return {
        "smoke": Preset(smoke, smoke_train, data=(("resolution", 16),)),
        "quick": Preset(quick, quick_train, data=(("resolution", 32),)),
        "paper": {"celeba": paper, "shapes3d": paper, "mpi3d": paper},
    }


PRESETS = _presets()


@register_method(
    "pdae", config=PDAEConfig, presets=PRESETS,
    stages=lambda cfg: {"dpm": ddpm_request(cfg.dataset, cfg.data, cfg.model.dpm, cfg.model.dpm_seed)},
    description="PDAE: pre-trained DPM + learned posterior mean shift (Zhang et al. 2022)",
)
class PDAE(Method):
    """Frozen DPM eps_theta, trainable encoder E_phi and gradient estimator G_psi (Zhang et al. 2022, Sec. 3).

    Args:
        cfg: PDAE settings.
        spec: the dataset.
        stages: {"dpm": Artifact} of the ``ddpm`` stage built from ``cfg.dpm`` (the runner provides it).
    """

    cfg: PDAEConfig

    def __init__(self, cfg: PDAEConfig, spec: DataSpec, stages: dict[str, Artifact] | None = None) -> None:
        super().__init__(cfg, spec)
        if not stages or "dpm" not in stages:
            raise ConfigError("PDAE needs the pre-trained 'dpm' stage artifact (benchbench run builds it first)")
        self.dpm = DPM(cfg.dpm, spec)
        self.dpm.load_state_dict(stages["dpm"].load_state())
        self.dpm.requires_grad_(False).eval()
        self.schedule = self.dpm.schedule
        unet = self.dpm.unet
        self.encoder = PDAEEncoder(spec.channels, spec.resolution, cfg.encoder_channels, cfg.z_dim,
                                   cfg.encoder_attention, cfg.encoder_heads, unet.cfg.num_groups)
        emb_dim = 4 * unet.cfg.base_channels
        self.label_emb = nn.Linear(cfg.z_dim, emb_dim)  # PDAE's trainable ``label_emb``
        self.shift = UNetDecoder(unet.decoder_config(cond_dim=emb_dim, cond_mode="scale_shift"))  # G_psi
        self.register_buffer("weights", loss_weights(self.schedule, cfg.gamma).float(), persistent=False)
        self.code_moments = CodeMoments(cfg.z_dim, cfg.code_momentum)  # the Gaussian behind ``sample``

    def train(self, mode: bool = True) -> PDAE:
        """Train mode for E_phi and G_psi only: the frozen DPM stays in eval mode (no dropout)."""
        super().train(mode)
        self.dpm.eval()
        return self

    def _pair(self, x_t: Tensor, t: Tensor, z: Tensor) -> _Pair:
        """eps_theta and eps_hat for x_t [N, C, H, W], t [N], z [N, z_dim] from one frozen-encoder pass."""
        unet = self.dpm.unet
        with torch.no_grad():
            h, skips, emb = unet.encoder(x_t, t)
            eps = unet.decoder(h, skips, emb)
        g = self.shift(h, skips, emb, self.label_emb(z))
        coef = self.schedule.gather(self.schedule.pdae_shift_coef, t, g)
        return _Pair(eps, eps - coef * g)

    def eps_hat(self, z: Tensor, shift_from: int = 0) -> Callable[[Tensor, Tensor], Tensor]:
        """The sampler's shifted predictor (x_t, t) -> eps_theta - sqrt(1 - ab_t) G_psi(x_t, z, t) for the fixed codes
        z [N, z_dim] (PDAE ``shift_ddim_sample``'s coefficient); steps t < ``shift_from`` use eps_theta alone."""
        ab = self.schedule.alphas_bar

        def fn(x_t: Tensor, t: Tensor) -> Tensor:
            unet = self.dpm.unet
            h, skips, emb = unet.encoder(x_t, t)
            eps = unet.decoder(h, skips, emb)
            if int(t[0]) < shift_from:
                return eps
            g = self.shift(h, skips, emb, self.label_emb(z))
            return eps - self.schedule.gather((1.0 - ab).sqrt(), t, g) * g

        return fn

    def _grid(self, invert: bool = False) -> ddim.DDIMGrid:
        return ddim.pdae_grid(self.schedule, self.cfg.sample_steps, invert)

    def _invert(self, x: Tensor, z: Tensor) -> Tensor:
        return ddim.invert(self.eps_hat(z), x, self._grid(invert=True), clip=self.cfg.clip_denoised)

    def _decode(self, x_T: Tensor, z: Tensor, shift_from: int = 0) -> Tensor:
        out = ddim.sample(self.eps_hat(z, shift_from), x_T, self._grid(), clip=self.cfg.clip_denoised)
        return out.clamp(-1, 1)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Weighted eps loss on x [N, C, H, W]: mean_n lambda_t mean_pixels (eps - eps_hat)^2 (PDAE ``p_loss``)."""
        z = self.encoder(x)
        if self.training:
            self.code_moments.update(z)
        t = torch.randint(0, self.schedule.num_steps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(x)
        pair = self._pair(self.schedule.q_sample(x, t, noise), t, z)
        per = (noise.float() - pair.eps_hat.float()).square().flatten(1).mean(1)  # [N]
        with torch.no_grad():
            base = (noise.float() - pair.eps.float()).square().flatten(1).mean(1).mean()
        return {"loss": (self.weights[t] * per).mean(), "mse": per.mean().detach(), "mse_pretrained": base}

    # The diffusion code rule (benchbench.method.CODE_RULES): the factor metrics see z z-normalised per dim.
    code_postprocess = staticmethod(standardize_codes)
    code_rule = "standardized"

    def encode(self, x: Tensor) -> Tensor:
        """z = E_phi(x) [N, z_dim] for x [N, C, H, W] (the EMA encoder after training)."""
        return self.encoder(x)

    def shift_start(self) -> int:
        """First timestep of generation's grid that gets the shift: steps i - 1 >= int(stop_percent K) of
        ``shift_ddim_sample_loop`` (i = 1..K over the map), i.e. grid index >= int(stop_percent K)."""
        grid = self._grid()
        k = int(self.cfg.sample_stop_percent * len(grid.t))
        return int(grid.t[k]) if k < len(grid.t) else self.schedule.num_steps

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples [n, C, H, W] in [-1, 1]: z from the code Gaussian, then PDAE's DDIM from CPU-drawn x_T."""
        z = self.code_moments.sample(n, generator)
        c, r = self.spec.channels, self.spec.resolution
        x_T = randn((n, c, r, r), generator, device=self.device)
        return self._decode(x_T, z, self.shift_start())

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """x [N, C, H, W] -> z -> x_T by DDIM inversion with eps_hat(., z) -> DDIM decoding with the same z
        (``representation_learning_autoencoding``, in [-1, 1])."""
        z = self.encode(x)
        return self._decode(self._invert(x, z), z)

    @torch.no_grad()
    def traverse(self, x: Tensor, dim: int, values: Tensor) -> Tensor:
        """Decode x [N, C, H, W] (its inverted x_T kept) with z[:, dim] set to each of ``values`` [V]:
        [V, N, C, H, W]. All V·N images are decoded in one batch."""
        z = self.encode(x)
        x_T = self._invert(x, z)
        v, n = len(values), len(x)
        zs = z.repeat(v, 1)
        zs[:, dim] = values.to(zs).repeat_interleave(n)
        return self._decode(x_T.repeat(v, 1, 1, 1), zs).view(v, n, *x.shape[1:])

    def protocol(self) -> dict[str, str]:
        """Sampler, inversion and generator of this instance (recorded with every number)."""
        k = self.cfg.sample_steps
        clip = "x0 clipped to [-1,1] each step" if self.cfg.clip_denoised else "no clipping"
        return {
            "sampler": f"PDAE DDIM K={k} (map = int(linspace(0, {self.schedule.num_steps - 1}, K + 1)): "
                       f"{ddim.describe(self._grid())}), eta=0, {clip}, eps - sqrt(1 - ab_t) G",
            "inversion": f"PDAE DDIM encode K={k}: {ddim.describe(self._grid(invert=True))}, {clip}",
            "generator": f"z ~ Gaussian fitted to training codes (stand-in for PDAE's latent DPM), x_T ~ N(0, I), the "
                         f"sampler with the shift on t >= {self.shift_start()} (stop_percent "
                         f"{self.cfg.sample_stop_percent:g})",
        }

    def deviations(self) -> list[str]:
        """What still differs from PDAE's CelebA-64 setting for this instance."""
        out = ["PDAE's pre-trained DPM config is our choice (Diff-AE's CelebA-64 UNet): the official one is not public",
               "generation draws z from a Gaussian fitted to training codes, not PDAE's latent DPM: FID is not the "
               "paper's",
               "training lengths are UNVERIFIED benchbench choices (500k DPM steps, 500k PDAE steps at batch 128)"]
        if self.spec.family != "celeba":
            out.append(f"PDAE has no run on {self.spec.family or self.spec.name}: the CelebA-64 setting is reused "
                       f"(benchbench choice)")
        return out + paper_differences(PRESETS, self.cfg, self.spec.family, "pdae")

    def pmg_model(self) -> tuple[Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]], Schedule]:
        """(predict, schedule) for the posterior-mean-gap metric: predict(x_t, t, x0) -> (eps_theta, eps_hat),
        with z = E_phi(x0) and one frozen-encoder pass per call."""

        def predict(x_t: Tensor, t: Tensor, x0: Tensor) -> tuple[Tensor, Tensor]:
            pair = self._pair(x_t, t, self.encode(x0))
            return pair.eps, pair.eps_hat

        return predict, self.schedule
