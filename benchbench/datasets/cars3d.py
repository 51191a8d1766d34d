"""Cars3D, the real files (``cars3d``), as disentanglement_lib and DisDiff read them.

Reference: Reed et al., "Deep Visual Analogy-Making", NeurIPS 2015 (data: http://www.scottreed.info,
``nips2015-analogy-data.tar.gz``, folder ``data/cars``); disentanglement_lib ``data/ground_truth/cars3d.py``
(commit 86a644d) and DisDiff ``ldm/data/dis.py`` (methods.md §1.1), which rebuild the set from the 183 MATLAB files
``car_*_mesh.mat``, each holding ``im`` [128, 128, 3, 24, 4] uint8 (pixels, RGB, 24 azimuths, 4 elevations).

Order (both references): ``mesh = einsum("abcde->deabc", im)`` [24, 4, 128, 128, 3] flattened azimuth-major, i.e. row
``a · 4 + e`` of a file is (elevation e, azimuth a); the file's position in the folder listing is the object id; the
images are stored at the flat index of (elevation, azimuth, object), factor sizes [4, 24, 183], the C-order ravel
(datasets.md §0). The references enumerate the folder in ``os.listdir`` order, which depends on the file system;
benchbench sorts the names, so object ids are the same everywhere (the factor metrics do not depend on how an object
id is numbered, only which images share one).

Resizing: each 128x128 image goes through ``PIL.Image.thumbnail((64, 64), ANTIALIAS)``, which for a square image is
``resize((64, 64), LANCZOS)`` (the tests check the two agree); the references keep float /255 copies, DisDiff turns
them back into uint8 with ``np.uint8(x * 255)``, which restores the exact bytes. Other resolutions resize the 128x128
originals the same way to R x R.

The resized images (216 MB at 64x64) are cached once as ``cars/cars3d-r<R>.npy`` beside the files, keyed by the
names, sizes and mtimes of the ``.mat`` files, and memory-mapped. DisDiff trains on the array repeated 10x and
evaluates on the 17,568 unique images: ``data.repeat = 10`` gives that training pool (``training_pool``); the
factor metrics always see the unique images.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchbench.datasets.base import DataConfig, DataSpec, GroundTruthData, data_root
from benchbench.datasets.manifest import cars3d_instructions
from benchbench.datasets.mpi3d import _one_line
from benchbench.errors import ConfigError, DataError
from benchbench.registry import register_dataset

FACTOR_NAMES = ("elevation", "azimuth", "object_type")
FACTOR_SIZES = (4, 24, 183)
NUM_OBJECTS = 183
MESH_SHAPE = (128, 128, 3, 24, 4)  # ``im``: rows, columns, RGB, azimuth, elevation
FOLDER = "cars"


def list_files(folder: Path) -> list[Path]:
    """The ``.mat`` files of ``folder``, sorted by name (the object ids)."""
    return sorted(p for p in folder.iterdir() if ".mat" in p.name and p.is_file()) if folder.is_dir() else []


def resize_like_reference(image: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [128, 128, 3] -> [R, R, 3] as ``PIL thumbnail((R, R), ANTIALIAS)`` does for a square image."""
    return np.asarray(Image.fromarray(image).resize((resolution, resolution), Image.LANCZOS))


def load_mesh(path: Path, resolution: int) -> np.ndarray:
    """One object's 96 views [96, R, R, 3] uint8, row ``azimuth · 4 + elevation`` (the references' ``_load_mesh``).

    Raises:
        DataError: not a MATLAB file, no ``im``, or ``im`` not uint8 [128, 128, 3, 24, 4].
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError... on a damaged file
        raise DataError(f"{path}: not a readable MATLAB file ({_one_line(exc)}); re-extract it from the archive"
                        ) from None
    if "im" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no 'im' array (found {found}); not a Cars3D mesh file")
    im = mat["im"]
    if im.dtype != np.uint8 or im.shape != MESH_SHAPE:
        raise DataError(f"{path}: 'im' is {im.dtype} {list(im.shape)}, expected uint8 {list(MESH_SHAPE)}")
    mesh = np.einsum("abcde->deabc", im).reshape(-1, 128, 128, 3)
    return np.stack([resize_like_reference(v, resolution) for v in mesh])


def fingerprint(files: list[Path], resolution: int) -> str:
    """Hex digest of the file names, sizes and mtimes and the resolution (the cache key)."""
    items = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps([resolution, items]).encode()).hexdigest()[:16]


def build_cache(files: list[Path], target: Path, resolution: int) -> None:
    """Resize every view of every file into ``target`` [4 · 24 · n, R, R, 3] (ravel order), atomically."""
    n = len(files)
    out = np.zeros((4, 24, n, resolution, resolution, 3), dtype=np.uint8)
    for obj, path in enumerate(tqdm(files, desc="cars3d: resizing the meshes once", unit="file")):
        views = load_mesh(path, resolution).reshape(24, 4, resolution, resolution, 3)  # [azimuth, elevation, ...]
        out[:, :, obj] = views.transpose(1, 0, 2, 3, 4)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, out.reshape(-1, resolution, resolution, 3))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@register_dataset(
    "cars3d",
    source="real",
    family="cars3d",
    kind="factors",
    files=(FOLDER,),
    description="Cars3D (Reed et al. 2015; 17,568 renders: elevation 4, azimuth 24, object 183) from cars/*.mat",
)
class Cars3D(GroundTruthData):
    """The real Cars3D images (module doc), resized once and memory-mapped.

    Args:
        cfg: dataset options; ``resolution`` (64 in the references), ``repeat`` (DisDiff's training pool, 10).
        data_dir: folder holding ``cars/`` (default ``data_root()``).
        num_objects: how many ``.mat`` files to expect (183; fixtures pass fewer).
    Raises:
        DataError: no ``cars/`` folder or the wrong number of files (one line naming where they go), a malformed file.
    """

    def __init__(self, cfg: DataConfig, data_dir: Path | None = None, num_objects: int = NUM_OBJECTS) -> None:
        if cfg.resolution < 1:
            raise ConfigError(f"cars3d: resolution must be positive, got {cfg.resolution}")
        self.cfg = cfg
        folder = data_root(data_dir) / FOLDER
        files = list_files(folder)
        if not files:
            raise DataError(cars3d_instructions(data_root(data_dir)))
        if len(files) != num_objects:
            raise DataError(f"cars3d: {folder} holds {len(files)} .mat files, expected {num_objects}; "
                            f"{cars3d_instructions(data_root(data_dir))}")
        key = fingerprint(files, cfg.resolution)
        self._path = folder / f"cars3d-r{cfg.resolution}.npy"
        self._key_path = self._path.with_name(self._path.name + ".key")
        if not (self._path.is_file() and self._key_path.is_file() and self._key_path.read_text() == key):
            try:
                build_cache(files, self._path, cfg.resolution)
                self._key_path.write_text(key)
            except OSError as exc:
                raise DataError(f"cars3d: cannot write the resized cache {self._path} ({_one_line(exc)}); "
                                f"make {folder} writable") from None
        self._map: np.ndarray | None = None
        self._pid = -1
        self.spec = DataSpec(name="cars3d", channels=3, resolution=cfg.resolution, source="real",
                             factor_names=FACTOR_NAMES, factor_sizes=(4, 24, num_objects), family="cars3d",
                             version=f"cars:{len(files)}:{key}")

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """Indices per factor (the files record no angles): elevation 0..3, azimuth 0..23, object 0..n-1."""
        return tuple(np.arange(n) for n in self.factor_sizes)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_map": None, "_pid": -1}

    def _source(self) -> np.ndarray:
        if self._map is None or self._pid != os.getpid():
            self._map = np.load(self._path, mmap_mode="r")
            self._pid = os.getpid()
        return self._map

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, R, R, 3] for flat ``indices`` [B]."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"cars3d: flat index out of range [0, {len(self)})")
        unique, inverse = np.unique(indices, return_inverse=True)
        return np.asarray(self._source()[unique])[inverse.reshape(-1)]

    def training_pool(self) -> np.ndarray | None:
        """DisDiff's training pool: every image ``repeat`` times (None, every image once, when repeat is 1); the
        FID reference set and the factor metrics still see each image once."""
        return None if self.cfg.repeat == 1 else np.tile(np.arange(len(self)), self.cfg.repeat)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images(np.array([index]))[0]
