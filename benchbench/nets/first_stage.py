"""First-stage autoencoder of latent diffusion: convolutional encoder/decoder with a VQ or a KL bottleneck.

Reference: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022,
https://arxiv.org/abs/2112.10752 (Sec. 3.1: f-times downsampling autoencoder regularised by a vector-quantisation
layer, "VQ-reg.", or a slight KL penalty towards N(0, I), "KL-reg."); van den Oord et al., "Neural Discrete
Representation Learning", NeurIPS 2017, https://arxiv.org/abs/1711.00937 (Eq. 3: codebook and commitment losses,
straight-through gradient). DisDiff's configs (methods.md §6.1): ch 32, ch_mult (1, 2, 4) -> f = 4, 2 res blocks per
level, no attention; VQ: 3 channels, codebook 2048 × 3; KL: 4 channels, kl_weight 1e-6.

Layout (time-free ResBlocks of :mod:`benchbench.nets.unet`):

    Encoder  x [N, C, R, R] -> conv3x3 -> per level: num_res_blocks ResBlocks, then a stride-2 conv except at the
             last level -> middle (ResBlock, [attention], ResBlock) -> GN, SiLU, conv3x3 -> [N, z_out, R / f, R / f]
    Decoder  y [N, z, r, r] -> conv3x3 -> middle -> per level, deepest first: (num_res_blocks + 1) ResBlocks, then
             nearest x2 + conv3x3 except at level 0 -> GN, SiLU, conv3x3 -> [N, C, R, R]

The middle attention is LDM's ``mid.attn_1`` (``ldm/modules/diffusionmodules/model.py``: every Encoder and Decoder has
it, whatever ``attn_resolutions`` says): single-head self-attention with a default-initialised output projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchbench.nets.attention import AttentionBlock, group_norm
from benchbench.nets.unet import ResBlock


def _middle(ch: int, num_groups: int, attention: bool) -> list[nn.Module]:
    """LDM's mid block: ResBlock, attention (``mid.attn_1``, output projection default-initialised), ResBlock."""
    layers: list[nn.Module] = [ResBlock(ch, num_groups=num_groups)]
    if attention:
        attn = AttentionBlock(ch, 1, num_groups)
        attn.proj.reset_parameters()  # LDM's AttnBlock.proj_out is not zero-initialised
        layers.append(attn)
    return [*layers, ResBlock(ch, num_groups=num_groups)]


class Encoder(nn.Module):
    """x [N, C, R, R] -> [N, out_channels, R / 2^(L-1), ...] (L = len(channel_mult))."""

    def __init__(self, in_channels: int, channels: int, channel_mult: tuple[int, ...], num_res_blocks: int,
                 out_channels: int, num_groups: int = 32, mid_attention: bool = False) -> None:
        super().__init__()
        ch = channels * channel_mult[0]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 3, padding=1)]
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers.append(ResBlock(ch, channels * mult, num_groups=num_groups))
                ch = channels * mult
            if level < len(channel_mult) - 1:
                layers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        layers += [*_middle(ch, num_groups, mid_attention),
                   group_norm(ch, num_groups), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """y [N, z_channels, r, r] -> [N, out_channels, r · 2^(L-1), ...]."""

    def __init__(self, z_channels: int, channels: int, channel_mult: tuple[int, ...], num_res_blocks: int,
                 out_channels: int, num_groups: int = 32, mid_attention: bool = False) -> None:
        super().__init__()
        ch = channels * channel_mult[-1]
        layers: list[nn.Module] = [nn.Conv2d(z_channels, ch, 3, padding=1), *_middle(ch, num_groups, mid_attention)]
        for level in reversed(range(len(channel_mult))):
            for _ in range(num_res_blocks + 1):
                layers.append(ResBlock(ch, channels * channel_mult[level], num_groups=num_groups))
                ch = channels * channel_mult[level]
            if level:
                layers += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)]
        layers += [group_norm(ch, num_groups), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y)


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantisation with a straight-through gradient (van den Oord et al. 2017, Eq. 3).

    Paper: loss = ||sg[y] - e||^2 + beta ||y - sg[e]||^2 (means over elements), e the nearest of ``size`` codebook
    vectors. ``beta_on_codebook`` (the default) is what LDM and DisDiff train: taming-transformers'
    ``VectorQuantizer2`` with its default ``legacy=True`` computes mean((z_q.detach() - z)^2) + beta mean((z_q -
    z.detach())^2), i.e. the commitment term ||y - sg[e]||^2 with weight 1 and beta on the codebook term.
    The codebook starts uniform in [-1 / size, 1 / size] (the reference VQ layer's initialisation).
    """

    def __init__(self, size: int, dim: int, beta: float = 0.25, beta_on_codebook: bool = True) -> None:
        super().__init__()
        self.beta = beta
        self.beta_on_codebook = beta_on_codebook
        self.codebook = nn.Embedding(size, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / size, 1.0 / size)

    def indices(self, y: Tensor) -> Tensor:
        """Nearest codebook index per position: y [N, D, H, W] -> [N, H, W] (long)."""
        flat = y.permute(0, 2, 3, 1).reshape(-1, y.shape[1]).float()
        w = self.codebook.weight.float()
        dist = flat.square().sum(1, keepdim=True) - 2 * flat @ w.T + w.square().sum(1)[None]
        return dist.argmin(1).view(y.shape[0], *y.shape[2:])

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """y [N, D, H, W] -> (straight-through quantised y [N, D, H, W], codebook + commitment loss scalar)."""
        e = self.codebook(self.indices(y)).permute(0, 3, 1, 2).to(y.dtype)
        codebook, commitment = F.mse_loss(e, y.detach()), F.mse_loss(y, e.detach())
        loss = self.beta * codebook + commitment if self.beta_on_codebook else codebook + self.beta * commitment
        return y + (e - y).detach(), loss


def diagonal_gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over [C, H, W], averaged over the batch (LDM's KL-reg.)."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()


def sample_gaussian(mean: Tensor, logvar: Tensor) -> Tensor:
    """Reparameterised sample of N(mean, exp(logvar)) (noise from the global generator)."""
    return mean + (0.5 * logvar.clamp(-30.0, 20.0)).exp() * torch.randn_like(mean)
