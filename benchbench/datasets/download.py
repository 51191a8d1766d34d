"""Fetch the real dataset files: streamed, resumable, checksummed, moved into place atomically.

Where a public direct URL exists (Shapes3D, MPI3D; datasets.md §0) the file is streamed with a
progress bar into ``<file>.part`` beside the target. An interrupted transfer resumes from the
``.part`` with an HTTP Range request; a server that ignores Range answers 200 and the transfer
restarts from byte 0. The SHA-256 is computed while streaming and checked against the manifest
(``benchbench.datasets.manifest``); only a verified file is renamed (``os.replace``) to its final
name, so the target never exists half-written. Standard library only (``urllib.request``).

Files without a pinned checksum (MPI3D, datasets.md §7) are checked by size only: a one-line warning
says so and the SHA-256 computed while downloading is recorded in the sidecar ``<file>.sha256`` so
later checks (``verify_file``) detect corruption. Where only an MD5 is published (dSprites,
``FileEntry.md5``) the MD5 is computed in the same pass as the SHA-256 (a resumed download rehashes the
``.part`` it holds for both), must match, and the SHA-256 is then recorded for later checks. CelebA has
no direct URL: ``fetch("celeba")`` raises a DataError with manual placement steps.
"""

from __future__ import annotations

import http.client
import os
import re
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tqdm import tqdm

from benchbench.datasets.base import data_root
from benchbench.datasets.manifest import (
    BLOCK,
    MANIFEST,
    Digests,
    FileEntry,
    cars3d_instructions,
    celeba_instructions,
    check_file,
    resolve,
    sidecar_path,
    verify_file,
    write_sidecar,
)
from benchbench.errors import DataError
from benchbench.progress import tqdm_interval

if sys.platform != "win32":
    import fcntl

__all__ = ["MANIFEST", "FileEntry", "check_file", "fetch", "verify_file"]

_ATTEMPTS = 3  # a transfer cut mid-stream resumes from the .part this many times in all


class _Interrupted(Exception):
    """The connection broke mid-transfer; the bytes so far stay in the .part for a resume."""


@contextmanager
def _locked_part(part: Path) -> Iterator[IO[bytes]]:
    """Open (creating) ``part`` for read/write under an exclusive lock held until the block ends.

    A second process downloading the same file gets a DataError instead of interleaving writes. The
    inode check catches a ``.part`` renamed into place by the previous holder between open and lock.
    On exit a ``.part`` still empty (the request failed at once) is removed, so no litter stays.
    """
    for _ in range(_ATTEMPTS):
        f = open(part, "a+b")  # appends always land at the end; closed (unlocked) in the finally
        try:
            if not _lock(f, part):
                continue  # the path now names another file: open it again
            try:
                yield f
            finally:
                _drop_if_empty(part, f.fileno())
            return
        finally:
            f.close()
    raise DataError(f"{part} keeps changing under another process; retry later")


def _lock(f: IO[bytes], part: Path) -> bool:
    """Lock ``f`` exclusively (POSIX only); False if ``part`` no longer names the locked file."""
    if sys.platform == "win32":
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DataError(f"{part} is being downloaded by another process; wait for it to finish") from None
    try:
        return os.stat(part).st_ino == os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


def _drop_if_empty(part: Path, fd: int) -> None:
    """Remove our still-empty ``.part`` (a request that failed at once) so no litter is left behind."""
    try:
        if os.fstat(fd).st_size == 0 and os.stat(part).st_ino == os.fstat(fd).st_ino:
            part.unlink()
    except FileNotFoundError:
        pass


def _restart(f: IO[bytes]) -> int:
    f.seek(0)
    f.truncate()
    return 0


def _digests(entry: FileEntry) -> Digests:
    """Fresh digests for a download of ``entry``: SHA-256, plus MD5 where the entry pins one."""
    return Digests(md5=entry.md5 is not None)


def _hash_prefix(f: IO[bytes], n: int, entry: FileEntry, progress: bool) -> Digests:
    """Digests over the first ``n`` bytes of ``f`` (the part of a resumed download already held)."""
    h = _digests(entry)
    f.seek(0)
    with tqdm(total=n, unit="B", unit_scale=True, unit_divisor=1024, desc="hashing partial download",
              disable=not progress or n == 0, file=sys.stderr, mininterval=tqdm_interval()) as bar:
        left = n
        while left > 0:
            block = f.read(min(BLOCK, left))
            if not block:
                raise DataError(f"{f.name} shrank while being read; retry")
            h.update(block)
            bar.update(len(block))
            left -= len(block)
    return h


def _range_start(resp: http.client.HTTPResponse) -> int | None:
    """First byte of a 206 reply from its Content-Range, or None when absent or unparsable."""
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None


def _stream(resp: http.client.HTTPResponse, f: IO[bytes], h: Digests, bar: tqdm) -> None:
    """Copy the response body to ``f`` as it arrives, hashing it.

    Raises:
        _Interrupted: a read failed, or the connection closed before Content-Length bytes arrived.
    """
    length = resp.headers.get("Content-Length")
    got = 0
    while True:
        try:
            block = resp.read1(BLOCK)  # whatever has arrived, so the bar and the .part keep moving
        except (http.client.HTTPException, OSError) as exc:
            raise _Interrupted(str(exc) or type(exc).__name__) from exc
        if not block:
            break
        f.write(block)
        h.update(block)
        bar.update(len(block))
        got += len(block)
    if length is not None and length.isdigit() and got < int(length):
        raise _Interrupted(f"connection closed after {got} of {length} bytes")


def _transfer(url: str, f: IO[bytes], entry: FileEntry, progress: bool, timeout: float) -> Digests:
    """Fill the open ``.part`` ``f`` with the whole file at ``url``, resuming from its current end.

    Returns:
        The digests of the complete ``.part`` (SHA-256, and MD5 where the entry pins one).
    Raises:
        urllib.error.URLError: the request itself failed (HTTPError for 4xx/5xx other than 416).
        _Interrupted: the transfer broke on every attempt.
    """
    reason = ""
    for _ in range(_ATTEMPTS):
        offset = f.seek(0, os.SEEK_END)
        if entry.size is not None and offset > entry.size:
            offset = _restart(f)
        h = _hash_prefix(f, offset, entry, progress)
        if entry.size is not None and offset == entry.size:
            return h
        headers = {"User-Agent": "benchbench", **({"Range": f"bytes={offset}-"} if offset else {})}
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code != 416 or offset == 0:
                raise
            full = re.search(r"/(\d+)", exc.headers.get("Content-Range", "") or "")
            if full and int(full.group(1)) == offset:
                return h  # the .part already held the whole file
            _restart(f)  # the .part is longer than the file on the server: start over
            continue
        with resp:
            if offset and (resp.status != 206 or _range_start(resp) != offset):
                offset = _restart(f)  # the server ignored Range (200) or answered another range
                h = _digests(entry)
            length = resp.headers.get("Content-Length")
            total = entry.size if entry.size is not None else offset + int(length) if length else None
            with tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=entry.file, disable=not progress, file=sys.stderr, mininterval=tqdm_interval()) as bar:
                try:
                    _stream(resp, f, h, bar)
                except _Interrupted as exc:
                    reason = str(exc)
                    continue
        return h
    raise _Interrupted(reason)


def _source_url(entry: FileEntry, url: str | None) -> str:
    """``url`` replaces the entry's URL; one ending in "/" is a base the file name is appended to."""
    if url is None:
        return entry.url
    return url + entry.file if url.endswith("/") else url


def _verify_download(part: Path, entry: FileEntry, sha: str, md5: str | None, src: str, target: Path) -> None:
    """Size and checksums of the finished ``.part``; a bad file is removed and a DataError raised."""
    size = part.stat().st_size
    problem = ""
    if entry.size is not None and size != entry.size:
        problem = f"size mismatch: expected {entry.size} bytes, got {size}"
    elif size < entry.min_size:
        problem = f"size mismatch: expected at least {entry.min_size} bytes, got {size}"
    elif entry.sha256 is not None and sha != entry.sha256:
        problem = f"checksum mismatch: expected sha256 {entry.sha256}, got {sha}"
    elif entry.md5 is not None and md5 != entry.md5:
        problem = f"checksum mismatch: expected the published md5 {entry.md5}, got {md5}"
    if problem:
        part.unlink(missing_ok=True)
        raise DataError(
            f"{entry.file}: {problem} for {src}; the downloaded file was removed ({part}); "
            f"retry, or {_manual_hint(entry, target)}"
        )


def _manual_hint(entry: FileEntry, target: Path) -> str:
    return (
        f"download it by hand from {entry.url} and place it at {target}, or use --dataset {entry.dataset}-synth "
        "(procedural look-alike, reported as synthetic)"
    )


def fetch(
    name: str,
    data_dir: str | Path | None = None,
    url: str | None = None,
    manifest: Mapping[str, FileEntry] = MANIFEST,
    *,
    variant: str | None = None,
    force: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download a dataset file into the data folder unless a good copy is there; return its path.

    The file streams into ``<file>.part`` (resumed with a Range request when one is left over, restarted
    when the server ignores Range), is verified (pinned SHA-256; else the pinned MD5, with the SHA-256
    recorded in the sidecar; else size only with a warning and a recorded sidecar hash), then renamed
    into place atomically.

    Args:
        name: dataset (``shapes3d``, ``mpi3d``) or file name (``mpi3d_real.npz``); ``celeba`` raises
            a DataError with manual placement steps.
        data_dir: data folder (default ``data_root()``: ``$BENCHBENCH_DATA`` or ``~/.cache/benchbench``).
        url: replaces the manifest URL (a mirror, or a local server in tests); a value ending in "/"
            is a base URL to which the file name is appended.
        manifest: file name -> FileEntry.
        variant: MPI3D variant (toy | realistic | real; default toy).
        force: download again even when a verified copy exists.
        progress: show tqdm progress bars (bytes, rate, ETA) on stderr.
        timeout: seconds a connection attempt or a read may stall.
    Returns:
        ``data_root(data_dir) / entry.file``.
    Raises:
        DataError: one line naming the URL and the fix: network/HTTP failure, a transfer that kept
            breaking (rerun to resume), a size/checksum mismatch (the bad download is removed), an
            existing file that fails verification (pass ``force`` to replace it), or ``celeba``.
    """
    root = data_root(data_dir)
    if name == "celeba":
        raise DataError(celeba_instructions(root))
    if name == "cars3d":
        raise DataError(cars3d_instructions(root))
    entry = resolve(name, variant, manifest)
    target = root / entry.file
    if not force:
        found = check_file(target, entry, progress)
        if found.status in ("verified", "size-only"):
            return target
        if found.status == "mismatch":
            raise DataError(f"{found.detail}; delete it (or fetch with force) to download it again")
    src = _source_url(entry, url)
    sha, md5 = _download(src, target, entry, progress, timeout)
    write_sidecar(target, sha, md5)
    if entry.sha256 is None and entry.md5 is None:
        warnings.warn(
            f"{entry.file}: no SHA-256 pinned in the manifest (datasets.md §7), so only its size was checked; "
            f"recorded sha256 {sha} in {sidecar_path(target)} so later checks detect corruption",
            stacklevel=2,
        )
    return target


def _download(
    src: str, target: Path, entry: FileEntry, progress: bool, timeout: float
) -> tuple[str, str | None]:
    """Transfer ``src`` through ``<target>.part``, verify it and rename it to ``target``.

    Returns:
        (SHA-256, MD5 or None where the entry pins none) of the file.

    Every failure becomes a one-line DataError naming the URL and the manual alternative.
    """
    part = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked_part(part) as f:
            sha, md5 = _transfer(src, f, entry, progress, timeout).hexdigests()
            f.flush()
            os.fsync(f.fileno())
            _verify_download(part, entry, sha, md5, src, target)
            os.replace(part, target)
        return sha, md5
    except urllib.error.HTTPError as exc:
        raise DataError(f"{entry.file}: download failed: HTTP {exc.code} {exc.reason} from {src}; "
                        f"{_manual_hint(entry, target)}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"{entry.file}: download failed: {exc.reason} from {src}; "
                        f"{_manual_hint(entry, target)}") from None
    except _Interrupted as exc:
        got = part.stat().st_size if part.exists() else 0
        raise DataError(f"{entry.file}: download from {src} broke off after {got} bytes ({exc}); "
                        f"rerun the fetch to resume from {part}, or {_manual_hint(entry, target)}") from None
    except OSError as exc:  # a stalled connect (TimeoutError), a full disk, an unwritable folder
        raise DataError(f"{entry.file}: download from {src} failed ({exc}); {_manual_hint(entry, target)}") from None
