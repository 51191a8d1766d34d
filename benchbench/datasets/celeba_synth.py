"""``celeba-synth``: cartoon faces with ten CelebA-named binary attributes (datasets.md §5, §5c, §5d).

Not the real data (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015,
https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html): results on it are recorded as ``source: synthetic``
with the generator version. The ten attributes keep their CelebA names and CelebA's column order, and
their default rates are near CelebA's published frequencies (§5c). Hair colour is one categorical draw
(black, blond or other); a beard (No_Beard = 0) is drawn only for Male faces. These two dependencies
are deliberate: TAD's label-redundancy filter (metrics.md §8, ratio limit 0.2) then excludes No_Beard
(ratio ~0.30) and keeps Male (~0.15), Black_Hair (~0.08) and Blond_Hair (~0.11), so at most 9 of the 10
attributes can be captured; every other draw is independent.

Randomness (§5 shared rules): ``u(seed, i, k) = splitmix64(mix(seed, i, k)) >> 11 / 2**53`` with
``mix(seed, i, k) = splitmix64(seed * 2**16 + k) xor i``; labels use streams 0-8 and can be computed
without rendering, nuisance variables streams 16 and up (``STREAMS``). Images are a pure function of
(seed, index). Drawing (``benchbench.datasets.faces``) uses antialiased signed distance fields, each
feature evaluated only inside its bounding window, whole batches at once.

Default N = 202,599 virtual samples with the official split sizes; ``DataConfig.size`` shrinks it keeping
the train/valid/test proportions (CI size 2,000). ``aligned=True`` renders the 178x218 canvas of the
real files with the face scaled 2x into the D2C box, so the real crop path yields the 64x64 design;
``write_fixture`` uses it to write CelebA's on-disk schema (§6).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchbench.datasets import celeba, celeba_files
from benchbench.datasets.base import AttributeData, DataConfig, DataSpec
from benchbench.datasets.faces import (
    ALIGNED_FRAME,
    CENTRE,
    HALF_HEIGHT,
    HALF_WIDTH,
    JITTER,
    TILT_DEG,
    Face,
    Frame,
    draw_faces,
    square_frame,
)
from benchbench.errors import ConfigError
from benchbench.registry import register_dataset

GEN_VERSION = 1
ATTR_NAMES = (
    "Bangs", "Black_Hair", "Blond_Hair", "Eyeglasses", "Male", "Mouth_Slightly_Open", "No_Beard", "Pale_Skin",
    "Smiling", "Wearing_Hat",
)  # fmt: skip
COLUMNS = tuple(celeba_files.ATTR_NAMES.index(a) for a in ATTR_NAMES)  # positions among CelebA's 40 columns
HAIR_BLACK, HAIR_BLOND, HAIR_OTHER = 0, 1, 2
# Hash stream ids: labels first (0-8), nuisance from 16; a new stream never changes the earlier ones.
STREAMS = {
    "bangs": 0, "hair": 1, "eyeglasses": 2, "male": 3, "mouth_open": 4, "beard": 5, "pale": 6, "smiling": 7,
    "hat": 8,
    "bg_hue": 16, "bg_sat": 17, "bg_val": 18, "jitter_x": 19, "jitter_y": 20, "half_width": 21,
    "half_height": 22, "skin_hue": 23, "skin_sat": 24, "skin_val": 25, "hair_shade": 26, "hair_tone": 27,
    "hat_hue": 28, "tilt": 29, "iris": 30, "bangs_phase": 31, "lip_tone": 32, "pale_tone": 33,
}  # fmt: skip

_M64 = 0xFFFFFFFFFFFFFFFF


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Steele et al.'s SplitMix64 step (increment, then the 64-bit finaliser), elementwise on uint64 [B]."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(seed: int, indices: np.ndarray, stream: int) -> np.ndarray:
    """Counter-based uniforms [B] (float64 in [0, 1)): ``splitmix64(mix(seed, i, k)) >> 11 / 2**53``.

    Args:
        seed: generator seed, 0 <= seed < 2**48.
        indices: sample indices [B] (non-negative).
        stream: stream id k, 0 <= k < 2**16 (``STREAMS``).
    """
    if not (0 <= seed < 2**48 and 0 <= stream < 2**16):
        raise ValueError(f"seed must be in [0, 2**48) and stream in [0, 2**16), got {seed}, {stream}")
    key = splitmix64(np.array([(seed << 16) | stream], dtype=np.uint64))
    bits = splitmix64(key ^ np.asarray(indices, dtype=np.int64).astype(np.uint64))
    return (bits >> np.uint64(11)).astype(np.float64) / 2.0**53


@dataclass(frozen=True)
class Rates:
    """Label probabilities (§5c). ``beard`` is P(beard | Male); hair is one categorical draw."""

    bangs: float = 0.15
    black_hair: float = 0.24
    blond_hair: float = 0.15
    eyeglasses: float = 0.065
    male: float = 0.42
    mouth_open: float = 0.48
    beard: float = 0.25
    pale_skin: float = 0.043
    smiling: float = 0.48
    hat: float = 0.05


DEFAULT_RATES = Rates()
# Small CI samples (§5c): redundancy ratios ~0.14 (Male), ~0.25 (No_Beard, excluded), ~0.15 (hair).
BALANCED_RATES = Rates(0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 0.25, 0.5, 0.5, 0.5)


def draw_labels(seed: int, indices: np.ndarray, rates: Rates = DEFAULT_RATES) -> np.ndarray:
    """The ten attributes [B, 10] (uint8 in {0, 1}, ``ATTR_NAMES`` order) of ``indices`` [B], no rendering."""

    def u(name: str) -> np.ndarray:
        return uniform(seed, indices, STREAMS[name])

    hair = u("hair")
    male = u("male") < rates.male
    beard = male & (u("beard") < rates.beard)  # beards only for Male: the No_Beard/Male dependency
    columns = [
        u("bangs") < rates.bangs,
        hair < rates.black_hair,
        (hair >= rates.black_hair) & (hair < rates.black_hair + rates.blond_hair),
        u("eyeglasses") < rates.eyeglasses,
        male,
        u("mouth_open") < rates.mouth_open,
        ~beard,
        u("pale") < rates.pale_skin,
        u("smiling") < rates.smiling,
        u("hat") < rates.hat,
    ]
    return np.stack(columns, axis=1).astype(np.uint8)


def draw_faces_params(seed: int, indices: np.ndarray, attrs: np.ndarray) -> Face:
    """Per-image drawing parameters (``Face``) from the attributes [B, 10] and the nuisance streams."""

    def u(name: str, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        return (lo + (hi - lo) * uniform(seed, indices, STREAMS[name])).astype(np.float32)

    a = {name: attrs[:, k].astype(bool) for k, name in enumerate(ATTR_NAMES)}
    if (a["Black_Hair"] & a["Blond_Hair"]).any():
        raise ValueError("celeba-synth: Black_Hair and Blond_Hair are exclusive (one categorical draw)")
    hair = np.where(a["Black_Hair"], HAIR_BLACK, np.where(a["Blond_Hair"], HAIR_BLOND, HAIR_OTHER))
    return Face(
        bangs=a["Bangs"], hair=hair, glasses=a["Eyeglasses"], male=a["Male"], mouth_open=a["Mouth_Slightly_Open"],
        beard=~a["No_Beard"], pale=a["Pale_Skin"], smiling=a["Smiling"], hat=a["Wearing_Hat"],
        bg_hsv=np.stack([u("bg_hue"), u("bg_sat", 0.2, 0.45), u("bg_val", 0.55, 0.9)], axis=1),
        cx=CENTRE[0] + u("jitter_x", -JITTER, JITTER), cy=CENTRE[1] + u("jitter_y", -JITTER, JITTER),
        half_width=u("half_width", *HALF_WIDTH), half_height=u("half_height", *HALF_HEIGHT),
        tilt=np.deg2rad(u("tilt", -TILT_DEG, TILT_DEG)).astype(np.float32),
        skin_hsv=np.stack([u("skin_hue", 0.05, 0.08), u("skin_sat", 0.3, 0.5), u("skin_val", 0.62, 0.9)], axis=1),
        pale_tone=u("pale_tone"), hair_shade=u("hair_shade"), hair_tone=u("hair_tone"), hat_hue=u("hat_hue"),
        iris=u("iris"), bangs_phase=u("bangs_phase", 0.0, 2 * np.pi), lip_tone=u("lip_tone"),
    )  # fmt: skip


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, valid, test) sizes: the official ones at 202,599, else the same proportions (each >= 1)."""
    if n < 3:
        raise ConfigError(f"celeba-synth: data.size must be at least 3 (one image per split), got {n}")
    official = celeba.SPLIT_SIZES
    valid = max(1, round(n * official["valid"] / celeba.NUM_IMAGES))
    test = max(1, round(n * official["test"] / celeba.NUM_IMAGES))
    return n - valid - test, valid, test


@register_dataset(
    "celeba-synth",
    source="synthetic",
    family="celeba",
    kind="attributes",
    files=(),
    description="procedural cartoon faces with 10 CelebA attributes (202,599 virtual, official splits), offline",
)
class CelebASynth(AttributeData):
    """The procedural CelebA look-alike (datasets.md §5c); images and labels are pure functions of the index.

    Args:
        cfg: ``resolution`` (64 matches the suite), ``size`` (None: 202,599). ``crop`` is ignored: the
            64x64 design already is the D2C framing.
        data_dir: unused (nothing is stored).
        balanced: use ``BALANCED_RATES`` (small CI samples) instead of CelebA-like rates.
        aligned: render the real files' 178x218 canvas (face 2x in the D2C box) instead of R x R.
        seed: generator seed (0 <= seed < 2**48).
    """

    train_flip = True

    def __init__(
        self,
        cfg: DataConfig,
        data_dir: Path | None = None,
        *,
        balanced: bool = False,
        aligned: bool = False,
        seed: int = 0,
    ) -> None:
        del data_dir
        if cfg.resolution < 8:
            raise ConfigError(f"celeba-synth: resolution must be at least 8, got {cfg.resolution}")
        self.cfg = cfg
        self.seed = seed
        self.rates = BALANCED_RATES if balanced else DEFAULT_RATES
        self.sizes = split_sizes(celeba.NUM_IMAGES if cfg.size is None else cfg.size)
        self.frame: Frame = ALIGNED_FRAME if aligned else square_frame(cfg.resolution)
        tags = "".join(t for t, on in (("-balanced", balanced), (f"-seed{seed}", seed != 0)) if on)
        self.spec = DataSpec(
            name="celeba-synth",
            channels=3,
            resolution=cfg.resolution,
            source="synthetic",
            attr_names=ATTR_NAMES,
            family="celeba",
            version=f"gen{GEN_VERSION}{tags}",
        )

    def __len__(self) -> int:
        return sum(self.sizes)

    def _check(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"celeba-synth: index out of range [0, {len(self)})")
        return indices

    def attributes(self, indices: np.ndarray) -> np.ndarray:
        """Binary attributes [B, 10] (uint8, ``ATTR_NAMES`` order) of ``indices`` [B]."""
        return draw_labels(self.seed, self._check(indices), self.rates)

    def split(self, name: str) -> np.ndarray:
        """Indices [M] of split ``name``: the first ``sizes[0]`` are train, then valid, then test."""
        order = ("train", "valid", "test")
        if name not in order:
            raise ValueError(f"celeba-synth: unknown split {name!r}; known: {', '.join(order)}")
        k = order.index(name)
        start = sum(self.sizes[:k])
        return np.arange(start, start + self.sizes[k])

    def render(self, indices: np.ndarray, attrs: np.ndarray | None = None) -> np.ndarray:
        """uint8 images [B, H, W, 3] of ``indices`` [B], optionally with overridden attributes [B, 10].

        Overrides keep every nuisance variable of the index (for checks that flip one attribute);
        Black_Hair and Blond_Hair may not both be 1. H = W = R, or 218 x 178 when ``aligned``.
        """
        indices = self._check(indices)
        attrs = self.attributes(indices) if attrs is None else np.asarray(attrs, dtype=np.uint8)
        return draw_faces(draw_faces_params(self.seed, indices, attrs), self.frame)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, R, R, 3] (or [B, 218, 178, 3] when ``aligned``) for ``indices`` [B]."""
        return self.render(indices)

    def __getitem__(self, index: int) -> np.ndarray:
        """One uint8 image [R, R, 3]."""
        return self.images(np.array([index]))[0]


def write_fixture(
    folder: Path,
    splits: tuple[int, int, int] = (8, 2, 2),
    *,
    as_zip: bool = False,
    image_format: str = "jpg",
    seed: int = 0,
) -> np.ndarray:
    """Write CelebA's on-disk schema (§3, §6) into ``folder`` from ``celeba-synth(aligned=True)``.

    Images 000001.jpg ... of indices 0, 1, ... (178x218, JPEG quality 95, or PNG) in ``img_align_celeba/``
    or in ``img_align_celeba.zip`` holding that folder; ``list_attr_celeba.txt`` byte-exact (unused
    attributes -1, except 5_o_Clock_Shadow = 1 on the seventh row, as in the real file's 000007.jpg, so
    the one-byte-shorter row layout occurs); ``list_eval_partition.txt`` with contiguous splits.

    Returns:
        The 40-column attributes [N, 40] (uint8 in {0, 1}) written to the attribute file.
    """
    n = sum(splits)
    synth = CelebASynth(DataConfig(), aligned=True, seed=seed)
    indices = np.arange(n)
    attrs = np.zeros((n, len(celeba_files.ATTR_NAMES)), dtype=np.uint8)
    attrs[:, COLUMNS] = synth.attributes(indices)
    attrs[min(6, n - 1), 0] = 1
    names = [f"{i + 1:06d}.jpg" for i in indices]  # the official text files say .jpg in either edition
    folder.mkdir(parents=True, exist_ok=True)
    (folder / celeba_files.ATTR_FILE).write_bytes(celeba_files.format_attr_file(names, attrs.astype(np.int64) * 2 - 1))
    codes = np.repeat(np.arange(3), splits)
    (folder / celeba_files.PARTITION_FILE).write_bytes(celeba_files.format_partition_file(names, codes))
    files = [Path(name).with_suffix(f".{image_format}").name for name in names]
    chunks = np.array_split(indices, max(1, -(-n // 64)))  # render 64 at a time: an aligned canvas is 466 kB
    images = (image for chunk in chunks for image in synth.images(chunk))
    blobs = [(f, _encode(image, image_format)) for f, image in zip(files, images, strict=True)]
    if as_zip:
        with zipfile.ZipFile(folder / celeba.IMAGE_ZIP, "w", zipfile.ZIP_STORED) as z:
            z.writestr(f"{celeba.IMAGE_DIR}/", b"")
            for name, data in blobs:
                z.writestr(f"{celeba.IMAGE_DIR}/{name}", data)
    else:
        (folder / celeba.IMAGE_DIR).mkdir(exist_ok=True)
        for name, data in blobs:
            (folder / celeba.IMAGE_DIR / name).write_bytes(data)
    return attrs


def _encode(image: np.ndarray, image_format: str) -> bytes:
    """JPEG (quality 95) or PNG bytes of one uint8 image [H, W, 3]."""
    buf = io.BytesIO()
    if image_format == "jpg":
        Image.fromarray(image).save(buf, format="JPEG", quality=95)
    else:
        Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
