"""The download manifest of the real dataset files and the checks of files on disk (datasets.md §0, §7).

``MANIFEST`` lists, per file, its official URL, size and SHA-256 where known. Checksums that are not
pinned (the MPI3D files on Hugging Face, datasets.md §7) are ``None``: such files are checked by size
only (at least the pixel payload), and the SHA-256 computed at download time (or at the first check
of a hand-placed file) is recorded in the sidecar ``<file>.sha256`` so later checks detect
corruption: trust on first download. No published SHA-256 of the Hugging Face MPI3D copies exists to pin
(datasets.md §7); to pin one, set ``sha256`` in the entry (a lab can fill it from its first verified copy).
Where only an MD5 is published (dSprites), the entry pins ``md5``: the first hashing of the file (the download,
or the first check of a hand-placed copy) must match it, and the SHA-256 computed in the same pass is recorded
in the sidecar (with the MD5) and used for every later check.
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
        md5: pinned lowercase hex MD5, used only where no SHA-256 is published. MD5 is not
            collision-resistant, so it is a check that the file is the published one, not a defence
            against a crafted file: it is computed while downloading (or at the first check of a
            hand-placed copy) and must match, and the SHA-256 computed in that same pass is then
            recorded in ``<file>.sha256`` and used for every later check.
    """

    file: str
    url: str
    size: int | None
    sha256: str | None
    dataset: str
    variant: str = ""
    min_size: int = 0
    md5: str | None = None


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
        # No SHA-256 of the GitHub file is published, and it cannot be computed here (no internet). Its MD5 is
        # published identically by several independent dSprites loaders (torchvision-style and disent-like
        # libraries, latte, a regression-datasets loader) for the file at deepmind/dsprites-dataset master
        # (commit fa310c66517cfc1939d77fe17c725154efc97127); it is pinned from them, not computed here. The
        # download must match it; the SHA-256 computed in the same pass is recorded in the sidecar for later
        # checks. (One loader also lists SHA-1 3e0a46a9238e425f46a6ef9e9bdfd7cedb35d50f: a single source, unverified,
        # not pinned.) The loader adds its own checks of keys, metadata and label order
        # (benchbench.datasets.dsprites.read_archive).
        FileEntry(
            file="dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
            url="https://github.com/deepmind/dsprites-dataset/raw/master/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
            size=None,
            sha256=None,
            dataset="dsprites",
            min_size=10_000_000,  # the deflated archive is about 26 MB; an error page is a few kB
            md5="7da33b31b13a06f4b04a70402ce90c2e",  # published by several independent loaders (comment above)
        ),
    )
}

CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
STATUSES = ("verified", "size-only", "mismatch", "absent")
BLOCK = 1 << 20  # bytes per read while hashing or downloading
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class FileStatus:
    """What ``check_file`` found.

    Attributes:
        status: "verified" (the pinned SHA-256 matches; or, with only an MD5 pinned, that MD5 matched when
            the file was first hashed and the SHA-256 recorded then still matches), "size-only" (no pinned
            checksum; size and the recorded hash match), "mismatch" (wrong size or hash) or "absent".
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
    """``<file>.sha256``: JSON ``{"sha256", "size", "mtime_ns", "ctime_ns", "ino"}`` beside the file, plus
    ``"md5"`` where the entry pins one (the MD5 that matched it when the SHA-256 was recorded)."""
    return path.with_name(path.name + ".sha256")


class Digests:
    """SHA-256 and, when asked for, MD5 of the same bytes, fed together (one pass over the data)."""

    def __init__(self, md5: bool = False) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None  # an identity check, not security

    def update(self, block: bytes) -> None:
        self.sha256.update(block)
        if self.md5 is not None:
            self.md5.update(block)

    def hexdigests(self) -> tuple[str, str | None]:
        """(SHA-256, MD5 or None), lowercase hex."""
        return self.sha256.hexdigest(), None if self.md5 is None else self.md5.hexdigest()


def file_digests(path: Path, progress: bool = False, md5: bool = False) -> tuple[str, str | None]:
    """(SHA-256, MD5 if ``md5`` else None) of a file in lowercase hex, read once in 1 MiB blocks."""
    h = Digests(md5)
    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
               desc=f"{'sha256+md5' if md5 else 'sha256'} {path.name}", disable=not progress, file=sys.stderr,
               mininterval=tqdm_interval())
    with open(path, "rb") as f, bar:
        while block := f.read(BLOCK):
            h.update(block)
            bar.update(len(block))
    return h.hexdigests()


def sha256_file(path: Path, progress: bool = False) -> str:
    """Lowercase hex SHA-256 of a file, read in 1 MiB blocks (a 255 MB file takes about a second)."""
    return file_digests(path, progress)[0]


def write_sidecar(path: Path, sha: str, md5: str | None = None) -> None:
    """Record ``sha`` (and the ``md5`` checked in the same pass, if any) for the current version of ``path``
    (size, mtime, ctime, inode: :func:`benchbench.integrity.stat_key`); an unwritable folder is ignored."""
    try:
        atomic_write_json(sidecar_path(path), {"sha256": sha, **({"md5": md5} if md5 else {}), **stat_key(path)})
    except OSError:
        pass  # the sidecar only saves time (pinned) or adds a later check (unpinned); never fatal


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    side = read_json(sidecar_path(path))
    if not isinstance(side, dict) or not _HEX64.fullmatch(str(side.get("sha256", ""))):
        return None
    if "md5" in side and not _HEX32.fullmatch(str(side["md5"])):
        side.pop("md5")  # a damaged MD5 field: the file is hashed again rather than trusted
    return side


def check_file(path: Path, entry: FileEntry, progress: bool = False) -> FileStatus:
    """Check a file on disk against its manifest entry.

    The SHA-256 is read from the sidecar ``<file>.sha256`` when it was recorded for the file's current
    size and mtime, else computed (seconds for Shapes3D, about a minute for an MPI3D file) and cached
    there. With a pinned checksum the hash must equal it ("verified"). With only an MD5 pinned
    (``FileEntry.md5``) the first hashing computes both digests, the MD5 must equal the pin, and the
    SHA-256 is recorded with it; later checks compare the SHA-256 with that record ("verified"). Without
    either ("size-only") the size must fit the entry and the hash must equal the one recorded at download
    time (or at the first check of a hand-placed file); a file changed since then is a "mismatch".

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
    if entry.sha256 is None and entry.md5 is not None:
        return _check_published_md5(path, entry, side, fresh, progress)
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


def _check_published_md5(
    path: Path, entry: FileEntry, side: dict[str, Any] | None, fresh: bool, progress: bool
) -> FileStatus:
    """``check_file`` for an entry pinning only an MD5: MD5 once, then the SHA-256 recorded with it.

    A sidecar without an MD5 (trust on first download, before the MD5 was pinned) is not evidence: the file
    is hashed again and must match the published MD5; a sidecar whose MD5 matched fixes the SHA-256 that
    every later version of the file must have.
    """
    checked = side is not None and side.get("md5") == entry.md5  # its sha256 was recorded after a matching MD5
    if fresh and side is not None and "md5" in side:
        sha, md5 = str(side["sha256"]), str(side["md5"])
    else:
        sha, md5 = file_digests(path, progress, md5=True)
    if md5 != entry.md5:
        return FileStatus("mismatch", sha, f"{path}: md5 {md5}, expected the published md5 {entry.md5}")
    if checked and side is not None and sha != side["sha256"]:
        return FileStatus(
            "mismatch", sha,
            f"{path}: sha256 {sha} differs from {side['sha256']} recorded in {sidecar_path(path)} when its md5 "
            "was verified; the file changed",
        )
    if not (fresh and checked):
        write_sidecar(path, sha, md5)
    return FileStatus("verified", sha, f"{path}: md5 matched the published {entry.md5} when first hashed; "
                                       f"its sha256 is recorded in {sidecar_path(path)} for later checks")


def verify_file(path: Path, entry: FileEntry) -> str:
    """The verification status of a file on disk, for ``benchbench data info``.

    Hashes at most once per file version: the SHA-256 is cached in ``<file>.sha256`` keyed by size and
    mtime (see ``check_file``, which also returns the hash and a one-line reason).

    Returns:
        "verified" (pinned SHA-256 matches, or the pinned MD5 matched at download and the SHA-256 recorded
        then still matches), "size-only" (checksum not pinned: size fits and the hash equals the one
        recorded at download), "mismatch" or "absent".
    """
    return check_file(path, entry).status
