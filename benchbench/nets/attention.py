"""Spatial multi-head self-attention block of the ADM UNet.

Reference: Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021,
https://arxiv.org/abs/2105.05233 (Sec. 3, "attention at 32, 16 and 8"); the block itself goes back to
Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, https://arxiv.org/abs/2006.11239
(Appendix B, self-attention at 16×16). Diff-AE (Preechakul et al., CVPR 2022) uses it at 16×16 with one head
(methods.md §4). Written for benchbench; the layout follows the papers, not any released code.

    x [N, C, H, W] -> GN -> 1x1 qkv (3C) -> softmax(q k^T / sqrt(d)) v per head -> 1x1 proj (zero init) -> + x

The projection is zero-initialised, so an untrained block is the identity.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def num_groups_for(channels: int, num_groups: int) -> int:
    """Largest group count <= ``num_groups`` that divides ``channels`` (32 groups at every ADM width >= 32).

    Small test configs (16 or 48 channels) would otherwise make ``GroupNorm(32, C)`` fail.
    """
    g = max(1, min(num_groups, channels))
    while channels % g:
        g -= 1
    return g


def group_norm(channels: int, num_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with ``num_groups`` clipped to divide ``channels`` (affine, eps 1e-5 as in ADM)."""
    return nn.GroupNorm(num_groups_for(channels, num_groups), channels)


class AttentionBlock(nn.Module):
    """Residual multi-head self-attention over the H·W positions of a feature map.

    Args:
        channels: feature channels C (divisible by ``num_heads``).
        num_heads: attention heads; each attends with C / num_heads channels.
        num_groups: GroupNorm groups (clipped to divide C).
    """

    def __init__(self, channels: int, num_heads: int = 1, num_groups: int = 32) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention channels {channels} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm = group_norm(channels, num_groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)  # identity at init (Ho et al. 2020 / ADM zero_module)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x [N, C, H, W] -> [N, C, H, W]."""
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).flatten(2))  # [N, 3C, HW]
        q, k, v = qkv.reshape(n, 3, self.num_heads, c // self.num_heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # [N, heads, HW, C/heads], scale 1/sqrt(C/heads)
        out = out.transpose(-1, -2).reshape(n, c, h * w)
        return x + self.proj(out).reshape(n, c, h, w)
