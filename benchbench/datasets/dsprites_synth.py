"""``dsprites-synth``: a procedural look-alike of dSprites (Matthey et al. 2017), rendered on demand.

Not the real data (https://github.com/deepmind/dsprites-dataset): results on it are recorded as ``source: synthetic``
with the generator version. Same five latent factors, sizes, ravel order and label values as ``dsprites``:

    shape        3: square, ellipse, heart            (values 1, 2, 3)
    scale        6: linspace(0.5, 1, 6)
    orientation 40: linspace(0, 2π, 40)               (0 and 2π both present, as in the real file)
    posX, posY  32: linspace(0, 1, 32)

One white sprite on black, binary like the real images (a pixel is on when its centre is inside the shape), one
channel, 64x64. The sprite's centre is at 10 + 44 · pos pixels (x right, y down); at scale 1 the square's side is
14 px, the ellipse's axes 18 x 9 px and the heart about 16 px wide; each is rotated by the orientation about its
centre. These sizes approximate the real sprites by eye (the real generator is not published).

Rendering is a vectorised inside-test of the pixel centres in a window around each sprite, per shape, about
6,000 images/s on one core at 64x64, so nothing is cached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchbench.datasets.base import DataConfig, DataSpec, GroundTruthData
from benchbench.datasets.dsprites import FACTOR_NAMES, FACTOR_SIZES
from benchbench.errors import ConfigError
from benchbench.registry import register_dataset

GEN_VERSION = 1
FACTOR_VALUES = (
    np.array([1.0, 2.0, 3.0]),
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
SQUARE, ELLIPSE, HEART = 0, 1, 2
_MARGIN, _SPAN, _HALF = 10.0, 44.0, 7.0  # pixels at 64x64: centre = margin + span * pos; square half-side at scale 1


def inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether sprite-frame points (u right, v down; units of the square's half-side) are inside ``shape``.

    Args:
        shape: SQUARE, ELLIPSE or HEART; u, v: coordinates [...].
    Returns:
        bool [...].
    """
    if shape == SQUARE:
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == ELLIPSE:
        return (u / 1.3) ** 2 + (v / 0.65) ** 2 <= 1.0
    x, y = u / 1.15, -v / 1.15 + 0.1  # heart curve (x² + y² − 1)³ − x² y³ <= 0, pointing down
    r = x * x + y * y - 1.0
    return r * r * r - x * x * y * y * y <= 0.0


def render(factors: np.ndarray, resolution: int = 64) -> np.ndarray:
    """uint8 {0, 255} images [B, R, R, 1] of factor indices [B, 5] (shape, scale, orientation, posX, posY).

    Only a window around each sprite (it reaches at most 1.6 half-sides from its centre) is tested, per shape.
    """
    f = np.asarray(factors, dtype=np.int64).reshape(-1, 5)
    k = resolution / 64.0
    out = np.zeros((len(f), resolution, resolution), dtype=np.uint8)
    reach = 1.6 * _HALF * k
    side = min(resolution, int(np.ceil(2 * reach)) + 2)
    for shape in (SQUARE, ELLIPSE, HEART):
        rows = np.flatnonzero(f[:, 0] == shape)
        if not len(rows):
            continue
        g = f[rows]
        s = (FACTOR_VALUES[1][g[:, 1]] * _HALF * k).astype(np.float32)[:, None, None]
        theta = FACTOR_VALUES[2][g[:, 2]]
        cx = (_MARGIN + _SPAN * FACTOR_VALUES[3][g[:, 3]]) * k
        cy = (_MARGIN + _SPAN * FACTOR_VALUES[4][g[:, 4]]) * k
        x0 = np.clip(np.floor(cx - reach).astype(np.int64), 0, resolution - side)  # window corners [b]
        y0 = np.clip(np.floor(cy - reach).astype(np.int64), 0, resolution - side)
        win = np.arange(side)
        px = x0[:, None] + win[None]  # [b, W] pixel columns
        py = y0[:, None] + win[None]
        dx = (px + 0.5 - cx[:, None]).astype(np.float32)[:, None, :]  # [b, 1, W]
        dy = (py + 0.5 - cy[:, None]).astype(np.float32)[:, :, None]  # [b, W, 1]
        cos = np.cos(theta).astype(np.float32)[:, None, None]
        sin = np.sin(theta).astype(np.float32)[:, None, None]
        on = inside(shape, (cos * dx + sin * dy) / s, (cos * dy - sin * dx) / s)  # [b, W, W]
        out[rows[:, None, None], py[:, :, None], px[:, None, :]] = on * np.uint8(255)
    return out[..., None]


@register_dataset(
    "dsprites-synth",
    source="synthetic",
    family="dsprites",
    kind="factors",
    files=(),
    description="procedural dSprites look-alike (737,280 binary sprites, same factors and labels), offline",
)
class DSpritesSynth(GroundTruthData):
    """The procedural dSprites look-alike (module doc); images are a pure function of the index.

    Args:
        cfg: dataset options; ``resolution`` sets the side (64 matches the real set); ``size`` must be None or the
            full 737,280.
        data_dir: unused (nothing is cached); accepted for the common dataset signature.
    """

    def __init__(self, cfg: DataConfig, data_dir: Path | None = None) -> None:
        del data_dir
        if cfg.resolution < 4:
            raise ConfigError(f"dsprites-synth: resolution must be at least 4, got {cfg.resolution}")
        if cfg.size not in (None, int(np.prod(FACTOR_SIZES))):
            raise ConfigError(f"dsprites-synth is the full 737,280-image grid; data.size={cfg.size} is unsupported")
        self.cfg = cfg
        self.spec = DataSpec(name="dsprites-synth", channels=1, resolution=cfg.resolution, source="synthetic",
                             factor_names=FACTOR_NAMES, factor_sizes=FACTOR_SIZES, family="dsprites",
                             version=f"gen{GEN_VERSION}")

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """The real file's label values, one array per factor."""
        return FACTOR_VALUES

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """Label values [B, 5] (float64) as the real file's ``latents_values[:, 1:]``."""
        f = self.index_to_factors(indices)
        return np.stack([FACTOR_VALUES[k][f[:, k]] for k in range(5)], axis=1)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 {0, 255} images [B, R, R, 1] for flat ``indices`` [B]."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"dsprites-synth: flat index out of range [0, {len(self)})")
        return render(self.index_to_factors(indices), self.cfg.resolution)

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        """As the real set: the constant colour is drawn first (RNG parity with disentanglement_lib)."""
        random_state.randint(1, size=len(factors))
        return self.factor_images(factors)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images(np.array([index]))[0]
