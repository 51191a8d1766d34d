"""MLPSkipNet: the noise predictor of the latent DPMs on codes (Diff-AE, PDAE; InfoDiffusion's ``LatentUNet``).

Reference: Preechakul et al., "Diffusion Autoencoders", CVPR 2022, Sec. 3.3 and Appendix (latent DDIM);
code phizaz/diffae ``model/latentnet.py`` (``MLPSkipNet``, ``MLPLNAct``), reused unchanged by ckczzj/PDAE
(``model/mlp_skip_net.py``) and, with width 4·D and dropout 0.1, by InfoDiffusion's ``models.py: LatentUNet``.
methods.md §4, §5, §7.

For a code z [N, D] and timestep t [N]:

    c = Linear(SiLU(Linear(sinusoid_64(t))))                               time condition [N, D]
    h_0 = z;  h_{i+1} = layer_i(cat(h_i, z) if i in skip_layers else h_i, c)
    layer_i(h, c) = Dropout(SiLU(LN((W h + b) * (condition_bias + Linear(SiLU(c))))))   i < L - 1
    layer_{L-1}(h) = W h + b                                               (no condition, norm or activation)

Diff-AE's CelebA-64 latent net (``latent_mlp_2048_norm_10layers``): L = 10, width 2048, skip layers 1..9,
64-d time embedding, LayerNorm, condition bias 1, dropout 0; Linear weights of the layers (not of the time
embedding) are Kaiming-normal (``nonlinearity="relu"``, as the reference does for SiLU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from benchbench.nets.unet import timestep_embedding


class MLPLNAct(nn.Module):
    """One MLPSkipNet layer: Linear, optional time-conditioned scale, LayerNorm, SiLU, dropout (``MLPLNAct``)."""

    def __init__(self, in_dim: int, out_dim: int, cond_dim: int, norm: bool, act: bool, use_cond: bool,
                 condition_bias: float, dropout: float) -> None:
        super().__init__()
        self.condition_bias = condition_bias
        self.use_cond = use_cond
        self.linear = nn.Linear(in_dim, out_dim)
        self.act: nn.Module = nn.SiLU() if act else nn.Identity()
        if use_cond:
            self.linear_emb = nn.Linear(cond_dim, out_dim)
            self.cond_layers = nn.Sequential(self.act, self.linear_emb)
        self.norm: nn.Module = nn.LayerNorm(out_dim) if norm else nn.Identity()
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if act:  # the reference initialises only layers with an activation (SiLU -> kaiming, relu gain)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, a=0, nonlinearity="relu")

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x [N, in_dim], cond [N, cond_dim] -> [N, out_dim]."""
        x = self.linear(x)
        if self.use_cond:
            x = x * (self.condition_bias + self.cond_layers(cond))
        return self.dropout(self.act(self.norm(x)))


class MLPSkipNet(nn.Module):
    """eps_theta(z_t, t) on codes z [N, dim] (Diff-AE ``MLPSkipNet``; see the module doc).

    Args:
        dim: code size D (``num_channels``; also the width of the time condition).
        hidden: hidden width (2048 for Diff-AE/PDAE; InfoDiffusion: 4·D).
        num_layers: linear layers L (10).
        time_emb_dim: sinusoidal embedding size (64).
        skip_layers: layers whose input is concatenated with z (default 1..L-1).
        use_norm: LayerNorm after the conditioned linear map.
        condition_bias: the 1 in x * (1 + s_t).
        dropout: dropout of all but the last layer (0; InfoDiffusion 0.1).
        num_time_layers: Linear layers of the time embedding MLP (2).
    """

    def __init__(self, dim: int, hidden: int = 2048, num_layers: int = 10, time_emb_dim: int = 64,
                 skip_layers: Sequence[int] | None = None, use_norm: bool = True, condition_bias: float = 1.0,
                 dropout: float = 0.0, num_time_layers: int = 2) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"MLPSkipNet needs at least 2 layers, got {num_layers}")
        self.time_emb_dim = time_emb_dim
        self.skip_layers = tuple(range(1, num_layers) if skip_layers is None else skip_layers)
        time: list[nn.Module] = []
        for i in range(num_time_layers):
            time.append(nn.Linear(time_emb_dim if i == 0 else dim, dim))
            if i < num_time_layers - 1:
                time.append(nn.SiLU())
        self.time_embed = nn.Sequential(*time)
        layers = []
        for i in range(num_layers):
            last = i == num_layers - 1
            a = dim if i == 0 else hidden
            b = dim if last else hidden
            if i in self.skip_layers:
                a += dim
            layers.append(MLPLNAct(a, b, dim, norm=use_norm and not last, act=not last, use_cond=not last,
                                   condition_bias=condition_bias, dropout=0.0 if last else dropout))
        self.layers = nn.ModuleList(layers)

    def forward(self, z: Tensor, t: Tensor) -> Tensor:
        """z_t [N, dim], integer timesteps t [N] -> predicted noise [N, dim]."""
        cond = self.time_embed(timestep_embedding(t, self.time_emb_dim).to(z.dtype))
        h = z
        for i, layer in enumerate(self.layers):
            if i in self.skip_layers:
                h = torch.cat([h, z], dim=1)
            h = layer(h, cond)
        return h
