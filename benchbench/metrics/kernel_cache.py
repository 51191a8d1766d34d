"""Numba's on-disk cache of the DCI kernels, kept consistent across the modules that define them.

numba's ``cache=True`` checks a cached kernel only against the file that defines it, so a kernel of
``dci_trees`` compiled with the callees of an older ``dci_split`` (inlined or linked into it) keeps
running them, or crashes when their signatures changed. ``drop_stale`` stamps the cache folder with a
hash of all kernel modules and deletes their cached kernels when the hash changes; ``dci_trees`` calls
it on import, before any kernel is loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba

KERNEL_MODULES = ("dci_hist", "dci_sklearn", "dci_split", "dci_trees")
_STAMP = "dci_kernels.sha256"


def drop_stale(folder: Path = Path(__file__).parent) -> bool:
    """Delete the cached DCI kernels if any kernel module changed since they were stamped.

    Args:
        folder: the package folder holding the kernel modules (their cache is ``folder/__pycache__``, or
            under ``NUMBA_CACHE_DIR`` when that is set).
    Returns:
        whether the stamp was stale (and the cached kernels were deleted).
    """
    digest = hashlib.sha256(b"".join((folder / f"{m}.py").read_bytes() for m in KERNEL_MODULES)).hexdigest()
    cache = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else folder / "__pycache__"
    stamp = cache / _STAMP
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    pattern = "**/" if numba.config.CACHE_DIR else ""
    for module in KERNEL_MODULES:
        for path in cache.glob(f"{pattern}{module}.*.nb[ic]"):
            path.unlink(missing_ok=True)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: numba then caches elsewhere or not at all
        pass
    return True
