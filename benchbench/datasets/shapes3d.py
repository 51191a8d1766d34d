"""Shapes3D, the real files (datasets.md §1).

Reference: Burgess & Kim, "3D Shapes Dataset", DeepMind 2018, https://github.com/deepmind/3d-shapes.
The loader reads DeepMind's ``3dshapes.h5`` (datasets ``images`` [480000, 64, 64, 3] uint8 and
``labels`` [480000, 6] float64 factor *values*) or a user-made ``3dshapes.npz`` with the same keys.
Label values become factor indices by nearest-grid rounding, never by float equality (§1 pitfalls).

Files smaller than the full grid (test fixtures, hand-made subsets) are accepted: the loader keeps
a lookup from flat index to row, and asking for an absent factor combination raises ``DataError``.
Other resolutions than 64 are made by resizing each image with PIL's bilinear filter (which
antialiases when shrinking); the paper setting is always 64.

The real ``images`` dataset is gzip-compressed and slow to read at random (§1), so on the first read
it is converted once, with a progress bar, into an uncompressed ``3dshapes.images.npy`` beside the
file (5.9 GB for the full set) and memory-mapped from then on; the page cache then keeps it in RAM
when it fits. The sidecar ``3dshapes.images.json`` ties the cache to the source's size and mtime, so
a replaced ``.h5`` rebuilds it; it also records the cache's SHA-256, checked again whenever the cache's own
size, mtime, ctime or inode changed, so a cache altered in place is rebuilt. Without enough free disk (or a
writable folder) the loader warns once and
reads the ``.h5`` directly.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image

from benchbench import integrity
from benchbench import progress as prog
from benchbench.datasets.base import DataConfig, DataSpec, GroundTruthData, data_root
from benchbench.datasets.download import fetch
from benchbench.errors import DataError
from benchbench.registry import register_dataset
from benchbench.store import atomic_write_json, file_mode, read_json

SOURCE_URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
FILE_NAMES = ("3dshapes.h5", "3dshapes.npz")
NATIVE_RESOLUTION = 64
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 480,000
# The values stored in ``labels`` (§1 table): hues k/10, scale linspace(0.75, 1.25, 8), shape 0..3,
# orientation linspace(-30, 30, 15) degrees.
FACTOR_VALUES: tuple[np.ndarray, ...] = (
    np.arange(10) / 10,
    np.arange(10) / 10,
    np.arange(10) / 10,
    np.linspace(0.75, 1.25, 8),
    np.arange(4, dtype=np.float64),
    np.linspace(-30.0, 30.0, 15),
)
_OFF_GRID_TOL = 0.01  # a label may sit at most 1% of a grid step away from its grid value
_CHUNK_CACHE = 64 * 2**20  # bytes of decompressed HDF5 chunks kept per open file
CACHE_VERSION = 1  # bump when the layout of the uncompressed image cache changes
_CONVERT_ROWS = 4096  # rows per read while converting (48 MiB)
_DISK_MARGIN = 2**30  # free bytes left on the disk after the cache is written


def _one_line(text: object) -> str:
    """Collapse whitespace (HDF5 error texts span lines) so CLI messages stay on one line."""
    return re.sub(r"\s+", " ", str(text)).strip()


def factors_to_labels(factors: np.ndarray) -> np.ndarray:
    """Factor indices [B, 6] -> the label values the real file stores [B, 6] (float64)."""
    factors = np.asarray(factors, dtype=np.int64)
    return np.stack([FACTOR_VALUES[k][factors[:, k]] for k in range(len(FACTOR_SIZES))], axis=1)


def labels_to_factors(labels: np.ndarray) -> np.ndarray:
    """Label values [B, 6] (any float dtype) -> factor indices [B, 6] (int64) by nearest-grid rounding.

    ``round((value - first) / step)`` per column (§1), so float32 copies of the linspace grids map
    correctly. Raises DataError if a value is more than 1% of a step off its grid or out of range.
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != len(FACTOR_SIZES):
        raise DataError(f"shapes3d labels must have shape [N, 6], got {list(labels.shape)}")
    factors = np.empty(labels.shape, dtype=np.int64)
    for k, grid in enumerate(FACTOR_VALUES):
        step = grid[1] - grid[0]
        idx = np.rint((labels[:, k] - grid[0]) / step)
        bad = ~np.isfinite(idx) | (idx < 0) | (idx >= len(grid))
        idx = np.where(bad, 0, idx).astype(np.int64)
        bad |= np.abs(labels[:, k] - grid[idx]) > _OFF_GRID_TOL * step
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"shapes3d label {FACTOR_NAMES[k]}={labels[row, k]!r} (row {row}) is not on the grid "
                f"{np.round(grid, 4).tolist()}; the file is not a 3D Shapes label table"
            )
        factors[:, k] = idx
    return factors


def row_lookup(labels: np.ndarray) -> np.ndarray | None:
    """Validate a label table [N, 6] and map flat index -> row.

    Returns:
        None for a full-size table whose rows are in flat-index order (row == index, §1), else an
        int64 array [480000] holding the row of each flat index, or -1 where the file lacks it.
    Raises:
        DataError: labels off the grid, a combination listed twice, or a full-size file out of order.
    """
    flat = np.ravel_multi_index(tuple(labels_to_factors(labels).T), FACTOR_SIZES)
    if len(flat) == NUM_IMAGES:
        if np.array_equal(flat, np.arange(NUM_IMAGES)):
            return None
        row = int(np.flatnonzero(flat != np.arange(NUM_IMAGES))[0])
        raise DataError(
            f"shapes3d rows are not in flat-index order (row {row} holds index {int(flat[row])}); "
            f"the file is not DeepMind's 3dshapes.h5 layout, re-download it from {SOURCE_URL}"
        )
    lookup = np.full(NUM_IMAGES, -1, dtype=np.int64)
    lookup[flat] = np.arange(len(flat))
    if np.count_nonzero(lookup >= 0) != len(flat):
        raise DataError("shapes3d label table lists a factor combination more than once")
    return lookup


def _check_layout(path: Path, images: tuple[tuple[int, ...], np.dtype], labels: Any) -> None:
    """Shapes and dtypes of ``images`` and ``labels`` (``labels``: (shape, dtype) or None)."""
    shape, dtype = images
    expected = (NATIVE_RESOLUTION, NATIVE_RESOLUTION, 3)
    if len(shape) != 4 or tuple(shape[1:]) != expected or shape[0] == 0:
        raise DataError(f"{path}: 'images' has shape {list(shape)}, expected [N, 64, 64, 3] with N > 0")
    if np.dtype(dtype) != np.uint8:
        raise DataError(f"{path}: 'images' has dtype {np.dtype(dtype)}, expected uint8")
    if labels is None:
        return
    lshape, ldtype = labels
    if len(lshape) != 2 or lshape[1] != len(FACTOR_SIZES):
        raise DataError(f"{path}: 'labels' has shape {list(lshape)}, expected [N, 6]")
    if not np.issubdtype(np.dtype(ldtype), np.floating):
        raise DataError(f"{path}: 'labels' has dtype {np.dtype(ldtype)}, expected float64")
    if lshape[0] != shape[0]:
        raise DataError(f"{path}: 'images' has {shape[0]} rows but 'labels' has {lshape[0]}")


def _require_keys(path: Path, keys: set[str], required: set[str]) -> None:
    if not required <= keys:
        raise DataError(
            f"{path}: expected datasets {sorted(required)}, found {sorted(keys)}; "
            f"not a 3D Shapes file (official source {SOURCE_URL})"
        )


def _read_h5(path: Path) -> np.ndarray:
    """Validate an HDF5 file and return its labels [N, 6] (float64); images stay on disk."""
    try:
        with h5py.File(path, "r") as f:
            _require_keys(path, set(f.keys()), {"images", "labels"})
            images, labels = f["images"], f["labels"]
            if not isinstance(images, h5py.Dataset) or not isinstance(labels, h5py.Dataset):
                raise DataError(f"{path}: 'images' and 'labels' must be HDF5 datasets, not groups")
            _check_layout(path, (images.shape, images.dtype), (labels.shape, labels.dtype))
            return np.asarray(labels[()], dtype=np.float64)
    except OSError as exc:
        raise DataError(
            f"{path}: not a readable HDF5 file ({_one_line(exc)}); it is probably truncated or corrupt, "
            f"re-download it from {SOURCE_URL}"
        ) from exc


def _read_npz(path: Path) -> np.ndarray | None:
    """Validate an ``.npz`` file from its headers; return its labels [N, 6] or None when absent."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: a bare .npy array, expected an .npz archive with 'images'")
            _require_keys(path, set(npz.files), {"images"})
            with npz.zip.open("images.npy") as member:  # header only: the pixels are not read here
                version = np.lib.format.read_magic(member)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                    version, np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(member)
            label_arr = npz["labels"] if "labels" in npz.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise DataError(
            f"{path}: not a readable .npz archive ({_one_line(exc)}); it is probably truncated or corrupt"
        ) from exc
    meta = None if label_arr is None else (label_arr.shape, label_arr.dtype)
    _check_layout(path, (tuple(shape), dtype), meta)
    if label_arr is None and shape[0] != NUM_IMAGES:
        raise DataError(f"{path}: has no 'labels', which only a full {NUM_IMAGES}-row file may omit")
    return None if label_arr is None else np.asarray(label_arr, dtype=np.float64)


def find_file(root: Path) -> Path:
    """The first of ``3dshapes.h5``, ``3dshapes.npz`` present in ``root``, else a one-line DataError."""
    for name in FILE_NAMES:
        if (root / name).is_file():
            return root / name
    raise DataError(
        f"shapes3d: file not found, expected {root / FILE_NAMES[0]} (or {FILE_NAMES[1]}); download it from "
        f"{SOURCE_URL} into that folder (or run `benchbench data fetch shapes3d`) or point --data-dir / "
        "BENCHBENCH_DATA at the folder holding it; "
        "offline alternative: --dataset shapes3d-synth (procedural look-alike, reported as synthetic)"
    )


def cache_paths(h5: Path) -> tuple[Path, Path]:
    """The uncompressed image cache ``<stem>.images.npy`` beside ``h5`` and its sidecar ``<stem>.images.json``."""
    return h5.with_name(f"{h5.stem}.images.npy"), h5.with_name(f"{h5.stem}.images.json")


def _cache_key(h5: Path) -> dict[str, Any]:
    st = h5.stat()
    return {"version": CACHE_VERSION, "source": h5.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _open_cache(npy: Path, rows: int) -> np.ndarray | None:
    """Memory-map ``npy`` if it holds uint8 [rows, 64, 64, 3], else None (missing or damaged)."""
    try:
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    ok = arr.dtype == np.uint8 and arr.shape == (rows, NATIVE_RESOLUTION, NATIVE_RESOLUTION, 3)
    return arr if ok else None


def _convert(h5: Path, npy: Path) -> None:
    """Write ``images`` of ``h5`` uncompressed to ``npy``, chunk by chunk with a progress bar, via a
    temporary sibling and an atomic rename (a crash never leaves a half-written cache)."""
    fd, tmp = tempfile.mkstemp(dir=npy.parent, prefix=f".{npy.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(h5, "r", rdcc_nbytes=_CHUNK_CACHE) as f:
            src = f["images"]
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=src.shape)
            with prog.bar(len(src), "shapes3d: uncompressing images (once)", True, prog.write, unit="img") as bar:
                for a in range(0, len(src), _CONVERT_ROWS):
                    b = min(a + _CONVERT_ROWS, len(src))
                    out[a:b] = src[a:b]
                    bar.update(b - a)
            out.flush()
            del out
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; the cache may be shared
        os.replace(tmp, npy)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _cache_intact(npy: Path, meta: Path, side: dict[str, Any]) -> bool:
    """Whether the cache is the file whose SHA-256 the sidecar recorded: trusted without reading while its
    size, mtime, ctime and inode are unchanged (:func:`benchbench.integrity.stat_key`), else hashed again (and the
    sidecar refreshed when it still matches). A cache that fails is rebuilt after a one-line warning."""
    if side.get("cache") == integrity.stat_key(npy):
        return True
    sha = integrity.sha256_file(npy)
    if sha == side.get("sha256"):
        try:
            atomic_write_json(meta, {**side, "cache": integrity.stat_key(npy)})
        except OSError:
            pass
        return True
    warnings.warn(f"shapes3d: the image cache {npy} fails its SHA-256 check; rebuilding it", stacklevel=4)
    return False


def image_cache(h5: Path, rows: int) -> np.ndarray | None:
    """The images of ``h5`` as a read-only memmap [rows, 64, 64, 3] of the uncompressed cache.

    The cache is reused while its sidecar matches the source's size and mtime (and its own shape),
    and (re)built otherwise when the disk has room for it plus 1 GiB.

    Returns:
        The memmap, or None after a one-line warning (too little free disk, unwritable folder or a
        failed conversion), in which case the caller reads the ``.h5`` directly.
    """
    npy, meta = cache_paths(h5)
    key = _cache_key(h5)
    side = read_json(meta)
    if isinstance(side, dict) and {k: side.get(k) for k in key} == key and npy.is_file():
        if _cache_intact(npy, meta, side) and (cached := _open_cache(npy, rows)) is not None:
            return cached
    try:  # a stale cache is useless: free its space before measuring
        meta.unlink(missing_ok=True)
        npy.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only folder: the conversion below fails and warns
    need = rows * NATIVE_RESOLUTION * NATIVE_RESOLUTION * 3 + 4096
    have = shutil.disk_usage(h5.parent).free
    if have < need + _DISK_MARGIN:
        warnings.warn(
            f"shapes3d: not enough free disk for the uncompressed image cache {npy} (needs {need / 2**30:.1f} GiB "
            f"plus 1 GiB spare, {have / 2**30:.1f} GiB free); reading the compressed {h5.name} directly, "
            "which is slow for random batches",
            stacklevel=3,
        )
        return None
    try:
        _convert(h5, npy)
        atomic_write_json(meta, {**key, "sha256": integrity.sha256_file(npy), "cache": integrity.stat_key(npy)})
    except (OSError, ValueError, KeyError) as exc:
        warnings.warn(
            f"shapes3d: could not build the image cache {npy} ({_one_line(exc)}); reading {h5.name} directly",
            stacklevel=3,
        )
        return None
    return _open_cache(npy, rows)


@register_dataset(
    "shapes3d",
    source="real",
    family="shapes3d",
    kind="factors",
    files=FILE_NAMES,
    description="DeepMind 3D Shapes (480,000 renders, 6 factors) from 3dshapes.h5 or 3dshapes.npz",
    spec_facts=lambda cfg: DataSpec("shapes3d", 3, cfg.resolution, "real", factor_names=FACTOR_NAMES,
                                    factor_sizes=FACTOR_SIZES, family="shapes3d", version="files not read"),
)
class Shapes3D(GroundTruthData):
    """The real 3D Shapes images (datasets.md §1), validated at construction.

    Args:
        cfg: dataset options; ``resolution`` other than 64 resizes bilinearly with PIL.
        data_dir: folder holding the file (default ``data_root()``).
        download: when no file is present, download ``3dshapes.h5`` (checksummed, resumable) instead
            of raising; None follows ``cfg.download`` (default True, as "automatic fetch on first use").
    Raises:
        DataError: missing, truncated or malformed file (one-line message naming the fix).
    """

    def __init__(self, cfg: DataConfig, data_dir: Path | None = None, download: bool | None = None) -> None:
        if cfg.resolution < 1:
            raise DataError(f"shapes3d: resolution must be positive, got {cfg.resolution}")
        self.cfg = cfg
        root = data_root(data_dir)
        try:
            self.path = find_file(root)
        except DataError:
            if not (cfg.download if download is None else download):
                raise
            self.path = fetch("shapes3d", root, url=cfg.url or None)
        self._is_h5 = self.path.suffix == ".h5"
        labels = _read_h5(self.path) if self._is_h5 else _read_npz(self.path)
        try:
            self._lookup = None if labels is None else row_lookup(labels)
        except DataError as exc:
            raise DataError(f"{self.path}: {exc}") from None
        self._labels = labels
        self._handle: Any = None  # cache memmap, h5py images dataset or npz array, opened on first read
        self._pid = -1
        self._num_rows = NUM_IMAGES if labels is None else len(labels)
        self._use_cache = self._is_h5  # cleared once building the image cache failed (warned once)
        self.spec = DataSpec(
            name="shapes3d",
            channels=3,
            resolution=cfg.resolution,
            source="real",
            factor_names=FACTOR_NAMES,
            factor_sizes=FACTOR_SIZES,
            family="shapes3d",
            version=f"{self.path.name}:{self.path.stat().st_size}",
        )

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """One array of stored label values per factor (§1 table)."""
        return FACTOR_VALUES

    @property
    def available_indices(self) -> np.ndarray:
        """Sorted flat indices [M] present in the file (all 480,000 for the real file)."""
        return np.arange(NUM_IMAGES) if self._lookup is None else np.flatnonzero(self._lookup >= 0)

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """The label values [B, 6] (float64) of flat ``indices`` [B], on the exact grids."""
        return factors_to_labels(self.index_to_factors(indices))

    def __getitem__(self, index: int) -> np.ndarray:
        """One uint8 image [H, W, 3]."""
        return self.images(np.array([index]))[0]

    def __getstate__(self) -> dict[str, Any]:  # pickling (spawned workers) never carries the handle
        return {**self.__dict__, "_handle": None, "_pid": -1}

    def _rows(self, indices: np.ndarray) -> np.ndarray:
        """Flat indices [B] -> file rows [B]; absent combinations raise DataError."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= NUM_IMAGES):
            raise IndexError(f"shapes3d: flat index out of range [0, {NUM_IMAGES})")
        if self._lookup is None:
            return indices
        rows = self._lookup[indices]
        if (rows < 0).any():
            missing = int(indices[rows < 0][0])
            factors = dict(
                zip(FACTOR_NAMES, self.index_to_factors(np.array([missing]))[0].tolist(), strict=True)
            )
            raise DataError(
                f"shapes3d: {self.path} is a {len(self._labels)}-row subset without index {missing} {factors}"
            )
        return rows

    def _source(self) -> Any:
        """The images array: the memmap of the uncompressed cache (built on first use), else an h5py
        dataset opened once per process (reopened after a fork), or the npz array read into memory
        once (a forked worker shares it)."""
        if isinstance(self._handle, h5py.Dataset) and self._pid != os.getpid():
            self._handle = None  # an HDF5 handle must not cross a fork; a memmap may
        if self._handle is None:
            if self._use_cache:
                self._handle = image_cache(self.path, self._num_rows)
                self._use_cache = self._handle is not None
            if self._handle is None and self._is_h5:
                # The dataset keeps its file open; a 64 MiB chunk cache holds any plausible chunk layout.
                self._handle = h5py.File(self.path, "r", rdcc_nbytes=_CHUNK_CACHE)["images"]
            elif self._handle is None:
                with np.load(self.path, allow_pickle=False) as npz:
                    self._handle = npz["images"]
            self._pid = os.getpid()
        return self._handle

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, R, R, 3] for flat ``indices`` [B] (any order, repeats allowed)."""
        rows = self._rows(indices)
        unique, inverse = np.unique(rows, return_inverse=True)
        try:
            block = _read_runs(self._source(), unique)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(f"{self.path}: read failed ({_one_line(exc)}); the file may be corrupt") from exc
        out = block[inverse.reshape(-1)]
        return out if self.cfg.resolution == NATIVE_RESOLUTION else _resize(out, self.cfg.resolution)


def _read_runs(source: Any, rows: np.ndarray) -> np.ndarray:
    """uint8 images [M, 64, 64, 3] of sorted unique ``rows`` [M], one slice read per contiguous run.

    h5py's list indexing builds one large selection and is ~20x slower than plain slices for
    scattered rows; runs of consecutive rows are read as single slices. Arrays (the cache memmap, an
    npz) take one fancy-indexed read.
    """
    if len(rows) == 0:
        return np.empty((0, NATIVE_RESOLUTION, NATIVE_RESOLUTION, 3), dtype=np.uint8)
    if isinstance(source, np.ndarray):
        return np.asarray(source[rows])
    starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)
    ends = np.append(starts[1:], len(rows))
    return np.concatenate([source[rows[a] : rows[b - 1] + 1] for a, b in zip(starts, ends, strict=True)])


def _resize(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [B, 64, 64, 3] -> uint8 [B, R, R, 3] with PIL bilinear (antialiased when shrinking)."""
    size = (resolution, resolution)
    return np.stack([np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR)) for im in images])
