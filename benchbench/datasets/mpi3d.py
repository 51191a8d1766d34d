"""MPI3D, the real files (datasets.md §2).

Reference: Gondal et al., "On the Transfer of Inductive Bias from Simulation to the Real World: a New
Disentanglement Dataset", NeurIPS 2019, https://arxiv.org/abs/1906.03292. Files: the Hugging Face
dataset ``waleedgondal/mpi3d`` (linked from https://github.com/rr-learning/disentanglement_dataset).

Each variant is one ``np.savez`` archive holding a single array ``images`` [N, 64, 64, 3] uint8 and no
labels: the factors come from the row index, a C-order ravel of the README reshape
``[6, 6, 2, 3, 3, 40, 40, 64, 64, 3]`` (§0, §2). ``np.load`` would materialise 12.7 GB, so the loader
memory-maps the stored member instead: it parses the zip's local file header to find where the ``.npy``
member's bytes start, parses the ``.npy`` header there, and maps the pixels read-only. A deflated member
(``np.savez_compressed``) cannot be mapped; it is converted once to an uncompressed ``.npy`` beside the
archive, which is then mapped.

Row counts: 1,036,800 means the 6 x 6 colour/shape grid, 460,800 the 4 x 4 grid of ``real_complex``;
any other N (fixtures, hand-made subsets) needs explicit ``factor_sizes``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchbench import integrity
from benchbench import progress as prog
from benchbench.datasets.base import DataConfig, DataSpec, GroundTruthData, data_root
from benchbench.errors import ConfigError, DataError
from benchbench.registry import register_dataset
from benchbench.store import file_mode

HF_DATASET = "waleedgondal/mpi3d"
SOURCE = (
    f"the Hugging Face dataset {HF_DATASET} (https://huggingface.co/datasets/{HF_DATASET}), "
    "linked from https://github.com/rr-learning/disentanglement_dataset"
)
VARIANTS = ("toy", "realistic", "real")
NATIVE_RESOLUTION = 64
IMAGE_SHAPE = (NATIVE_RESOLUTION, NATIVE_RESOLUTION, 3)
ROW_BYTES = int(np.prod(IMAGE_SHAPE))  # 12,288
FACTOR_NAMES = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "horizontal_axis",
    "vertical_axis",
)
FACTOR_SIZES = (6, 6, 2, 3, 3, 40, 40)
COMPLEX_FACTOR_SIZES = (4, 4, 2, 3, 3, 40, 40)  # mpi3d_real_complex (§2)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 1,036,800
NUM_IMAGES_COMPLEX = int(np.prod(COMPLEX_FACTOR_SIZES))  # 460,800
# Meaning of each index (§2 table); horizontal_axis and vertical_axis are positions 0..39.
VALUE_NAMES: dict[str, tuple[str, ...]] = {
    "object_color": ("white", "green", "red", "blue", "brown", "olive"),
    "object_shape": ("cone", "cube", "cylinder", "hexagonal", "pyramid", "sphere"),
    "object_size": ("small", "large"),
    "camera_height": ("top", "center", "bottom"),
    "background_color": ("purple", "sea green", "salmon"),
}
COMPLEX_VALUE_NAMES: dict[str, tuple[str, ...]] = {
    **VALUE_NAMES,
    "object_color": ("yellow", "green", "olive", "red"),
    "object_shape": ("coffee-cup", "tennis-ball", "croissant", "beer-cup"),
}
_MEMBER = "images.npy"
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # zip local file header, 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"
_COPY_BYTES = 64 * 2**20  # chunk of the one-time deflated -> .npy conversion


def expected_file(variant: str) -> str:
    """File name of an MPI3D ``variant`` (toy | realistic | real), e.g. ``mpi3d_toy.npz``."""
    if variant not in VARIANTS:
        raise ConfigError(f"mpi3d: unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return f"mpi3d_{variant}.npz"


def cache_file(path: Path) -> Path:
    """The uncompressed ``.npy`` made from deflated archive ``path``: ``mpi3d_toy.npz`` -> ``mpi3d_toy.images.npy``."""
    return path.with_name(f"{path.stem}.images.npy")


def _one_line(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def _read_npy_header(fp: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from an open ``.npy`` stream positioned at its magic string."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    return np.lib.format.read_array_header_2_0(fp)  # (2, 0) and (3, 0) share the layout


def _check_array(path: Path, shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> None:
    """The ``images`` array must be C-order uint8 [N, 64, 64, 3] with N > 0."""
    if np.dtype(dtype) != np.uint8:
        raise DataError(f"{path}: 'images' has dtype {np.dtype(dtype)}, expected uint8")
    if len(shape) != 4 or tuple(shape[1:]) != IMAGE_SHAPE or shape[0] == 0:
        raise DataError(f"{path}: 'images' has shape {list(shape)}, expected [N, 64, 64, 3] with N > 0")
    if fortran:
        raise DataError(f"{path}: 'images' is stored in Fortran order, expected C order (as np.savez writes)")


def locate_stored_array(path: Path) -> tuple[int, tuple[int, ...], bool]:
    """Find the pixels of ``images.npy`` inside an ``.npz`` archive without reading them.

    Returns:
        (offset, shape, stored): the byte offset of the array data in ``path`` and its shape
        [N, 64, 64, 3] when the member is ZIP_STORED (``stored`` True); for a deflated member the
        offset is -1 and ``stored`` False.
    Raises:
        DataError: not a zip archive or truncated, no ``images`` member, wrong dtype/shape, encrypted.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if _MEMBER not in names:
                found = sorted(n.removesuffix(".npy") for n in names)
                raise DataError(f"{path}: no 'images' array in the archive (found {found}); not an MPI3D .npz")
            info = zf.getinfo(_MEMBER)
            if info.flag_bits & 0x1:
                raise DataError(f"{path}: the 'images' member is encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as member:  # decompresses only the header's first bytes
                    shape, fortran, dtype = _read_npy_header(member)
                _check_array(path, shape, fortran, dtype)
                return -1, tuple(shape), False
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
            if fields[0] != _LOCAL_MAGIC:
                raise DataError(f"{path}: bad local file header for 'images'; the archive is corrupt")
            # The local name and extra field (zip64 sizes live there) may differ from the central
            # directory's copies, so their lengths are read from the local header itself.
            start = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
            f.seek(start)
            shape, fortran, dtype = _read_npy_header(f)
            data_offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile, struct.error) as exc:
        raise DataError(
            f"{path}: not a readable .npz (zip) archive ({_one_line(exc)}); it is probably truncated or corrupt, "
            f"re-download it from {SOURCE}"
        ) from exc
    _check_array(path, shape, fortran, dtype)
    nbytes = int(np.prod(shape))
    if info.file_size != data_offset - start + nbytes or data_offset + nbytes > size:
        raise DataError(
            f"{path}: 'images' holds {info.file_size} bytes but its header promises {list(shape)}; "
            f"the file is truncated or corrupt, re-download it from {SOURCE}"
        )
    return data_offset, tuple(shape), True


def convert_deflated(path: Path, target: Path) -> None:
    """One-time conversion of a deflated ``images.npy`` member to an uncompressed ``.npy`` file ``target``.

    Streams the member in 64 MiB chunks (progress bar) into a temporary file beside ``target``, stamps it
    with the archive's modification time (so a replaced archive invalidates it) and renames it into place
    atomically. Raises DataError on a corrupt stream, a full disk or an unwritable folder.
    """
    tmp = None
    try:
        with zipfile.ZipFile(path) as zf, zf.open(_MEMBER) as member:
            shape, fortran, dtype = _read_npy_header(member)
            _check_array(path, shape, fortran, dtype)
            nbytes = int(np.prod(shape))
            free = shutil.disk_usage(target.parent).free
            if free < nbytes + 2**20:
                raise DataError(
                    f"{path}: the compressed archive must be converted once to {target} ({nbytes / 1e9:.1f} GB) "
                    f"but only {free / 1e9:.1f} GB are free there; free space or save the archive with np.savez"
                )
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, prog.bar(
                nbytes, f"mpi3d: decompressing {path.name} once", True, prog.write, unit="B"
            ) as bar:
                header = {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)}
                head = io.BytesIO()
                np.lib.format.write_array_header_1_0(head, header)
                out.write(head.getvalue())
                digest.update(head.getvalue())
                left = nbytes
                while left:
                    chunk = member.read(min(_COPY_BYTES, left))
                    if not chunk:
                        raise EOFError(f"the member ends {left} bytes early")
                    out.write(chunk)
                    digest.update(chunk)
                    left -= len(chunk)
                    bar.update(len(chunk))
            member.read(1)  # reaching the end makes zipfile check the CRC
        st = path.stat()
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; the cache may be shared
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, target)
        integrity.record_cache(target, digest.hexdigest())
    except (OSError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error, ValueError) as exc:
        raise DataError(
            f"{path}: could not convert the compressed 'images' to {target} ({_one_line(exc)}); "
            f"the archive may be corrupt or the folder unwritable"
        ) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _cached_npy(path: Path, shape: tuple[int, ...]) -> tuple[Path, int]:
    """(file, data offset) of the uncompressed cache of deflated archive ``path``, converting when stale."""
    target = cache_file(path)
    for attempt in range(2):
        try:
            if target.stat().st_mtime_ns == path.stat().st_mtime_ns:
                with open(target, "rb") as f:
                    cshape, fortran, dtype = _read_npy_header(f)
                    offset = f.tell()
                    size = os.fstat(f.fileno()).st_size
                if (tuple(cshape), fortran, np.dtype(dtype)) == (shape, False, np.uint8) and (
                    size == offset + int(np.prod(shape))
                ) and integrity.cache_intact(target, "mpi3d: the converted cache", "converting the archive again"):
                    return target, offset
        except (OSError, ValueError, EOFError):
            pass  # missing or damaged: (re)convert below
        if attempt == 0:
            convert_deflated(path, target)
    raise DataError(f"{path}: the converted cache {target} does not match the archive")


def resolve_factor_sizes(num_rows: int, factor_sizes: tuple[int, ...] | None, path: Path) -> tuple[int, ...]:
    """Factor sizes for a file of ``num_rows`` images: explicit, else inferred from N (§2)."""
    if factor_sizes is not None:
        sizes = tuple(int(s) for s in factor_sizes)
        if len(sizes) != len(FACTOR_NAMES) or min(sizes) < 1 or int(np.prod(sizes)) != num_rows:
            raise DataError(
                f"{path}: factor_sizes {list(sizes)} must be 7 positive sizes whose product is the "
                f"{num_rows} rows of the file"
            )
        return sizes
    if num_rows == NUM_IMAGES:
        return FACTOR_SIZES
    if num_rows == NUM_IMAGES_COMPLEX:
        return COMPLEX_FACTOR_SIZES
    raise DataError(
        f"{path}: {num_rows} images, expected {NUM_IMAGES:,} (6x6 colour/shape grid) or "
        f"{NUM_IMAGES_COMPLEX:,} (real_complex, 4x4); the file is truncated or not MPI3D, re-download it from {SOURCE}"
    )


def find_file(root: Path, variant: str) -> Path:
    """``root / expected_file(variant)`` if it exists, else a one-line DataError naming the fix."""
    path = root / expected_file(variant)
    if path.is_file():
        return path
    raise DataError(
        f"mpi3d: file not found, expected {path} (variant {variant}); download {path.name} from {SOURCE} "
        "into that folder or point --data-dir / BENCHBENCH_DATA at the folder holding it; "
        "offline alternative: --dataset mpi3d-synth (procedural look-alike, reported as synthetic)"
    )


@register_dataset(
    "mpi3d",
    source="real",
    family="mpi3d",
    kind="factors",
    files=(expected_file("toy"),),
    description="MPI3D robot-arm images (1,036,800 per variant, 7 factors; data.variant=toy|realistic|real)",
    spec_facts=lambda cfg: DataSpec("mpi3d", 3, cfg.resolution, "real", factor_names=FACTOR_NAMES,
                                    factor_sizes=FACTOR_SIZES, family="mpi3d", version="files not read"),
)
class Mpi3D(GroundTruthData):
    """The real MPI3D images (datasets.md §2), memory-mapped from the ``.npz`` (never read whole).

    Args:
        cfg: dataset options; ``variant`` picks the file, ``resolution`` other than 64 resizes
            bilinearly with PIL.
        data_dir: folder holding the file (default ``data_root()``).
        factor_sizes: explicit sizes of the 7 factors (fixtures, subsets); by default inferred from N.
    Raises:
        ConfigError: unknown variant or a non-positive resolution.
        DataError: missing, truncated or malformed file (one-line message naming the fix).
    """

    def __init__(
        self, cfg: DataConfig, data_dir: Path | None = None, factor_sizes: tuple[int, ...] | None = None
    ) -> None:
        if cfg.resolution < 1:
            raise ConfigError(f"mpi3d: resolution must be positive, got {cfg.resolution}")
        self.cfg = cfg
        root = data_root(data_dir)
        try:
            self.path = find_file(root, cfg.variant)
        except DataError:
            if not cfg.download:
                raise
            from benchbench.datasets.download import fetch  # automatic, checksummed fetch on first use

            self.path = fetch("mpi3d", root, url=cfg.url or None, variant=cfg.variant)
        offset, shape, stored = locate_stored_array(self.path)
        sizes = resolve_factor_sizes(shape[0], factor_sizes, self.path)
        self._array_path, self._offset = (self.path, offset) if stored else _cached_npy(self.path, shape)
        self._shape = shape
        self._map: np.memmap | None = None  # opened on first read, reopened in a forked child
        self._pid = -1
        self.value_names = COMPLEX_VALUE_NAMES if sizes == COMPLEX_FACTOR_SIZES else VALUE_NAMES
        self.spec = DataSpec(
            name="mpi3d",
            channels=3,
            resolution=cfg.resolution,
            source="real",
            factor_names=FACTOR_NAMES,
            factor_sizes=sizes,
            family="mpi3d",
            version=f"{self.path.name}:{self.path.stat().st_size}",
        )

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """One array per factor; MPI3D stores no values, so these are the indices 0..n-1 (see VALUE_NAMES)."""
        return tuple(np.arange(n) for n in self.factor_sizes)

    @property
    def stored(self) -> bool:
        """True when the pixels are mapped straight from the archive (no conversion was needed)."""
        return self._array_path == self.path

    def __getstate__(self) -> dict[str, Any]:  # pickling (spawned workers) never carries the mapping
        return {**self.__dict__, "_map": None, "_pid": -1}

    def _source(self) -> np.memmap:
        """The read-only memory map [N, 64, 64, 3], opened once per process."""
        if self._map is None or self._pid != os.getpid():
            self._map = np.memmap(self._array_path, dtype=np.uint8, mode="r", offset=self._offset, shape=self._shape)
            self._pid = os.getpid()
        return self._map

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, R, R, 3] for flat ``indices`` [B] (any order, repeats allowed)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"mpi3d: flat index out of range [0, {len(self)})")
        unique, inverse = np.unique(indices, return_inverse=True)  # sorted reads are sequential on disk
        try:
            out = np.asarray(self._source()[unique])[inverse.reshape(-1)]
        except OSError as exc:
            raise DataError(f"{self.path}: read failed ({_one_line(exc)}); the file may be corrupt") from exc
        if self.cfg.resolution == NATIVE_RESOLUTION:
            return out
        size = (self.cfg.resolution, self.cfg.resolution)
        return np.stack([np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR)) for im in out])

    def __getitem__(self, index: int) -> np.ndarray:
        """One uint8 image [R, R, 3]."""
        return self.images(np.array([index]))[0]
