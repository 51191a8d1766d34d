"""CelebA, aligned and cropped faces with 40 binary attributes (datasets.md §3, §4).

Reference: Liu, Luo, Wang & Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015,
https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html. The loader reads the official files from
``data_root()/celeba/`` (torchvision's ``<root>/celeba/`` layout) or directly from the data folder:
``img_align_celeba/`` (``000001.jpg`` ... ``202599.jpg``, or ``.png`` from the PNG edition) or
``img_align_celeba.zip`` holding that folder, ``list_attr_celeba.txt`` and ``list_eval_partition.txt``.

Text files (§3, ``celeba_files``) are parsed by splitting on arbitrary whitespace (CRLF, the names
line's trailing space and the 3-character value fields all disappear); values map -1/1 -> 0/1 via
``(v + 1) // 2``. ``verify`` compares their md5s with the official ones.
Splits come from the partition file (0 train, 1 valid, 2 test); the index of an image is its row in
the attribute file (sorted file-name order: index i is file i + 1).

Crops (§4), as PIL boxes on the 178x218 image, then a resize to ``DataConfig.resolution``:

* ``d2c`` (default): box (25, 57, 153, 185), bilinear resize with antialiasing. Used by Diff-AE,
  PDAE and DisDiff (the D2C crop).
* ``center``: resize the shorter side to the resolution, centre-crop a square. Used by InfoDiffusion
  (torchvision ``Resize(64)`` + ``CenterCrop(64)``).

Images are decoded lazily per index (JPEG decoding dominates), with a small LRU of crops; ``build_cache``
writes an optional uint8 ``.npy`` of every crop beside the files (``celeba-<crop>-r<R>.npy``, 2.5 GB for
the full set at 64x64), which ``images`` then memory-maps; delete it after replacing the images.
Training flips horizontally (``train_flip``); evaluation and FID never flip (§4).
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from benchbench import integrity
from benchbench import progress as prog
from benchbench.datasets.base import AttributeData, DataConfig, DataSpec, data_root
from benchbench.datasets.celeba_files import (
    ATTR_FILE,
    ATTR_NAMES,
    MD5,
    PARTITION_FILE,
    FileCheck,
    file_md5,
    one_line,
    parse_attr_file,
    parse_partition_file,
)
from benchbench.errors import ConfigError, DataError
from benchbench.registry import register_dataset
from benchbench.store import file_mode

SOURCE_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
IMAGE_DIR, IMAGE_ZIP = "img_align_celeba", "img_align_celeba.zip"
PNG_DIR = "img_align_celeba_png"  # the folder of the PNG edition (img_align_celeba_png.7z)
NUM_IMAGES = 202_599
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
SPLIT_SIZES = {"train": 162_770, "valid": 19_867, "test": 19_962}
IMAGE_SIZE = (178, 218)  # PIL (width, height) of every aligned image
D2C_BOX = (25, 57, 153, 185)  # 128x128 centred at (89, 121), from the D2C paper
CROPS = {"d2c": ("diffae", "pdae", "disdiff"), "center": ("infodiffusion",)}  # crop -> methods using it
LRU_SIZE = 1024  # decoded crops kept per loader (~12 MB at 64x64)
_EXTENSIONS = (".jpg", ".png")


# Section: crops (§4).


def crop_image(image: Image.Image, crop: str, resolution: int) -> np.ndarray:
    """Crop and resize one aligned RGB image (178x218) to uint8 [R, R, 3] (§4).

    ``d2c``: box (25, 57, 153, 185) then a bilinear, antialiased resize. ``center``: the shorter side
    resized to R (the longer to ``int(R * long / short)``, as torchvision's Resize), then the centre
    R x R (top offset ``round((h - R) / 2)``, as CenterCrop).
    """
    size = (resolution, resolution)
    if crop == "d2c":
        return np.asarray(image.crop(D2C_BOX).resize(size, Image.BILINEAR, reducing_gap=None))
    w, h = image.size
    new = (resolution, int(resolution * h / w)) if w <= h else (int(resolution * w / h), resolution)
    left, top = int(round((new[0] - resolution) / 2)), int(round((new[1] - resolution) / 2))
    resized = image.resize(new, Image.BILINEAR, reducing_gap=None)
    return np.asarray(resized.crop((left, top, left + resolution, top + resolution)))


# Section: locating the files.


def find_folder(root: Path) -> Path:
    """The folder holding CelebA's files: ``root/celeba`` (torchvision layout) or ``root`` (flat layout)."""
    for folder in (root / "celeba", root):
        if any((folder / name).exists() for name in (ATTR_FILE, PARTITION_FILE, IMAGE_DIR, IMAGE_ZIP)):
            return folder
    raise DataError(
        f"celeba: files not found; expected {root / 'celeba' / IMAGE_DIR}/ (or {IMAGE_ZIP}), "
        f"{root / 'celeba' / ATTR_FILE} and {root / 'celeba' / PARTITION_FILE} (or the same names directly "
        f"in {root}); download them by hand from the official page {SOURCE_URL} (Img/{IMAGE_ZIP}, "
        f"Anno/{ATTR_FILE}, Eval/{PARTITION_FILE}), place them in that folder, or point --data-dir / "
        "BENCHBENCH_DATA at the folder holding them; offline alternative: --dataset celeba-synth "
        "(procedural look-alike, reported as synthetic)"
    )


def _missing(path: Path, what: str) -> DataError:
    return DataError(
        f"celeba: {what} not found, expected {path}; download it from {SOURCE_URL} and place it there, "
        "or use --dataset celeba-synth offline"
    )


@register_dataset(
    "celeba",
    source="real",
    family="celeba",
    kind="attributes",
    files=("celeba/list_attr_celeba.txt", "list_attr_celeba.txt"),
    description="CelebA aligned faces (202,599 images, 40 attributes, official splits), d2c or center crop",
    spec_facts=lambda cfg: DataSpec("celeba", 3, cfg.resolution, "real", attr_names=ATTR_NAMES, family="celeba",
                                    version="files not read"),
)
class CelebA(AttributeData):
    """The real CelebA images and attributes (datasets.md §3), validated at construction.

    Args:
        cfg: dataset options; ``crop`` (d2c | center) and ``resolution`` (64 in every paper).
        data_dir: data folder (default ``data_root()``); files in ``celeba/`` inside it, or directly in it.
    Raises:
        DataError: a missing or malformed file, names disagreeing between files, an image count mismatch
            (one-line message naming the fix); ConfigError for an unknown crop.
    """

    train_flip = True

    def __init__(self, cfg: DataConfig, data_dir: Path | None = None) -> None:
        if cfg.crop not in CROPS:
            raise ConfigError(f"celeba: data.crop must be one of {sorted(CROPS)}, got {cfg.crop!r}")
        if cfg.resolution < 1:
            raise ConfigError(f"celeba: resolution must be positive, got {cfg.resolution}")
        self.cfg = cfg
        self.folder = find_folder(data_root(data_dir))
        attr_path, part_path = self.folder / ATTR_FILE, self.folder / PARTITION_FILE
        if not attr_path.is_file():
            raise _missing(attr_path, "attribute file")
        if not part_path.is_file():
            raise _missing(part_path, "partition file")
        self.names, self._attrs = parse_attr_file(attr_path)
        part_names, self._splits = parse_partition_file(part_path)
        if part_names != self.names:
            k = next((k for k, (a, b) in enumerate(zip(part_names, self.names)) if a != b), None)
            where = f"line {k + 1} names {part_names[k]!r}, {ATTR_FILE} {self.names[k]!r}" if k is not None else ""
            raise DataError(
                f"celeba: {part_path} lists {len(part_names)} images, {ATTR_FILE} {len(self.names)}; "
                f"the two files must name the same images in the same order {where}".strip()
            )
        self._members = self._index_images()
        self._zip_handle: zipfile.ZipFile | None = None
        self._pid = -1
        self._lru: OrderedDict[int, np.ndarray] = OrderedDict()
        self.lru_size = LRU_SIZE  # 0 disables the LRU (benchmarks of the decode path)
        self._cache: np.ndarray | None = None
        self.spec = DataSpec(
            name="celeba",
            channels=3,
            resolution=cfg.resolution,
            source="real",
            attr_names=ATTR_NAMES,
            family="celeba",
            version=f"{ATTR_FILE}:{attr_path.stat().st_size}",
        )

    # Section: images on disk.

    def _index_images(self) -> list[str]:
        """Path (folder) or member name (zip) of each listed image, any of ``.jpg`` / ``.png``."""
        folder, archive = self.folder / IMAGE_DIR, self.folder / IMAGE_ZIP
        if not folder.is_dir() and (self.folder / PNG_DIR).is_dir():
            folder = self.folder / PNG_DIR
        self._from_zip = not folder.is_dir()
        if folder.is_dir():
            self.source: Path = folder
            found = [e.name for e in os.scandir(folder) if e.name.lower().endswith(_EXTENSIONS)]
            by_stem = {os.path.splitext(n)[0]: str(folder / n) for n in found}
        elif archive.is_file():
            self.source = archive
            try:
                with zipfile.ZipFile(archive) as z:
                    found = [m for m in z.namelist() if m.lower().endswith(_EXTENSIONS)]
            except (OSError, zipfile.BadZipFile) as exc:
                raise DataError(f"celeba: {archive} is not a readable zip ({one_line(exc)}); re-download it") from exc
            by_stem = {os.path.splitext(os.path.basename(m))[0]: m for m in found}
        else:
            raise _missing(folder, f"image folder (or {IMAGE_ZIP}, or {PNG_DIR}/)")
        stems = [os.path.splitext(n)[0] for n in self.names]
        absent = next((n for n, s in zip(self.names, stems, strict=True) if s not in by_stem), None)
        if absent is not None or len(found) != len(self.names):
            first = f" (first missing: {absent})" if absent else ""
            raise DataError(
                f"celeba: image count mismatch: {ATTR_FILE} lists {len(self.names)} images, {self.source} holds "
                f"{len(found)}{first}; re-extract {IMAGE_ZIP} from {SOURCE_URL}"
            )
        return [by_stem[s] for s in stems]

    def _zip(self) -> zipfile.ZipFile:
        if self._zip_handle is None or self._pid != os.getpid():  # reopened after a fork
            self._zip_handle, self._pid = zipfile.ZipFile(self.source), os.getpid()
        return self._zip_handle

    def _decode(self, index: int) -> np.ndarray:
        """Decode, crop and resize image ``index``: uint8 [R, R, 3]."""
        member = self._members[index]
        shown = f"{self.source}:{member}" if self._from_zip else member
        try:
            raw = io.BytesIO(self._zip().read(member)) if self._from_zip else open(member, "rb")
            with raw, Image.open(raw) as image:
                rgb = image.convert("RGB")
        except (OSError, UnidentifiedImageError, zipfile.BadZipFile, ValueError, EOFError) as exc:
            raise DataError(f"celeba: cannot read image {shown} ({one_line(exc)}); re-extract it") from exc
        if rgb.size != IMAGE_SIZE:
            raise DataError(f"celeba: image {shown} is {rgb.size[0]}x{rgb.size[1]}, expected 178x218 (aligned)")
        return crop_image(rgb, self.cfg.crop, self.cfg.resolution)

    def _crop(self, index: int) -> np.ndarray:
        """One crop through the LRU."""
        hit = self._lru.get(index)
        if hit is not None:
            self._lru.move_to_end(index)
            return hit
        out = self._decode(index)
        self._lru[index] = out
        if len(self._lru) > self.lru_size:
            self._lru.popitem(last=False)
        return out

    # Section: the optional uint8 cache.

    @property
    def cache_path(self) -> Path:
        """``celeba-<crop>-r<R>.npy`` beside the text files: every crop, uint8 [N, R, R, 3]."""
        return self.folder / f"celeba-{self.cfg.crop}-r{self.cfg.resolution}.npy"

    def _cached(self) -> np.ndarray | None:
        """The memory-mapped cache when present and of the right shape, else None."""
        if self._cache is None and not getattr(self, "_cache_rejected", False) and self.cache_path.is_file():
            try:
                arr = np.load(self.cache_path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError):
                return None  # damaged: ignored; build_cache() rewrites it
            r = self.cfg.resolution
            if arr.shape == (len(self), r, r, 3) and arr.dtype == np.uint8:
                if integrity.cache_intact(self.cache_path, "celeba: the image cache",
                                          "decoding the JPEGs instead; build_cache() rewrites it"):
                    self._cache = arr
                else:
                    self._cache_rejected = True  # warned once; not hashed again by this object
        return self._cache

    def build_cache(self, workers: int | None = None, progress: bool = True) -> Path:
        """Decode every image once into ``cache_path`` (atomic: temp file + rename); returns the path.

        Args:
            workers: decoding threads (PIL releases the GIL); default ``min(8, os.cpu_count())``.
            progress: show a tqdm bar.
        """
        if self._cached() is not None:
            return self.cache_path
        self._cache_rejected = False
        workers = workers or min(8, os.cpu_count() or 1)
        r, n, chunk = self.cfg.resolution, len(self), 512
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=self.cache_path.name, suffix=".tmp")
        os.close(fd)
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, r, r, 3))
            shown = prog.bar(n, "celeba cache", progress, prog.write if progress else None, unit="img")
            with ThreadPoolExecutor(workers) as pool, shown as bar:
                for start in range(0, n, chunk):
                    stop = min(start + chunk, n)
                    out[start:stop] = np.stack(list(pool.map(self._decode, range(start, stop))))
                    bar.update(stop - start)
            out.flush()
            del out
            os.chmod(tmp, file_mode())  # mkstemp makes 0600; the cache may be shared
            sha = integrity.sha256_file(Path(tmp))
            os.replace(tmp, self.cache_path)
            integrity.record_cache(self.cache_path, sha)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._cache = None
        return self.cache_path

    # Section: the AttributeData interface.

    def __len__(self) -> int:
        return len(self.names)

    def _check(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"celeba: index out of range [0, {len(self)})")
        return indices

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, R, R, 3] for ``indices`` [B] (any order, repeats allowed), never flipped."""
        indices = self._check(indices)
        cache = self._cached()
        if cache is not None:
            return np.asarray(cache[indices])
        r = self.cfg.resolution
        out = np.empty((len(indices), r, r, 3), dtype=np.uint8)
        for k, i in enumerate(indices.tolist()):
            out[k] = self._crop(i)
        return out

    def __getitem__(self, index: int) -> np.ndarray:
        """One uint8 image [R, R, 3]."""
        return self.images(np.array([index]))[0]

    def attributes(self, indices: np.ndarray) -> np.ndarray:
        """Binary attributes [B, 40] (uint8 in {0, 1}, ``ATTR_NAMES`` order) of ``indices`` [B]."""
        return self._attrs[self._check(indices)]

    def split(self, name: str) -> np.ndarray:
        """Sorted indices [M] of the official split ``name`` (train | valid | test) from the partition file."""
        if name not in SPLIT_CODES:
            raise ValueError(f"celeba: unknown split {name!r}; known: {', '.join(SPLIT_CODES)}")
        return np.flatnonzero(self._splits == SPLIT_CODES[name])

    def verify(self) -> dict[str, FileCheck]:
        """md5 of each text file against the official value (§3); ``check.ok`` is False for any other file."""
        return {name: FileCheck(self.folder / name, file_md5(self.folder / name), md5) for name, md5 in MD5.items()}

    def __getstate__(self) -> dict[str, Any]:  # workers reopen the zip and the cache themselves
        return {**self.__dict__, "_zip_handle": None, "_pid": -1, "_lru": OrderedDict(), "_cache": None}
