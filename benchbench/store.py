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
    tables/           LaTeX/markdown tables written by ``benchbench report``

Every write goes to a temporary file in the same folder followed by ``os.replace``, so readers never
see half a file and two processes writing the same record leave one whole copy.
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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


def run_dir(out: Path, dataset: str, method: str, preset: str, cfg_hash: str, seed: int) -> Path:
    return Path(out) / "runs" / dataset / method / f"{preset}-{cfg_hash}" / f"seed{seed}"


@dataclass(frozen=True)
class RunEntry:
    """One run folder as found on disk.

    Attributes:
        path: the seed folder.
        status: "complete" (result.json), "failed" (failed.json) or "incomplete" (neither).
        record: the parsed result.json (complete), failed.json (failed) or config.json (incomplete).
    """

    path: Path
    status: str
    record: dict[str, Any]


def iter_runs(out: Path) -> Iterator[RunEntry]:
    """Every run folder below ``out/runs`` in sorted order."""
    root = Path(out) / "runs"
    if not root.is_dir():
        return
    for cfg_path in sorted(root.glob("*/*/*/seed*/config.json")):
        d = cfg_path.parent
        result = read_json(d / "result.json")
        if result is not None:
            yield RunEntry(d, "complete", result)
            continue
        failed = read_json(d / "failed.json")
        if failed is not None:
            yield RunEntry(d, "failed", failed)
            continue
        yield RunEntry(d, "incomplete", read_json(cfg_path) or {})
