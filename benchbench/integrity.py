"""Checksums for everything benchbench reads back, and the proof a finished record must give.

Files that are written once and read back later (training checkpoints, the synthetic-data and image caches) get a
digest sidecar ``<file>.sha256`` (JSON ``{"sha256": [hex, ...], "size": int}``). The sidecar is written *before* the
file it describes is renamed into place and lists the new digest first and the digest of the file it replaces
second, so a process killed between the two renames leaves a pair that still checks out; a file whose SHA-256 is
not listed is corrupt (a flipped bit, a torn copy, a hand edit). Readers call :func:`check`:

* ``"ok"``: the digest is listed;
* ``"unrecorded"``: no (readable) sidecar, e.g. a file written before checksums existed;
* ``"corrupt"``: the file's digest is not listed.

Caches of gigabytes (the MPI3D conversion, the CelebA crops) are hashed only when they may have changed:
:func:`cache_intact` trusts the recorded digest while the file's size, mtime, ctime and inode (:func:`stat_key`) are
those recorded with it, and hashes the file again otherwise.

:func:`seed_problem` decides whether a seed folder holds a complete record: ``result.json`` parses, has the
expected schema (extra fields are allowed, so other records can grow), and its ``config.json`` is present and
agrees with it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from benchbench import store

BLOCK = 1 << 20


def digest_path(path: Path) -> Path:
    """The sidecar ``<file>.sha256`` of ``path``."""
    return path.with_name(path.name + ".sha256")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Lowercase hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def recorded(path: Path) -> list[str]:
    """The digests the sidecar of ``path`` accepts (empty when it is absent or unreadable)."""
    side = store.read_json(digest_path(path))
    if not isinstance(side, dict) or not isinstance(side.get("sha256"), list):
        return []
    return [s for s in side["sha256"] if isinstance(s, str) and len(s) == 64]


def record(path: Path, sha: str, keep_current: bool = True) -> None:
    """Write the sidecar of ``path`` for a file of digest ``sha`` about to be (or just) renamed into place.

    With ``keep_current`` the digest of the file now at ``path`` stays accepted too when the sidecar already
    accepted it, so a kill between this write and the rename leaves a valid pair."""
    keep: list[str] = []
    if keep_current and path.is_file():
        old = recorded(path)
        if old:
            current = sha256_file(path)
            if current in old and current != sha:
                keep = [current]
    store.atomic_write_json(digest_path(path), {"sha256": [sha, *keep]})


def check(path: Path) -> str:
    """``"ok"``, ``"unrecorded"`` or ``"corrupt"`` (see the module docstring); ``path`` must exist."""
    accepted = recorded(path)
    if not accepted:
        return "unrecorded"
    return "ok" if sha256_file(path) in accepted else "corrupt"


def write_checked(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` by ``data`` with its digest recorded first (see :func:`record`)."""
    record(path, sha256_bytes(data))
    store.atomic_write_bytes(path, data)


def discard(path: Path) -> None:
    """Remove a file and its sidecar."""
    path.unlink(missing_ok=True)
    digest_path(path).unlink(missing_ok=True)


def stat_key(path: Path) -> dict[str, int]:
    """What identifies one version of a file without reading it: size, mtime, *ctime* and inode. Unlike the mtime,
    the ctime cannot be set back by a user (``os.utime`` itself bumps it), so any write through the filesystem
    changes this key; a cached digest is trusted only while the key is unchanged."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def record_cache(path: Path, sha: str) -> None:
    """Record a large cache's SHA-256 and version (:func:`stat_key`) in ``<file>.sha256``; never fatal."""
    try:
        store.atomic_write_json(digest_path(path), {"sha256": [sha], "cache": stat_key(path)})
    except OSError:
        pass  # an unwritable folder: the cache is then hashed again on every open


def cache_intact(path: Path, what: str, remedy: str) -> bool:
    """Whether a large cache (gigabytes: hashed only when it may have changed) is the file whose SHA-256 was
    recorded: trusted without reading while its size, mtime, ctime and inode are unchanged, else hashed again. A
    cache without a record (built before checksums existed) is adopted; one that fails its record gets a one-line
    warning ``"<what> <path> fails its SHA-256 check; <remedy>"`` and False (the caller rebuilds it)."""
    side = store.read_json(digest_path(path))
    if isinstance(side, dict) and side.get("cache") == stat_key(path):
        return True
    sha = sha256_file(path)
    if not isinstance(side, dict) or sha in (side.get("sha256") or []):
        record_cache(path, sha)
        return True
    warnings.warn(f"{what} {path} fails its SHA-256 check; {remedy}", stacklevel=3)
    return False


# Section: the proof a complete record gives.

_HEADER = {"method": str, "dataset": str, "preset": str, "config_hash": str, "seed": int}


def result_problem(result: Any, config: Any, expect: dict[str, Any] | None = None) -> str:
    """Why ``result`` (parsed result.json) with ``config`` (parsed config.json) is not a complete record, or "".

    Args:
        result: the parsed ``result.json`` (None: missing or not JSON).
        config: the parsed ``config.json`` (None: missing or not JSON).
        expect: header values the record must carry (e.g. from the folder path or the planned run), and
            optionally ``"config"``: the planned config as a JSON-ready dict, which config.json must equal.
    """
    if result is None:
        return "result.json is not valid JSON"
    if not isinstance(result, dict):
        return f"result.json holds a {type(result).__name__}, not a record"
    if result.get("schema") != store.SCHEMA:
        return f"result.json has schema {result.get('schema')!r}, expected {store.SCHEMA}"
    if result.get("status") != "complete":
        return f"result.json has status {result.get('status')!r}, expected 'complete'"
    for key, tp in _HEADER.items():
        if not isinstance(result.get(key), tp) or isinstance(result.get(key), bool):
            return f"result.json lacks a valid {key!r}"
    metrics = result.get("metrics")
    if not isinstance(metrics, dict):
        return "result.json has no 'metrics' table"
    for name, m in metrics.items():
        if not isinstance(m, dict) or "value" not in m:
            return f"result.json metric {name!r} is {json.dumps(m)[:40]}, not a record with a value"
        v = m["value"]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"result.json metric {name!r} has value {v!r}, not a number"
    if not isinstance(result.get("missing", {}), dict):
        return "result.json 'missing' is not a table"
    for key, value in (expect or {}).items():
        if key in _HEADER and result.get(key) != value:
            return f"result.json says {key}={result.get(key)!r}, expected {value!r}"
    return config_problem(config, {**{k: result.get(k) for k in _HEADER}, **(expect or {})})


def config_problem(config: Any, expect: dict[str, Any]) -> str:
    """Why ``config`` (parsed config.json) does not describe the run ``expect`` names, or "".

    ``expect`` holds header values (method, dataset, preset, config_hash, seed) and optionally ``"config"``, the
    planned config as a JSON-ready dict that config.json's ``config`` must equal."""
    if config is None:
        return "config.json is missing or not valid JSON"
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        return "config.json holds no config"
    for key, value in expect.items():
        if key == "config":
            if _normal(config["config"]) != _normal(value):
                return "config.json differs from the planned config"
        elif config.get(key) != value:
            return f"config.json says {key}={config.get(key)!r}, expected {value!r}"
    return ""


def _normal(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def seed_problem(folder: Path, expect: dict[str, Any] | None = None) -> str:
    """Why ``folder`` (a seed folder holding result.json) is not complete, or "" when it is."""
    return result_problem(store.read_json(folder / "result.json"), store.read_json(folder / "config.json"), expect)
