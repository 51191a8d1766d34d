"""What every result records about the code and libraries that produced it."""

from __future__ import annotations

import getpass
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("benchbench", "torch", "numpy", "scipy", "scikit-learn", "pandas", "h5py", "torch-fidelity")


@lru_cache(maxsize=1)
def git_revision() -> dict[str, Any]:
    """Commit of the benchbench source tree and whether it had uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        if rev.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict[str, Any]:
    return {"git": git_revision(), "versions": library_versions(), "platform": platform.platform()}


_STARTED = time.strftime("%Y-%m-%dT%H:%M:%S%z")


@lru_cache(maxsize=1)
def invocation() -> dict[str, Any]:
    """The command that is running (as typed, ``benchbench ...``), when this process started, where, and who."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("__main__.py", "benchbench", "cli.py"):
        argv[0] = "benchbench"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {"argv": argv, "command": shlex.join(argv), "started": _STARTED, "host": socket.gethostname(),
            "user": user, "pid": os.getpid(), "cwd": os.getcwd()}
