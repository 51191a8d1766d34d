"""The results folder: one directory and one JSON record per run.

Layout (``out`` defaults to ``results/``)::

    runs/<dataset>/<method>/<preset>-<config hash>/seed<k>/
        config.json    resolved RunConfig plus provenance, written when the run starts
        ckpt.pt        latest training checkpoint (atomic)
        stats.jsonl    one line per log tick
        run.log        time-stamped lines of what each command said about this seed (start, metrics, errors)
        tb/            TensorBoard scalars (with the ``tb`` extra)
        result.json    written atomically once every metric is computed (the run is then complete)
        failed.json    written when the run stopped with an error (removed when it later completes)
        ckpt.pt.sha256 digest of ckpt.pt (benchbench.integrity), written before the checkpoint itself
    tables/           LaTeX/markdown tables written by ``benchbench report``

Every write goes to a temporary file in the same folder followed by ``os.replace``, so readers never
see half a file and two processes writing the same record leave one whole copy. Files get the permissions
the user's umask allows (``0o666 & ~umask``, as ``open`` would), so a group can read a shared results folder.
A seed is complete only when its ``result.json`` proves it (:func:`benchbench.integrity.seed_problem`); one
that does not is listed as "corrupt" with the reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = 1


def umask() -> int:
    """The process umask, read from /proc (Linux) without changing it; elsewhere set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` gives a new file (mkstemp would give 0600)."""
    return 0o666 & ~umask()


def tmp_prefix(path: Path) -> str:
    """Prefix of the temporary siblings of ``path`` (``.<name>.``, suffix ``.tmp``)."""
    return f".{path.name}."


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and an atomic rename (mode per the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=tmp_prefix(path), suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path) -> Any | None:
    """Parsed JSON, or None when the file is absent or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def folder_lock(folder: Path, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Exclusive ``flock`` on ``folder/.lock`` (released when the process dies, so a killed run never
    leaves it held). Without ``on_wait`` it does not block and yields False when another process holds
    the lock; with ``on_wait`` it calls it once, then waits, and yields True."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is None:
                yield False
                return
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.*.tmp`` files a killed writer left in ``folder``; call only while holding its lock."""
    removed = []
    for p in folder.glob(".*.tmp"):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def run_dir(out: Path, dataset: str, method: str, preset: str, cfg_hash: str, seed: int) -> Path:
    return Path(out) / "runs" / dataset / method / f"{preset}-{cfg_hash}" / f"seed{seed}"


@dataclass(frozen=True)
class RunEntry:
    """One run folder as found on disk.

    Attributes:
        path: the seed folder.
        status: "complete" (a result.json that proves it), "corrupt" (a result.json that does not),
            "failed" (failed.json) or "incomplete" (neither).
        record: the parsed result.json (complete), failed.json (failed) or config.json (incomplete, corrupt; a
            corrupt entry's record also holds ``"corrupt"``: the reason).
    """

    path: Path
    status: str
    record: dict[str, Any]


def iter_runs(out: Path) -> Iterator[RunEntry]:
    """Every run folder below ``out/runs`` in sorted order."""
    root = Path(out) / "runs"
    if not root.is_dir():
        return
    from benchbench.integrity import result_problem

    folders = {p.parent for p in root.glob("*/*/*/seed*/config.json")} | {
        p.parent for p in root.glob("*/*/*/seed*/result.json")}
    for d in sorted(folders):
        cfg_path = d / "config.json"
        config = read_json(cfg_path)
        if (d / "result.json").exists():
            result = read_json(d / "result.json")
            problem = result_problem(result, config, _path_identity(d, root))
            if not problem:
                yield RunEntry(d, "complete", result)
            else:
                yield RunEntry(d, "corrupt", {**(config if isinstance(config, dict) else {}), "corrupt": problem})
            continue
        if (d / "failed.json").exists():
            failed = read_json(d / "failed.json")
            yield RunEntry(d, "failed", failed if isinstance(failed, dict) else
                           {"error": "failed.json is not a valid record (the error was not recorded)"})
            continue
        yield RunEntry(d, "incomplete", config if isinstance(config, dict) else {})


def _path_identity(d: Path, root: Path) -> dict[str, Any]:
    """What the folder ``runs/<dataset>/<method>/<preset>-<hash>/seed<k>`` says the record must carry."""
    dataset, method, group, seed = d.relative_to(root).parts
    preset, _, cfg_hash = group.rpartition("-")
    ident: dict[str, Any] = {"dataset": dataset, "method": method, "preset": preset, "config_hash": cfg_hash}
    if seed[4:].isdigit():
        ident["seed"] = int(seed[4:])
    return ident
