"""What every dataset offers: a DataSpec for building models and, for ground-truth sets, the
disentanglement_lib sampling interface the factor metrics need (datasets.md §0)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchbench.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Dataset options shared by every dataset; each dataset reads the fields that concern it.

    Attributes:
        resolution: side of the square images the loader yields (64 for every paper setting).
        variant: MPI3D variant (toy | realistic | real); ignored elsewhere.
        crop: CelebA crop (d2c | center); ignored elsewhere.
        size: number of virtual images for a synthetic set (None: the real set's size).
        download: fetch a missing real file with a public URL (Shapes3D, MPI3D) on first use,
            checksummed (datasets.md §0); False: report the missing file instead.
        url: a mirror to fetch from instead of the official URL (a base URL ending in "/" or a full URL).
        split: the images training draws from on a set with official splits (CelebA): "train" (the official train
            split, 162,770 CelebA images) or "all" (every image, 202,599: Diff-AE trains on its LMDB of all of them).
            Evaluation and the FID reference set are unaffected. Ground-truth sets always train on every image.
        flip: random horizontal flips of training batches on sets that flip (CelebA); False: never (DisDiff's
            CelebA loader).
        repeat: Cars3D's training pool holds every image this many times (DisDiff repeats it 10x, methods.md §1.1;
            with batches drawn uniformly with replacement this changes which indices a seed draws, not their
            distribution); evaluation always sees each image once. 1 elsewhere.
    """

    resolution: int = 64
    variant: str = "toy"
    crop: str = "d2c"
    size: int | None = None
    download: bool = True
    url: str = ""
    split: str = "train"
    flip: bool = True
    repeat: int = 1

    def __post_init__(self) -> None:
        if self.split not in ("train", "all"):
            raise ConfigError(f"data.split must be 'train' or 'all', got {self.split!r}")
        if self.repeat < 1:
            raise ConfigError(f"data.repeat must be >= 1, got {self.repeat}")


# DataConfig fields that decide where data comes from, not what it is: left out of run identities.
NOT_IDENTITY = ("download", "url")
# Fields added later, left out of run identities at their default so earlier runs keep their config hashes.
DEFAULT_OMITTED = {"repeat": 1}


@dataclass(frozen=True)
class DataSpec:
    """The facts a method needs to build itself and the evaluator needs to pick metrics.

    Attributes:
        name: registry name of the dataset (e.g. "shapes3d-synth").
        channels: image channels (3).
        resolution: image side in pixels.
        source: "real" or "synthetic" (recorded with every result).
        factor_names: ground-truth factor names in ravel order; empty for attribute datasets.
        factor_sizes: number of values per factor.
        attr_names: binary attribute names (CelebA-like sets); empty for ground-truth sets.
        family: the real dataset a look-alike imitates ("shapes3d" for both shapes3d and
            shapes3d-synth); presets are chosen per family.
        version: generator version for synthetic sets, file checksum/size tag for real ones.
    """

    name: str
    channels: int
    resolution: int
    source: str
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    attr_names: tuple[str, ...] = ()
    family: str = ""
    version: str = ""

    @property
    def has_factors(self) -> bool:
        return len(self.factor_sizes) > 0


def data_root(data_dir: str | Path | None = None) -> Path:
    """The benchbench data folder: ``data_dir``, else ``$BENCHBENCH_DATA``, else ``~/.cache/benchbench``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("BENCHBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "benchbench"


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """uint8 images [B, H, W, C] -> float32 tensor [B, C, H, W] in [-1, 1] (``img / 127.5 - 1``)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return x.float().div_(127.5).sub_(1.0)


class ImageData(ABC):
    """A finite, indexable set of uint8 RGB images [H, W, 3].

    Attributes:
        train_flip: whether training batches are randomly flipped horizontally (CelebA: yes;
            Shapes3D/MPI3D: never, a flip would change orientation / the arm axis; datasets.md §4).
    """

    spec: DataSpec
    train_flip: bool = False

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, H, W, 3] for integer ``indices`` [B] (any order, repeats allowed)."""

    def train_indices(self) -> np.ndarray | None:
        """Indices of the training split; None = every image (ground-truth sets have no split)."""
        return None

    def training_pool(self) -> np.ndarray | None:
        """Indices the training loop draws from (``DataConfig.split``); None = every image."""
        return self.train_indices()

    def flips_training_batches(self) -> bool:
        """Whether the training loop mirrors batches (``train_flip`` and ``DataConfig.flip``)."""
        return self.train_flip


class AttributeData(ImageData):
    """Images with binary attributes and official splits (CelebA and its look-alike).

    ``spec.attr_names`` names the attribute columns; splits are "train", "valid" and "test". Subclasses keep their
    options in ``cfg`` (``split`` and ``flip`` shape the training pool and flips).
    """

    cfg: DataConfig

    @abstractmethod
    def attributes(self, indices: np.ndarray) -> np.ndarray:
        """Binary attributes [B, K] (uint8 in {0, 1}) of the images at ``indices`` [B]."""

    @abstractmethod
    def split(self, name: str) -> np.ndarray:
        """Sorted indices [M] of the official split ``name`` (train | valid | test)."""

    def train_indices(self) -> np.ndarray | None:
        return self.split("train")

    def training_pool(self) -> np.ndarray | None:
        return None if self.cfg.split == "all" else self.train_indices()

    def flips_training_batches(self) -> bool:
        return self.train_flip and self.cfg.flip


class GroundTruthData(ImageData):
    """A dataset whose images are a full grid over discrete factors (disentanglement_lib semantics).

    Flat index = C-order ravel of the factor-index tuple (the last factor varies fastest).
    Subclasses implement ``images`` (and may override ``factor_images`` for subset files).
    """

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return self.spec.factor_sizes

    @property
    def factor_names(self) -> tuple[str, ...]:
        return self.spec.factor_names

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

    def index_to_factors(self, indices: np.ndarray) -> np.ndarray:
        """Flat indices [B] -> factor indices [B, K] (int64)."""
        return np.stack(np.unravel_index(np.asarray(indices), self.factor_sizes), axis=1).astype(np.int64)

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Factor indices [B, K] -> flat indices [B] (int64)."""
        return np.ravel_multi_index(tuple(np.asarray(factors).T), self.factor_sizes).astype(np.int64)

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """[n, K] factor indices, drawn factor by factor as disentanglement_lib does (RNG parity)."""
        return np.stack([random_state.randint(s, size=n) for s in self.factor_sizes], axis=1)

    def factor_images(self, factors: np.ndarray) -> np.ndarray:
        """uint8 images [B, H, W, 3] showing the given factor indices [B, K]."""
        return self.images(self.factors_to_index(factors))

    def sample_observations_from_factors(
        self, factors: np.ndarray, random_state: np.random.RandomState
    ) -> np.ndarray:
        """disentanglement_lib's renderer; every factor is latent here, so no draws are consumed."""
        del random_state
        return self.factor_images(factors)
