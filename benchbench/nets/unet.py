"""ADM-style UNet with AdaGN time and code conditioning, split into reusable encoder and decoder halves.

References:
    Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, https://arxiv.org/abs/2006.11239
    (Sec. 4 and Appendix B: the eps-predicting UNet, sinusoidal timestep embedding, GroupNorm, attention at 16×16).
    Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021,
    https://arxiv.org/abs/2105.05233 (Sec. 3: BigGAN residual up/down-sampling blocks, multi-head attention,
    adaptive group normalisation AdaGN(h, y) = y_s GroupNorm(h) + y_b).
    Preechakul et al., "Diffusion Autoencoders: Toward a Meaningful and Decodable Representation", CVPR 2022,
    https://arxiv.org/abs/2111.15640 (Sec. 3.1: AdaGN(h, t, z_sem) = z_s (t_s GroupNorm(h) + t_b); the code
    uses the offsets (1 + t_s), (1 + z_s), methods.md §4). PDAE (methods.md §5) and DisDiff (§6.3) add a shift
    z_b to the code modulation in their decoder copies.

Every ResBlock modulates its normalised features in this order (``cond_mode`` picks the second line):

    h <- GN(h) (1 + t_s) + t_b,                (t_s, t_b) = Linear(SiLU(emb))     time, always
    h <- h (1 + z_s)            "scale"        z_s = Linear(SiLU(z))              Diff-AE
    h <- h (1 + z_s) + z_b      "scale_shift"  (z_s, z_b) = Linear(SiLU(z))       PDAE / DisDiff shift blocks

The code Linear's bias starts at zero (PyTorch's default in the references), so z = 0 leaves a block exactly
as the unconditioned one. The last conv of every ResBlock, the attention projections and the output head are
zero-initialised (ADM's ``zero_module``), so an untouched network outputs exactly 0 and gradients first reach only
the head: the code Linears receive non-zero gradients from the third backward pass on.

Layout (Diff-AE CelebA-64: base 64, channel_mult (1, 2, 4, 8), 2 blocks, attention at 16):

    UNetEncoder  x [N, C, R, R] -> conv3x3 -> per level: num_res_blocks x (ResBlock [+ attention]),
                 then a down-sampling ResBlock except at the last level; every block output is a skip
    UNetDecoder  middle (ResBlock, attention, ResBlock) -> per level, deepest first: (num_res_blocks + 1) x
                 (concat skip, ResBlock [+ attention]), then an up-sampling ResBlock except at level 0
                 -> GN, SiLU, zero-init conv3x3 -> [N, out_channels, R, R]

The halves share nothing but the skip layout, so a frozen encoder (PDAE, DisDiff) can feed a fresh decoder
built with another ``cond_dim``/``cond_mode``: ``UNetDecoder(unet.decoder_config(512, "scale_shift"))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchbench.nets.attention import AttentionBlock, group_norm
from benchbench.nets.resblock import BlockLayout, CondMode, ResBlock, zero_init

__all__ = ["BlockLayout", "CondMode", "ResBlock", "SemanticEncoder", "SemanticEncoderConfig", "UNet", "UNetConfig",
           "UNetDecoder", "UNetEncoder", "skip_channels", "timestep_embedding"]


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of the UNet; defaults are Diff-AE's CelebA-64 network (methods.md §4).

    ``attention_resolutions`` are feature-map sides (16 means the 16×16 level of a 64×64 input).
    ``time_embed_dim`` None means 4·base_channels (256 at base 64); Diff-AE's CelebA-64 config sets 512 explicitly.
    ``cond_dim`` is the size of the conditioning vector z (0: unconditioned); ``cond_mode`` as in the module doc.
    ``block_layout`` picks the ResBlock (:mod:`benchbench.nets.resblock`): "adm", or "infodiffusion_dev"
    (InfoDiffusion's dev-branch four-conv block, which needs ``resblock_updown=False``: its resampling is plain convs).
    """

    in_channels: int = 3
    out_channels: int = 3
    resolution: int = 64
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    num_heads: int = 1
    dropout: float = 0.1
    time_embed_dim: int | None = None
    resblock_updown: bool = True
    cond_dim: int = 0
    cond_mode: CondMode = "scale"
    num_groups: int = 32
    block_layout: BlockLayout = "adm"

    def __post_init__(self) -> None:
        if self.cond_mode not in ("scale", "scale_shift"):
            raise ValueError(f"cond_mode must be 'scale' or 'scale_shift', got {self.cond_mode!r}")
        if self.block_layout not in ("adm", "infodiffusion_dev"):
            raise ValueError(f"block_layout must be 'adm' or 'infodiffusion_dev', got {self.block_layout!r}")
        if self.block_layout == "infodiffusion_dev" and self.resblock_updown:
            raise ValueError("block_layout 'infodiffusion_dev' needs resblock_updown=False (plain conv resampling)")
        if self.resolution % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(f"resolution {self.resolution} not divisible by 2^{len(self.channel_mult) - 1}")

    @property
    def embed_dim(self) -> int:
        """Width of the time embedding emb (and of every block's time projection input)."""
        return self.time_embed_dim or 4 * self.base_channels


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer sinusoidal embedding of (integer or float) timesteps (Ho et al. 2020, Sec. 4).

    emb[:, i] = cos(t · f_i) and emb[:, half + i] = sin(t · f_i) with f_i = max_period^(-i / half), half = dim // 2
    (a zero column is appended when dim is odd).

    Args:
        t: [N] timesteps.
        dim: embedding width D.
    Returns:
        [N, D] float32.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class Stage(nn.ModuleList):
    """A sequence of blocks; ResBlocks receive (emb, z), the others only the features."""

    def forward(self, h: Tensor, emb: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        for block in self:
            h = block(h, emb, z) if isinstance(block, ResBlock) else block(h)
        return h


@dataclass(frozen=True)
class _Blocks:
    """Block factory holding the settings shared by every block of one network half."""

    emb_dim: int
    cond_dim: int
    cond_mode: CondMode
    dropout: float
    num_groups: int
    num_heads: int
    resblock_updown: bool
    single_conv: bool = False
    layout: BlockLayout = "adm"

    def res(self, c_in: int, c_out: int, resample: Literal["up", "down"] | None = None) -> ResBlock:
        return ResBlock(
            c_in, c_out, emb_dim=self.emb_dim, cond_dim=self.cond_dim, cond_mode=self.cond_mode,
            dropout=self.dropout, num_groups=self.num_groups, resample=resample, single_conv=self.single_conv,
            layout=self.layout,
        )  # fmt: skip

    def attn(self, ch: int) -> AttentionBlock:
        return AttentionBlock(ch, self.num_heads, self.num_groups)

    def down(self, ch: int) -> nn.Module:
        """Down-sampling ResBlock, or a stride-2 conv3x3 when ``resblock_updown`` is False (ADM)."""
        return self.res(ch, ch, "down") if self.resblock_updown else nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def up(self, ch: int) -> nn.Module:
        """Up-sampling ResBlock, or nearest x2 then conv3x3 when ``resblock_updown`` is False (ADM)."""
        if self.resblock_updown:
            return self.res(ch, ch, "up")
        return nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1))

    def middle(self, ch: int) -> Stage:
        return Stage([self.res(ch, ch), self.attn(ch), self.res(ch, ch)])


def _blocks(cfg: UNetConfig) -> _Blocks:
    return _Blocks(
        cfg.embed_dim, cfg.cond_dim, cfg.cond_mode, cfg.dropout, cfg.num_groups, cfg.num_heads, cfg.resblock_updown,
        layout=cfg.block_layout,
    )


def _input_stages(f: _Blocks, cfg: UNetConfig | SemanticEncoderConfig) -> nn.ModuleList:
    """The encoder half shared by UNetEncoder and SemanticEncoder: input conv, levels, down-sampling blocks."""
    base, ch, res = cfg.base_channels, cfg.base_channels * cfg.channel_mult[0], cfg.resolution
    stages = nn.ModuleList([Stage([nn.Conv2d(cfg.in_channels, ch, 3, padding=1)])])
    for level, mult in enumerate(cfg.channel_mult):
        for _ in range(cfg.num_res_blocks):
            blocks: list[nn.Module] = [f.res(ch, base * mult)]
            ch = base * mult
            if res in cfg.attention_resolutions:
                blocks.append(f.attn(ch))
            stages.append(Stage(blocks))
        if level < len(cfg.channel_mult) - 1:
            stages.append(Stage([f.down(ch)]))
            res //= 2
    return stages


def skip_channels(cfg: UNetConfig) -> list[int]:
    """Channels of the skip tensors UNetEncoder returns, in order ([64, 64, 64, 64, 128, ...] for Diff-AE)."""
    chans = [cfg.base_channels * cfg.channel_mult[0]]  # the input conv
    for level, mult in enumerate(cfg.channel_mult):
        ch = cfg.base_channels * mult
        chans += [ch] * cfg.num_res_blocks + ([ch] if level < len(cfg.channel_mult) - 1 else [])
    return chans


class UNetEncoder(nn.Module):
    """Time embedding and input blocks of the UNet (the half PDAE and DisDiff keep frozen)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.embed_dim
        self.time_embed = nn.Sequential(nn.Linear(cfg.base_channels, e), nn.SiLU(), nn.Linear(e, e))
        self.blocks = _input_stages(_blocks(cfg), cfg)

    def embed_time(self, t: Tensor) -> Tensor:
        """t [N] -> emb [N, embed_dim]: sinusoid of width base_channels -> Linear -> SiLU -> Linear."""
        return self.time_embed(timestep_embedding(t, self.cfg.base_channels))

    def forward(self, x: Tensor, t: Tensor, z: Tensor | None = None) -> tuple[Tensor, list[Tensor], Tensor]:
        """x [N, C, R, R], t [N], z [N, cond_dim] or None -> (h, skips, emb).

        h is the deepest feature map [N, base·mult[-1], R / 2^(L-1), ...] (also skips[-1]); skips has
        ``len(skip_channels(cfg))`` tensors; emb [N, embed_dim] is the time embedding, for the decoder.
        """
        emb = self.embed_time(t)
        h, skips = x, []
        for stage in self.blocks:
            h = stage(h, emb, z)
            skips.append(h)
        return h, skips, emb


class UNetDecoder(nn.Module):
    """Middle block, output blocks and output head; runs on an encoder's (h, skips, emb).

    Its ``cond_dim``/``cond_mode`` may differ from the encoder's (PDAE's shift decoder, DisDiff's G), and emb may
    come from elsewhere (DisDiff adds a factor embedding to the frozen encoder's time embedding).
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        f, base, mults = _blocks(cfg), cfg.base_channels, cfg.channel_mult
        skips = skip_channels(cfg)
        ch = base * mults[-1]
        res = cfg.resolution // 2 ** (len(mults) - 1)
        self.middle = f.middle(ch)
        self.blocks = nn.ModuleList()
        for level in reversed(range(len(mults))):
            for i in range(cfg.num_res_blocks + 1):
                blocks: list[nn.Module] = [f.res(ch + skips.pop(), base * mults[level])]
                ch = base * mults[level]
                if res in cfg.attention_resolutions:
                    blocks.append(f.attn(ch))
                if level and i == cfg.num_res_blocks:
                    blocks.append(f.up(ch))
                    res *= 2
                self.blocks.append(Stage(blocks))
        self.out = nn.Sequential(
            group_norm(ch, cfg.num_groups), nn.SiLU(), zero_init(nn.Conv2d(ch, cfg.out_channels, 3, padding=1))
        )

    def forward(self, h: Tensor, skips: list[Tensor], emb: Tensor, z: Tensor | None = None) -> Tensor:
        """h [N, C_L, r, r], skips (from UNetEncoder; not modified), emb [N, embed_dim], z [N, cond_dim] or None
        -> [N, out_channels, R, R]."""
        if len(skips) != len(self.blocks):
            raise ValueError(f"decoder expects {len(self.blocks)} skip tensors, got {len(skips)}")
        h = self.middle(h, emb, z)
        for stage, skip in zip(self.blocks, reversed(skips)):
            h = stage(torch.cat([h, skip], dim=1), emb, z)
        return self.out(h)


class UNet(nn.Module):
    """eps_theta(x_t, t[, z]): UNetEncoder followed by UNetDecoder (Ho et al. 2020; Dhariwal & Nichol 2021)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = UNetEncoder(cfg)
        self.decoder = UNetDecoder(cfg)

    def decoder_config(self, cond_dim: int, cond_mode: CondMode = "scale_shift") -> UNetConfig:
        """Config of a decoder that accepts this network's encoder outputs but has its own code conditioning."""
        return replace(self.cfg, cond_dim=cond_dim, cond_mode=cond_mode)

    def forward(self, x: Tensor, t: Tensor, z: Tensor | None = None) -> Tensor:
        """x [N, C, R, R], t [N], z [N, cond_dim] or None -> [N, out_channels, R, R]."""
        return self.decoder(*self.encoder(x, t, z), z)


@dataclass(frozen=True)
class SemanticEncoderConfig:
    """Diff-AE's semantic encoder for 64×64 data (methods.md §4; ``BeatGANsEncoderModel`` with
    ``use_time_condition=False``). Its blocks are unconditioned, so they have one conv and no dropout: Diff-AE
    passes the UNet's dropout (0.1) to them, where it has no effect, and this config has no dropout field.
    The CelebA-64 defaults give 19,320,512 parameters, the official encoder's count."""

    in_channels: int = 3
    resolution: int = 64
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 8, 8)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    out_dim: int = 512
    num_groups: int = 32
    num_heads: int = 1
    resblock_updown: bool = True


class SemanticEncoder(nn.Module):
    """z_sem = Enc(x_0): a time-free UNet encoder half of single-conv ResBlocks (:class:`ResBlock`), middle block,
    GN, SiLU, average pool, 1x1 conv (Preechakul et al. 2022, Sec. 3.1; Diff-AE's ``adaptivenonzero`` pooling head,
    default init). The down-sampling blocks are single-conv ResBlocks too (``resblock_updown``) or, without it, a
    stride-2 conv3x3 (``Downsample(use_conv=True)``)."""

    def __init__(self, cfg: SemanticEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.resolution % 2 ** (len(cfg.channel_mult) - 1):
            raise ValueError(f"resolution {cfg.resolution} not divisible by 2^{len(cfg.channel_mult) - 1}")
        f = _Blocks(0, 0, "scale", 0.0, cfg.num_groups, cfg.num_heads, cfg.resblock_updown, single_conv=True)
        self.blocks = _input_stages(f, cfg)
        ch = cfg.base_channels * cfg.channel_mult[-1]
        self.middle = f.middle(ch)
        self.head = nn.Sequential(
            group_norm(ch, cfg.num_groups),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(ch, cfg.out_dim, 1),
            nn.Flatten(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """x [N, C, R, R] in [-1, 1] -> z_sem [N, out_dim]."""
        h = x
        for stage in self.blocks:
            h = stage(h)
        return self.head(self.middle(h))
