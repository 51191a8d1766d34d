"""dSprites, the real file (``dsprites``), as disentanglement_lib's ``dsprites_full`` reads it.

Reference: Matthey et al., "dSprites: Disentanglement testing Sprites dataset", 2017,
https://github.com/deepmind/dsprites-dataset; disentanglement_lib ``data/ground_truth/dsprites.py`` (commit 86a644d),
``named_data.py``: ``dsprites_full = DSprites([1, 2, 3, 4, 5])``.

The file ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` holds ``imgs`` [737,280, 64, 64] uint8 in {0, 1},
``latents_classes`` and ``latents_values`` [737,280, 6] (colour, shape, scale, orientation, posX, posY) and a pickled
``metadata`` dict whose ``latents_sizes`` is [1, 3, 6, 40, 32, 32]. Rows are the C-order ravel of the factor grid, so
with the constant colour dropped the flat index is the ravel over the five latent factors (datasets.md §0), exactly
the reference's ``dot(factors, factor_bases)``. Like the reference, the factor sizes are read from the metadata.

Images are one channel (the reference's ``data_shape`` [64, 64, 1]); the loader yields uint8 {0, 255} [B, 64, 64, 1]
so that ``img / 127.5 - 1`` is in {-1, 1} and the Bernoulli targets (x + 1) / 2 are the reference's {0, 1} floats.

Memory mapping: the archive is deflated (``np.savez_compressed``), so on first use its ``imgs`` are streamed once
into ``<file stem>.imgs-packed.npy`` beside it, one bit per pixel (737,280 x 512 bytes = 377 MB instead of 3 GB),
stamped with the archive's mtime; reads map that file and unpack only the requested rows.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchbench.datasets.base import DataConfig, DataSpec, GroundTruthData, data_root
from benchbench.datasets.mpi3d import _one_line, _read_npy_header
from benchbench.errors import ConfigError, DataError
from benchbench.registry import register_dataset

FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = f"https://github.com/deepmind/dsprites-dataset/raw/master/{FILE}"
SOURCE = "https://github.com/deepmind/dsprites-dataset"
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
KEYS = ("imgs", "latents_classes", "latents_values", "metadata")
SIDE = 64
_ROW_BYTES = SIDE * SIDE // 8  # one bit per pixel
_CHUNK_ROWS = 8192


def packed_file(path: Path) -> Path:
    """The bit-packed pixel cache of archive ``path``: ``<stem>.imgs-packed.npy`` beside it."""
    return path.with_name(f"{path.stem}.imgs-packed.npy")


def _bad(path: Path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}; not the dSprites archive, re-download it from {URL}")


def read_archive(path: Path) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """Check the archive's keys, metadata and label order; returns (latent sizes, latents_values [N, 6], imgs shape).

    Raises:
        DataError: not a zip/npz, a key missing, metadata without ``latents_sizes`` = [1, n_1..n_5], labels not in
            ravel order, or ``imgs`` not uint8 [N, 64, 64].
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n.removesuffix(".npy") for n in zf.namelist()}
            missing = [k for k in KEYS if k not in names]
            if missing:
                raise _bad(path, f"keys {missing} missing (found {sorted(names)})")
            with zf.open("imgs.npy") as member:
                shape, fortran, dtype = _read_npy_header(member)
        with np.load(path, allow_pickle=True, encoding="latin1") as data:  # metadata is a python-2 pickle
            meta = data["metadata"][()]
            classes = np.asarray(data["latents_classes"])
            values = np.asarray(data["latents_values"], dtype=np.float64)
    except DataError:
        raise
    except Exception as exc:  # zipfile, pickle and numpy raise many kinds on a damaged file
        raise _bad(path, f"unreadable ({_one_line(exc)})") from None
    sizes = meta.get("latents_sizes") if isinstance(meta, dict) else None
    sizes = tuple(int(s) for s in np.asarray(sizes).reshape(-1)) if sizes is not None else ()
    if len(sizes) != 6 or sizes[0] != 1 or min(sizes) < 1:
        raise _bad(path, f"metadata latents_sizes is {list(sizes)}, expected [1, shape, scale, orientation, x, y]")
    n = int(np.prod(sizes))
    if np.dtype(dtype) != np.uint8 or tuple(shape) != (n, SIDE, SIDE) or fortran:
        raise _bad(path, f"imgs is {np.dtype(dtype)} {list(shape)}, expected C-order uint8 [{n}, 64, 64]")
    if classes.shape != (n, 6) or values.shape != (n, 6):
        raise _bad(path, f"latents_classes {list(classes.shape)} / latents_values {list(values.shape)}, "
                         f"expected [{n}, 6]")
    grid = np.stack(np.unravel_index(np.arange(n), sizes), axis=1)
    if not np.array_equal(classes, grid):
        raise _bad(path, "latents_classes are not the C-order ravel of the factor grid (rows out of order)")
    return sizes[1:], values, tuple(shape)


def build_packed(path: Path, target: Path, num_rows: int) -> None:
    """Stream ``imgs`` of the archive into a bit-packed ``.npy`` [N, 512] (progress bar), atomically, stamped with
    the archive's mtime. Raises DataError for pixels outside {0, 1}, a corrupt stream or an unwritable folder."""
    tmp = None
    try:
        with zipfile.ZipFile(path) as zf, zf.open("imgs.npy") as member:
            _read_npy_header(member)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
            with os.fdopen(fd, "wb") as out, tqdm(total=num_rows, unit="img", desc=f"dsprites: packing {path.name}") \
                    as bar:
                np.lib.format.write_array_header_1_0(
                    out, {"descr": "|u1", "fortran_order": False, "shape": (num_rows, _ROW_BYTES)})
                for start in range(0, num_rows, _CHUNK_ROWS):
                    rows = min(_CHUNK_ROWS, num_rows - start)
                    raw = member.read(rows * SIDE * SIDE)
                    if len(raw) != rows * SIDE * SIDE:
                        raise EOFError(f"imgs ends after {start} rows")
                    pixels = np.frombuffer(raw, np.uint8).reshape(rows, SIDE * SIDE)
                    if pixels.max(initial=0) > 1:
                        raise DataError(f"{path}: imgs holds values above 1; dSprites pixels are 0 or 1")
                    out.write(np.packbits(pixels, axis=1).tobytes())
                    bar.update(rows)
            member.read(1)  # reaching the end makes zipfile check the CRC
        st = path.stat()
        os.chmod(tmp, 0o644)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, target)
    except DataError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError) as exc:
        raise DataError(f"{path}: could not unpack imgs into {target} ({_one_line(exc)}); the archive may be corrupt "
                        f"or the folder unwritable") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _packed(path: Path, num_rows: int) -> tuple[Path, int]:
    """(file, data offset) of an up-to-date packed cache of ``path``, building it when missing or stale."""
    target = packed_file(path)
    for attempt in range(2):
        try:
            if target.stat().st_mtime_ns == path.stat().st_mtime_ns:
                with open(target, "rb") as f:
                    shape, fortran, dtype = _read_npy_header(f)
                    offset = f.tell()
                    size = os.fstat(f.fileno()).st_size
                if tuple(shape) == (num_rows, _ROW_BYTES) and size == offset + num_rows * _ROW_BYTES:
                    return target, offset
        except (OSError, ValueError, EOFError):
            pass
        if attempt == 0:
            build_packed(path, target, num_rows)
    raise DataError(f"{path}: the packed cache {target} does not match the archive; delete it")


def find_file(root: Path) -> Path:
    """``root / FILE`` if it exists, else a one-line DataError naming the fix."""
    path = root / FILE
    if path.is_file():
        return path
    raise DataError(
        f"dsprites: file not found, expected {path}; run `benchbench data fetch dsprites` (downloads {URL}) or place "
        "the file there / point --data-dir at its folder; offline alternative: --dataset dsprites-synth "
        "(procedural look-alike, reported as synthetic)"
    )


@register_dataset(
    "dsprites",
    source="real",
    family="dsprites",
    kind="factors",
    files=(FILE,),
    description="dSprites (737,280 binary 64x64 sprites; shape 3, scale 6, orientation 40, x 32, y 32), 1 channel",
)
class DSprites(GroundTruthData):
    """The real dSprites images, memory-mapped from a bit-packed cache (module doc).

    Args:
        cfg: dataset options; ``resolution`` other than 64 resizes with PIL (bilinear), ``download`` fetches a
            missing file (``benchbench.datasets.download``).
        data_dir: folder holding the file (default ``data_root()``).
    """

    def __init__(self, cfg: DataConfig, data_dir: Path | None = None) -> None:
        if cfg.resolution < 1:
            raise ConfigError(f"dsprites: resolution must be positive, got {cfg.resolution}")
        self.cfg = cfg
        root = data_root(data_dir)
        try:
            self.path = find_file(root)
        except DataError:
            if not cfg.download:
                raise
            from benchbench.datasets.download import fetch

            self.path = fetch("dsprites", root, url=cfg.url or None)
        sizes, values, shape = read_archive(self.path)
        self._values = values
        self._packed_path, self._offset = _packed(self.path, shape[0])
        self._map: np.memmap | None = None
        self._pid = -1
        self.spec = DataSpec(name="dsprites", channels=1, resolution=cfg.resolution, source="real",
                             factor_names=FACTOR_NAMES, factor_sizes=sizes, family="dsprites",
                             version=f"{self.path.name}:{self.path.stat().st_size}")

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """Per latent factor, its values from ``latents_values`` (shape 1..3, scale 0.5..1, orientation 0..2π, x, y)."""
        return tuple(np.unique(self._values[:, k + 1]) for k in range(len(self.factor_sizes)))

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """``latents_values`` of the five latent factors [B, 5] (float64) for flat ``indices`` [B]."""
        return self._values[np.asarray(indices, dtype=np.int64), 1:]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_map": None, "_pid": -1}

    def _source(self) -> np.memmap:
        if self._map is None or self._pid != os.getpid():
            self._map = np.memmap(self._packed_path, dtype=np.uint8, mode="r", offset=self._offset,
                                  shape=(len(self), _ROW_BYTES))
            self._pid = os.getpid()
        return self._map

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 {0, 255} images [B, R, R, 1] for flat ``indices`` [B]."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"dsprites: flat index out of range [0, {len(self)})")
        unique, inverse = np.unique(indices, return_inverse=True)
        bits = np.unpackbits(np.asarray(self._source()[unique]), axis=1)[inverse.reshape(-1)]
        out = (bits * np.uint8(255)).reshape(len(indices), SIDE, SIDE, 1)
        if self.cfg.resolution == SIDE:
            return out
        size = (self.cfg.resolution, self.cfg.resolution)
        return np.stack([np.asarray(Image.fromarray(im[..., 0]).resize(size, Image.BILINEAR))[..., None] for im in out])

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        """disentanglement_lib's renderer: it draws the non-latent colour (1 value) before the lookup (RNG parity)."""
        random_state.randint(1, size=len(factors))
        return self.factor_images(factors)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images(np.array([index]))[0]
