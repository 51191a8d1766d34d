"""kernel_cache.drop_stale: cached DCI kernels are deleted when any kernel module changes."""

from __future__ import annotations

from pathlib import Path

import numba
import pytest

from benchbench.metrics import kernel_cache


def test_cached_kernels_go_when_any_kernel_module_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    for module in kernel_cache.KERNEL_MODULES:
        (tmp_path / f"{module}.py").write_text(f"# {module}\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()

    def cached() -> list[str]:
        for module in kernel_cache.KERNEL_MODULES:
            (cache / f"{module}.kernel-10.py311.nbi").touch(exist_ok=True)
        return sorted(p.name for p in cache.glob("*.nb[ic]"))

    assert cached() and kernel_cache.drop_stale(tmp_path)  # no stamp yet
    assert not list(cache.glob("*.nb[ic]"))
    (cache / "other.f-1.py311.nbi").touch()  # another module's kernels are left alone
    assert cached() and not kernel_cache.drop_stale(tmp_path)
    assert len(list(cache.glob("*.nb[ic]"))) == len(kernel_cache.KERNEL_MODULES) + 1
    (tmp_path / "dci_split.py").write_text("# edited\n")  # a callee changes, not the caller's file
    assert kernel_cache.drop_stale(tmp_path)
    assert [p.name for p in cache.glob("*.nb[ic]")] == ["other.f-1.py311.nbi"]
