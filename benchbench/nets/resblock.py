"""The residual block of every benchbench UNet: BigGAN-style, AdaGN time and code modulation.

References: Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021,
https://arxiv.org/abs/2105.05233 (Sec. 3: residual blocks with adaptive group normalisation); the code modulations of
Diff-AE / PDAE / DisDiff are in :mod:`benchbench.nets.unet`'s module doc. Three layouts:

    "adm"                    x -> GN, SiLU, [resample], conv -> AdaGN(time) [then code] -> SiLU, dropout, zero conv
                             -> + skip(x)  (every benchbench UNet; with ``single_conv`` only the first conv: Diff-AE's
                             unconditioned encoder block)
    "infodiffusion_dev"      InfoDiffusion's dev-branch ``AuxResBlock`` (isjakewong/InfoDiffusion @ 759f79c7,
                             modules.py): conv (block1) -> GN(1 + t_s) + t_b, SiLU, dropout, conv (block2) ->
                             GN(1 + z_s) + z_b, SiLU, dropout, conv (block3) -> GN, SiLU, dropout, conv (block4)
                             -> + skip(x): four convs, each modulation on its own GroupNorm. The last conv is
                             zero-initialised here (dev: xavier with gain 1e-5 on block2's conv, a benchbench choice).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from benchbench.nets.attention import group_norm

CondMode = Literal["scale", "scale_shift"]
BlockLayout = Literal["adm", "infodiffusion_dev"]


def zero_init(module: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


class ResBlock(nn.Module):
    """BigGAN-style residual block with AdaGN time and code modulation (Dhariwal & Nichol 2021, Sec. 3).

    x -> GN, SiLU, [resample], conv3x3 -> modulate (module doc) -> SiLU, dropout, zero conv3x3 -> + skip(x),
    where skip is the identity, or a 1x1 conv when the channel count changes (after the same resampling).
    With ``single_conv`` the block stops after the first conv: skip(x) + conv3x3([resample](SiLU(GN(x)))), the
    block Diff-AE's ``ResBlock`` builds with ``use_condition=False`` (its semantic encoder: no out layers, so no
    second GN, conv or dropout; phizaz/diffae ``model/blocks.py``).

    Args:
        channels: input channels C.
        out_channels: output channels (default C).
        emb_dim: time-embedding width; 0 disables the time modulation (plain GN, the semantic encoder).
        cond_dim: code width; 0 disables the code modulation.
        cond_mode: "scale" (Diff-AE) or "scale_shift" (PDAE / DisDiff).
        dropout: dropout before the last conv.
        num_groups: GroupNorm groups (clipped to divide the channels).
        resample: None, "up" (nearest x2) or "down" (average pool /2), applied to both branches.
        single_conv: drop the out layers (above); needs emb_dim = cond_dim = 0.
        layout: "adm" or "infodiffusion_dev" (module doc; the latter needs emb_dim and cond_dim, mode "scale_shift").
    """

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        *,
        emb_dim: int = 0,
        cond_dim: int = 0,
        cond_mode: CondMode = "scale",
        dropout: float = 0.0,
        num_groups: int = 32,
        resample: Literal["up", "down"] | None = None,
        single_conv: bool = False,
        layout: BlockLayout = "adm",
    ) -> None:
        super().__init__()
        if single_conv and (emb_dim or cond_dim):
            raise ValueError("a single_conv ResBlock has no out layers to condition: emb_dim and cond_dim must be 0")
        if layout not in ("adm", "infodiffusion_dev"):
            raise ValueError(f"layout must be 'adm' or 'infodiffusion_dev', got {layout!r}")
        if layout == "infodiffusion_dev" and not (emb_dim and cond_dim and cond_mode == "scale_shift" and not resample):
            raise ValueError("the infodiffusion_dev block needs emb_dim, cond_dim, 'scale_shift' and no resample")
        self.layout = layout
        out = out_channels or channels
        self.resample = resample
        self.cond_mode = cond_mode
        self.single_conv = single_conv
        self.in_norm = group_norm(channels, num_groups)
        self.in_conv = nn.Conv2d(channels, out, 3, padding=1)
        self.skip = nn.Identity() if out == channels else nn.Conv2d(channels, out, 1)
        if single_conv:
            return
        self.emb_proj = nn.Linear(emb_dim, 2 * out) if emb_dim else None
        self.cond_proj = nn.Linear(cond_dim, (2 if cond_mode == "scale_shift" else 1) * out) if cond_dim else None
        if self.cond_proj is not None:
            nn.init.zeros_(self.cond_proj.bias)  # z = 0 -> unconditioned block
        self.out_norm = group_norm(out, num_groups)
        self.dropout = nn.Dropout(dropout)
        if layout == "infodiffusion_dev":
            self.mid_conv = nn.Conv2d(out, out, 3, padding=1)  # dev block2
            self.code_norm = group_norm(out, num_groups)  # dev block3's GN (the code modulation)
            self.code_conv = nn.Conv2d(out, out, 3, padding=1)
            self.last_norm = group_norm(out, num_groups)  # dev block4
        self.out_conv = zero_init(nn.Conv2d(out, out, 3, padding=1))

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def modulate(self, h: Tensor, emb: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """AdaGN: GN(h) (1 + t_s) + t_b, then the code modulation. h [N, C', H, W], emb [N, E], z [N, Z]."""
        h = self.out_norm(h)
        if self.emb_proj is not None:
            if emb is None:
                raise ValueError("this block is time-conditioned: pass emb")
            t_s, t_b = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + t_s) + t_b
        if self.cond_proj is None:
            if z is not None:
                raise ValueError("this block has cond_dim = 0 but z was given")
            return h
        if z is None:
            raise ValueError("this block is code-conditioned (cond_dim > 0): pass z")
        z_mod = self.cond_proj(F.silu(z))[:, :, None, None]
        if self.cond_mode == "scale":
            return h * (1 + z_mod)  # Diff-AE: scale only (methods.md §4, hazard 7)
        z_s, z_b = z_mod.chunk(2, dim=1)
        return h * (1 + z_s) + z_b  # PDAE shift_unet / DisDiff openaimodel_shift

    def forward(self, x: Tensor, emb: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """x [N, C, H, W] -> [N, C_out, H', W'] (H' = 2H up, H/2 down, else H)."""
        h = self._resample(F.silu(self.in_norm(x)))
        x = self._resample(x)
        if self.single_conv:
            return self.skip(x) + self.in_conv(h)
        if self.layout == "infodiffusion_dev":
            return self.skip(x) + self._dev_stages(self.in_conv(h), emb, z)
        h = self.modulate(self.in_conv(h), emb, z)
        h = self.out_conv(self.dropout(F.silu(h)))
        return self.skip(x) + h

    def _dev_stages(self, h: Tensor, emb: Tensor | None, z: Tensor | None) -> Tensor:
        """Blocks 2-4 of InfoDiffusion's dev ``AuxResBlock`` on the first conv's output h [N, C', H, W]."""
        if emb is None or z is None or self.emb_proj is None or self.cond_proj is None:
            raise ValueError("the infodiffusion_dev block needs both emb and z")
        t_s, t_b = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.mid_conv(self.dropout(F.silu(self.out_norm(h) * (1 + t_s) + t_b)))
        z_s, z_b = self.cond_proj(F.silu(z))[:, :, None, None].chunk(2, dim=1)
        h = self.code_conv(self.dropout(F.silu(self.code_norm(h) * (1 + z_s) + z_b)))
        return self.out_conv(self.dropout(F.silu(self.last_norm(h))))
