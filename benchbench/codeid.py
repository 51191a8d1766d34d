"""Which code trained a run: the part of the config hash that is not the config.

A result is only "the same run" as an earlier one when the code that produced it is the same too, so the
run folder's config hash (:func:`benchbench.config.config_hash`) covers a *code key*:

* **Built-in methods** (defined inside ``benchbench``): the benchbench version and, when benchbench is
  imported from a git checkout that tracks it, the commit. Uncommitted changes to benchbench do **not**
  change the key: during development the harness is edited all the time, and every edit of a report or a
  test re-training every result would make the results folder useless. They are not silent either: the
  identity records ``dirty`` and a digest of ``git diff HEAD``; ``run`` says once that the tree is dirty and,
  when it reuses a run trained from a different diff, why. Commit to get new runs.
* **Plugin methods** (any other module, usually a package found through the ``benchbench.methods`` entry
  points): the plugin's distribution name and version (when it has one), the commit of the git checkout it
  is imported from (when there is one), and a SHA-256 of its source files (every ``.py`` file of its
  top-level package, or the module file itself). The method under test *is* its source: editing a plugin's
  loss and running again trains a new run, committed or not.

Stage artifacts (pre-trained DPMs, autoencoders) keep their own hashes: they are keyed by their config
only, so changing benchbench's code does not rebuild hours of pre-training.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent


def _git(cwd: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


@lru_cache(maxsize=32)
def git_state(path: Path) -> dict[str, Any]:
    """Commit, dirtiness and a digest of ``git diff HEAD`` of the checkout tracking the file ``path``.

    Returns ``{"commit": None, ...}`` when ``path`` is not tracked by a git checkout (an installed wheel; a
    virtualenv that happens to sit inside some other repository does not count: the file itself must be tracked).
    """
    none = {"commit": None, "dirty": None, "diff_sha256": None}
    cwd = path.parent
    if _git(cwd, "ls-files", "--error-unmatch", path.name) is None:
        return none
    commit = _git(cwd, "rev-parse", "HEAD")
    top = _git(cwd, "rev-parse", "--show-toplevel")
    if commit is None or top is None:
        return none
    diff = _git(Path(top.strip()), "diff", "HEAD", "--no-ext-diff", "--binary") or ""
    return {"commit": commit.strip(), "dirty": bool(diff.strip()),
            "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff.strip() else None}


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def source_files(module_name: str) -> list[Path]:
    """The ``.py`` files of the top-level package of ``module_name`` (or the module's own file)."""
    top = module_name.split(".")[0]
    mod = sys.modules.get(top)
    if mod is None:
        return []
    paths = list(getattr(mod, "__path__", []) or [])
    if paths:
        return sorted(p for root in paths for p in Path(root).rglob("*.py") if "__pycache__" not in p.parts)
    file = getattr(mod, "__file__", None)
    return [Path(file)] if file else []


def source_digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0")
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(b"<unreadable>")
        h.update(b"\0")
    return h.hexdigest()


def builtin_identity() -> dict[str, Any]:
    git = git_state(_ROOT / "__init__.py")
    return {"kind": "builtin", "package": "benchbench", "version": _version("benchbench"), **git}


def method_identity(obj: Any, plugin: dict[str, Any] | None = None) -> dict[str, Any]:
    """The code identity of the method class ``obj`` (see the module docstring); ``plugin`` is the registry's
    note of the entry point that registered it ({"entry_point", "module", "distribution", "version"})."""
    module = getattr(obj, "__module__", "") or ""
    if module == "benchbench" or module.startswith("benchbench."):
        return builtin_identity()
    files = source_files(module)
    git = git_state(files[0].resolve()) if files else {"commit": None, "dirty": None, "diff_sha256": None}
    plugin = plugin or {}
    return {"kind": "plugin", "module": module, "distribution": plugin.get("distribution"),
            "version": plugin.get("version"), "commit": git["commit"], "dirty": git["dirty"],
            "source_sha256": source_digest(files) if files else None, "benchbench": _version("benchbench")}


def code_key(identity: dict[str, Any]) -> dict[str, Any]:
    """The part of an identity that enters the config hash (never ``dirty`` or the diff of benchbench)."""
    if identity["kind"] == "builtin":
        return {"package": "benchbench", "version": identity["version"], "commit": identity["commit"]}
    return {k: identity[k] for k in ("module", "distribution", "version", "commit", "source_sha256")}


def short(identity: dict[str, Any]) -> str:
    """``benchbench 0.1.0 @ 1a2b3c4 (+uncommitted changes)`` / ``plugin my_pkg 0.2 @ ..., source 9f8e7d6c``."""
    commit = f" @ {identity['commit'][:7]}" if identity.get("commit") else ""
    dirty = " (+uncommitted changes)" if identity.get("dirty") else ""
    if identity["kind"] == "builtin":
        return f"benchbench {identity['version']}{commit}{dirty}"
    name = identity.get("distribution") or identity["module"]
    ver = f" {identity['version']}" if identity.get("version") else ""
    src = f", source {identity['source_sha256'][:8]}" if identity.get("source_sha256") else ""
    return f"plugin {name}{ver}{commit}{src}"


def reuse_note(recorded: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """Why a complete run is reused although benchbench's working tree differs from when it was trained; or None.

    Only built-in identities can differ in this way (their key ignores uncommitted changes)."""
    if not recorded or current["kind"] != "builtin":
        return None
    if recorded.get("diff_sha256") == current.get("diff_sha256"):
        return None
    return ("benchbench's uncommitted changes differ from those it was trained with; runs are keyed by the commit, "
            "so commit to retrain (or delete the run folder)")
