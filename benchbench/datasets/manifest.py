"""The download manifest of the real dataset files and the checks of files on disk (datasets.md §0, §7).

``MANIFEST`` lists, per file, its official URL, size and SHA-256 where known. Checksums that are not
pinned (the MPI3D files on Hugging Face, datasets.md §7) are ``None``: such files are checked by size
only (at least the pixel payload), and the SHA-256 computed at download time (or at the first check
of a hand-placed file) is recorded in the sidecar ``<file>.sha256`` so later checks detect
corruption: trust on first download. No published SHA-256 of the Hugging Face MPI3D copies exists to pin
(datasets.md §7); to pin one, set ``sha256`` in the entry (a lab can fill it from its first verified copy).
The sidecar caches the computed hash keyed by size, mtime, *ctime* and inode
(:func:`benchbench.integrity.stat_key`): ``os.utime`` can put an mtime back but not a ctime, so a file changed
in place with its size and mtime restored is hashed again, and an unpinned one then fails against the hash
recorded at download. ``verify_file`` is instant until the file changes. ``download.fetch`` uses both.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchbench.datasets.base import data_root
from benchbench.errors import DataError, UnknownNameError
from benchbench.integrity import stat_key
from benchbench.progress import tqdm_interval
from benchbench.store import atomic_write_json, read_json


@dataclass(frozen=True)
class FileEntry:
    """One downloadable file of a real dataset.

    Attributes:
        file: name inside the data folder (``data_root()/file``).
        url: official direct URL.
        size: exact byte count, or None where it was never measured.
        sha256: pinned lowercase hex SHA-256, or None where it is not known: such files are verified
            by size only and the hash computed at download time is recorded in ``<file>.sha256``.
        dataset: registry name of the dataset the file belongs to.
        variant: dataset variant (MPI3D: toy | realistic | real); "" for single-file datasets.
        min_size: lower bound on the size (the raw pixel payload) when ``size`` is None, so an error
            page served with status 200 is never taken for the dataset.
    """

    file: str
    url: str
    size: int | None
    sha256: str | None
    dataset: str
    variant: str = ""
    min_size: int = 0


_MPI3D_PIXELS = 1_036_800 * 64 * 64 * 3  # 12,740,198,400 B; the .npz adds zip and .npy headers (§2)
_MPI3D_URL = "https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/{}"

MANIFEST: dict[str, FileEntry] = {
    e.file: e
    for e in (
        FileEntry(
            file="3dshapes.h5",
            url="https://storage.googleapis.com/3d-shapes/3dshapes.h5",
            size=267_573_662,
            sha256="0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",  # TFDS list (§1)
            dataset="shapes3d",
        ),
        # Sizes and checksums of the Hugging Face copies are not recorded (datasets.md §7).
        *(
            FileEntry(
                file=f"mpi3d_{v}.npz",
                url=_MPI3D_URL.format(f"mpi3d_{v}.npz"),
                size=None,
                sha256=None,
                dataset="mpi3d",
                variant=v,
                min_size=_MPI3D_PIXELS,
            )
            for v in ("toy", "realistic", "real")
        ),
        # The SHA-256 of the GitHub file is not known offline (no source we could open records it; a third-party
        # loader lists SHA-1 3e0a46a9238e425f46a6ef9e9bdfd7cedb35d50f, unverified), so it is checked like MPI3D: a
        # size floor, the hash computed at download recorded in the sidecar, and the loader's own checks of keys,
        # metadata and label order (benchbench.datasets.dsprites.read_archive).
        FileEntry(
            file="dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
            url="https://github.com/deepmind/dsprites-dataset/raw/master/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
            size=None,
            sha256=None,
            dataset="dsprites",
            min_size=10_000_000,  # the deflated archive is about 26 MB; an error page is a few kB
        ),
    )
}

CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
STATUSES = ("verified", "size-only", "mismatch", "absent")
BLOCK = 1 << 20  # bytes per read while hashing or downloading
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileStatus:
    """What ``check_file`` found.

    Attributes:
        status: "verified" (pinned SHA-256 matches), "size-only" (no pinned checksum; size and the
            recorded hash match), "mismatch" (wrong size or hash) or "absent".
        sha256: the file's SHA-256 (computed or from the sidecar cache); None when not computed.
        detail: one line saying why.
    """

    status: str
    sha256: str | None
    detail: str


# Section: manifest lookup.


def entries(name: str, manifest: Mapping[str, FileEntry] = MANIFEST) -> tuple[FileEntry, ...]:
    """Every manifest entry of dataset ``name`` (all MPI3D variants), or the entry of file ``name``.

    Returns an empty tuple for datasets without a direct download (``celeba``, ``-synth`` sets).
    """
    if name in manifest:
        return (manifest[name],)
    return tuple(e for e in manifest.values() if e.dataset == name)


def resolve(name: str, variant: str | None = None, manifest: Mapping[str, FileEntry] = MANIFEST) -> FileEntry:
    """The entry to fetch for a dataset name (``shapes3d``, ``mpi3d``) or a file name (``mpi3d_real.npz``).

    Args:
        name: dataset or file name.
        variant: which file of a multi-file dataset (MPI3D: toy | realistic | real; default: the first
            listed, toy); ignored for single-file datasets.
        manifest: file name -> entry.
    Raises:
        DataError: ``celeba`` (manual download only), a ``-synth`` set, or an unknown variant.
        UnknownNameError: a name neither dataset nor file of the manifest, listing close matches.
    """
    found = entries(name, manifest)
    if len(found) == 1:
        return found[0]
    if found:
        wanted = found[0].variant if variant is None else variant
        for e in found:
            if e.variant == wanted:
                return e
        raise DataError(f"{name}: unknown variant {wanted!r}; choose one of {[e.variant for e in found]}")
    if name == "celeba":
        raise DataError(celeba_instructions(data_root()))
    if name == "cars3d":
        raise DataError(cars3d_instructions(data_root()))
    if name.endswith("-synth"):
        raise DataError(f"{name} is procedural and always available; there is nothing to download")
    known = sorted({e.dataset for e in manifest.values()} | set(manifest))
    close = difflib.get_close_matches(name, known, n=3)
    raise UnknownNameError(f"nothing to download for {name!r}; close: {close}; known: {known}")


def celeba_instructions(root: Path) -> str:
    """One line telling where to put the hand-downloaded CelebA files (datasets.md §0, §3)."""
    base = root / "celeba"
    return (
        f"celeba: no direct download URL exists (the official files are Google Drive/Baidu links on {CELEBA_PAGE}); "
        f"download img_align_celeba.zip, list_attr_celeba.txt and list_eval_partition.txt by hand and place them "
        f"as {base / 'img_align_celeba'}/ (the unzipped folder, or {base / 'img_align_celeba.zip'}), "
        f"{base / 'list_attr_celeba.txt'} and {base / 'list_eval_partition.txt'}; "
        "offline alternative: --dataset celeba-synth (procedural look-alike, reported as synthetic)"
    )


CARS3D_ARCHIVE = "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"


def cars3d_instructions(root: Path) -> str:
    """One line telling where to put the Cars3D ``.mat`` files (Reed et al. 2015; no checksummed direct file)."""
    return (
        f"cars3d: no checksummed direct download exists (the files come in Reed et al.'s archive {CARS3D_ARCHIVE}, "
        f"linked from http://www.scottreed.info); download it by hand and extract its data/cars/*.mat (183 files "
        f"car_*_mesh.mat) into {root / 'cars'}/; offline alternative: --dataset cars3d-synth "
        "(procedural look-alike, reported as synthetic)"
    )


# Section: checking files on disk.


def sidecar_path(path: Path) -> Path:
    """``<file>.sha256``: JSON ``{"sha256", "size", "mtime_ns", "ctime_ns", "ino"}`` beside the file."""
    return path.with_name(path.name + ".sha256")


def sha256_file(path: Path, progress: bool = False) -> str:
    """Lowercase hex SHA-256 of a file, read in 1 MiB blocks (a 255 MB file takes about a second)."""
    h = hashlib.sha256()
    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
               desc=f"sha256 {path.name}", disable=not progress, file=sys.stderr, mininterval=tqdm_interval())
    with open(path, "rb") as f, bar:
        while block := f.read(BLOCK):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def write_sidecar(path: Path, sha: str) -> None:
    """Record ``sha`` for the current version of ``path`` (size, mtime, ctime, inode:
    :func:`benchbench.integrity.stat_key`); an unwritable folder is ignored."""
    try:
        atomic_write_json(sidecar_path(path), {"sha256": sha, **stat_key(path)})
    except OSError:
        pass  # the sidecar only saves time (pinned) or adds a later check (unpinned); never fatal


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    side = read_json(sidecar_path(path))
    if not isinstance(side, dict) or not _HEX64.fullmatch(str(side.get("sha256", ""))):
        return None
    return side


def check_file(path: Path, entry: FileEntry, progress: bool = False) -> FileStatus:
    """Check a file on disk against its manifest entry.

    The SHA-256 is read from the sidecar ``<file>.sha256`` when it was recorded for the file's current
    size and mtime, else computed (seconds for Shapes3D, about a minute for an MPI3D file) and cached
    there. With a pinned checksum the hash must equal it ("verified"). Without one ("size-only") the
    size must fit the entry and the hash must equal the one recorded at download time (or at the first
    check of a hand-placed file); a file changed since then is a "mismatch".

    Args:
        path: the file (need not exist).
        entry: its manifest entry.
        progress: show a progress bar while hashing.
    """
    if not path.is_file():
        return FileStatus("absent", None, f"{path} does not exist")
    st = path.stat()
    if entry.size is not None and st.st_size != entry.size:
        return FileStatus("mismatch", None, f"{path} has {st.st_size} bytes, expected {entry.size}")
    if st.st_size < entry.min_size:
        return FileStatus("mismatch", None, f"{path} has {st.st_size} bytes, fewer than the {entry.min_size} of pixels")
    side = _read_sidecar(path)
    fresh = side is not None and all(side.get(k) == v for k, v in stat_key(path).items())
    sha = str(side["sha256"]) if fresh and side is not None else sha256_file(path, progress)
    if entry.sha256 is not None:
        if not fresh:
            write_sidecar(path, sha)
        if sha == entry.sha256:
            return FileStatus("verified", sha, f"{path}: sha256 matches the manifest")
        return FileStatus("mismatch", sha, f"{path}: sha256 {sha}, expected {entry.sha256}")
    if side is not None and side["sha256"] != sha:
        return FileStatus(
            "mismatch", sha,
            f"{path}: sha256 {sha} differs from {side['sha256']} recorded in {sidecar_path(path)}; the file changed",
        )
    if not fresh:
        write_sidecar(path, sha)
    return FileStatus("size-only", sha, f"{path}: checksum not pinned; size fits, sha256 recorded in the sidecar")


def verify_file(path: Path, entry: FileEntry) -> str:
    """The verification status of a file on disk, for ``benchbench data info``.

    Hashes at most once per file version: the SHA-256 is cached in ``<file>.sha256`` keyed by size and
    mtime (see ``check_file``, which also returns the hash and a one-line reason).

    Returns:
        "verified" (pinned SHA-256 matches), "size-only" (checksum not pinned: size fits and the hash
        equals the one recorded at download), "mismatch" or "absent".
    """
    return check_file(path, entry).status
