"""Convolutional encoder/decoder of the disentanglement_lib VAEs.

Reference: Locatello et al., "Challenging Common Assumptions in the Unsupervised Learning of
Disentangled Representations", ICML 2019, https://arxiv.org/abs/1811.12359 (Table 1 of the appendix;
``methods/shared/architectures.py: conv_encoder, deconv_decoder``); methods.md §2.

At 64×64 (the reference):

    encoder  x [N, C, 64, 64] -> conv 32 k4 s2 -> conv 32 k4 s2 -> conv 64 k2 s2 -> conv 64 k2 s2
             (ReLU each; 64 -> 32 -> 16 -> 8 -> 4) -> flatten 1024 -> FC 256 ReLU -> mean, logvar [N, D]
    decoder  z [N, D] -> FC 256 ReLU -> FC 1024 ReLU -> reshape [N, 64, 4, 4]
             -> deconv 64, 32, 32 (k4 s2, ReLU) -> deconv C (k4 s2) -> logits [N, C, 64, 64]

Padding. TensorFlow's "same" padding for a stride-s convolution on an input side divisible by s
pads ``k - s`` pixels in total, ``(k - s) // 2`` before and the rest after. For every layer here
``k - s`` is even (k4 s2: 2, k2 s2: 0), so TF pads symmetrically (1/1 and 0/0) and PyTorch's
``padding=(k - s) // 2`` reproduces it exactly; no ``F.pad`` is needed. (TF's asymmetric case,
more padding after than before, only arises for odd ``k - s`` or sides not divisible by s.) The
transposed convolutions are the adjoints of those convolutions, i.e. ``ConvTranspose2d(k=4, s=2,
padding=1)``, which doubles the side exactly as TF's ``conv2d_transpose(padding="same")``.

Initialisation mirrors the TF defaults the reference relies on (Glorot-uniform kernels, zero
biases), which matters for the untrained ``random`` floor.

Other resolutions (powers of two, at least 16). The last feature map is always 64×4×4, so the FC
layers are unchanged; the number of stride-2 stages is ``log2(R) - 2`` and the 32-channel k4 stages
absorb the difference: the encoder has ``log2(R) - 4`` conv-32 k4 stages before the two conv-64 k2
stages (16: none, 32: one, 64: two, 128: three), and the decoder ``log2(R) - 4`` deconv-32 stages
between deconv 64 and the output deconv (16: none, 32: one, 64: two). R = 64 is the reference.
"""

from __future__ import annotations

from torch import Tensor, nn

FEATURE_SIDE = 4  # side of the last encoder feature map at every resolution
FEATURE_CHANNELS = 64
HIDDEN = 256  # width of the FC layer next to the code


def num_stages(resolution: int) -> int:
    """Number of stride-2 stages for a square input of side ``resolution`` (4 at 64).

    Raises:
        ValueError: ``resolution`` is not a power of two of at least 16.
    """
    if resolution < 16 or resolution & (resolution - 1):
        raise ValueError(f"conv VAE needs a power-of-two resolution >= 16, got {resolution}")
    return resolution.bit_length() - 1 - 2  # log2(R) - log2(FEATURE_SIDE)


def _init_like_tf(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases (tf.layers defaults used by disentanglement_lib)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class ConvEncoder(nn.Module):
    """Gaussian encoder q(z|x) = N(mean, diag(exp(logvar))) of disentanglement_lib.

    Args:
        channels: input channels C.
        resolution: input side R (power of two, >= 16).
        latent_dim: code size D.
    """

    def __init__(self, channels: int, resolution: int, latent_dim: int) -> None:
        super().__init__()
        n32 = num_stages(resolution) - 2
        specs = [(32, 4)] * n32 + [(64, 2), (64, 2)]  # (out channels, kernel), all stride 2
        layers: list[nn.Module] = []
        c_in = channels
        for c_out, k in specs:
            layers += [nn.Conv2d(c_in, c_out, k, stride=2, padding=(k - 2) // 2), nn.ReLU()]  # TF "same"
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(FEATURE_CHANNELS * FEATURE_SIDE**2, HIDDEN), nn.ReLU())
        self.mean = nn.Linear(HIDDEN, latent_dim)
        self.logvar = nn.Linear(HIDDEN, latent_dim)
        _init_like_tf(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [N, C, R, R] in [-1, 1] -> (mean [N, D], logvar [N, D])."""
        h = self.fc(self.features(x))
        return self.mean(h), self.logvar(h)


class ConvDecoder(nn.Module):
    """Bernoulli decoder p(x|z) of disentanglement_lib: returns per-pixel logits.

    Args:
        latent_dim: code size D.
        channels: output channels C.
        resolution: output side R (power of two, >= 16).
    """

    def __init__(self, latent_dim: int, channels: int, resolution: int) -> None:
        super().__init__()
        n32 = num_stages(resolution) - 2
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, FEATURE_CHANNELS * FEATURE_SIDE**2),
            nn.ReLU(),
            nn.Unflatten(1, (FEATURE_CHANNELS, FEATURE_SIDE, FEATURE_SIDE)),
        )
        layers: list[nn.Module] = []
        c_in = FEATURE_CHANNELS
        for c_out in [64] + [32] * n32:
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        layers.append(nn.ConvTranspose2d(c_in, channels, 4, stride=2, padding=1))
        self.deconv = nn.Sequential(*layers)
        _init_like_tf(self)

    def forward(self, z: Tensor) -> Tensor:
        """z [N, D] -> logits [N, C, R, R] (sigmoid gives Bernoulli means in [0, 1])."""
        return self.deconv(self.fc(z))
