"""Fault cases (issue 14, points 2, 6, 8): silent corruption of what is read back, sweep records, subset files."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.test_train import CFG, TinyData, _fresh, _same

pytestmark = pytest.mark.usefixtures("one_thread")


def _flip(path: Path, offset: int | None = None) -> None:
    """Flip one bit in the middle of ``path`` (same size), keeping its mtime."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    k = len(data) // 2 if offset is None else offset
    data[k] ^= 0x10
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _train(folder: Path, steps: int, log: list[str]) -> torch.nn.Module:
    from dataclasses import replace

    from benchbench.train import train

    return train(_fresh(), TinyData(), replace(CFG, steps=steps), folder, seed=3, cfg_hash="h",
                 device=torch.device("cpu"), progress=False, log=log.append)


# Point 2: checksums on checkpoints and caches.


def test_bit_flipped_checkpoint_is_detected_and_the_seed_restarts(tmp_path: Path) -> None:
    straight = _train(tmp_path / "straight", 12, [])
    log: list[str] = []
    _train(tmp_path / "a", 8, log)  # "killed" after the checkpoint of step 8
    ckpt = tmp_path / "a" / "ckpt.pt"
    size = ckpt.stat().st_size
    _flip(ckpt, size - 2000)  # inside the tensor payload: torch.load would not notice
    assert ckpt.stat().st_size == size
    resumed = _train(tmp_path / "a", 12, log)
    warning = [m for m in log if "fails its SHA-256 check" in m]
    assert len(warning) == 1 and "\n" not in warning[0] and "restarting this seed from step 0" in warning[0]
    assert not any(m.startswith("resuming") for m in log)
    assert _same(resumed, straight)  # a restart from step 0 gives the uninterrupted numbers
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    assert steps == [3, 6, 9, 12]


def test_checkpoint_written_before_checksums_is_adopted(tmp_path: Path) -> None:
    log: list[str] = []
    _train(tmp_path, 8, log)
    (tmp_path / "ckpt.pt.sha256").unlink()
    _train(tmp_path, 12, log)
    assert any(m.startswith("resuming") and "step 8" in m for m in log)


def test_kill_between_digest_and_checkpoint_rename_still_resumes(tmp_path: Path, monkeypatch) -> None:
    from benchbench import store

    _train(tmp_path, 8, [])
    before = (tmp_path / "ckpt.pt").read_bytes()

    def killed(path: Path, data: bytes) -> None:
        raise KeyboardInterrupt  # the process dies after the sidecar, before the checkpoint lands

    monkeypatch.setattr(store, "atomic_write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, 12, [])
    monkeypatch.undo()
    assert (tmp_path / "ckpt.pt").read_bytes() == before
    log: list[str] = []
    _train(tmp_path, 12, log)
    assert any(m.startswith("resuming") and "step 8" in m for m in log)


def test_tampered_synth_cache_is_rebuilt(tmp_path: Path) -> None:
    from benchbench.datasets import shapes3d_synth as s3

    fresh = s3.load_or_build_maps(tmp_path, 8)
    (path,) = (tmp_path / "synth-cache").glob("*.npy")
    good = path.read_bytes()
    _flip(path)
    with pytest.warns(UserWarning, match="fails its SHA-256 check; rebuilding"):
        maps = s3.load_or_build_maps(tmp_path, 8)
    assert np.array_equal(maps, fresh) and path.read_bytes() == good
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(s3.load_or_build_maps(tmp_path, 8), fresh)  # the rebuilt cache checks out


def _shapes_h5(path: Path, n: int) -> Path:
    from benchbench.datasets.shapes3d import FACTOR_SIZES, factors_to_labels

    flat = np.arange(n) * 97 % int(np.prod(FACTOR_SIZES))
    factors = np.stack(np.unravel_index(flat, FACTOR_SIZES), axis=1)
    images = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=factors_to_labels(factors))
    return path


def test_tampered_shapes3d_image_cache_is_rebuilt(tmp_path: Path) -> None:
    from benchbench.datasets.shapes3d import cache_paths, image_cache

    h5 = _shapes_h5(tmp_path / "3dshapes.h5", 12)
    first = np.array(image_cache(h5, 12))
    npy, _ = cache_paths(h5)
    _flip(npy, npy.stat().st_size - 100)  # same size, mtime put back
    with pytest.warns(UserWarning, match="image cache .* fails its SHA-256 check"):
        again = np.array(image_cache(h5, 12))
    assert np.array_equal(again, first)


def test_tampered_mpi3d_conversion_cache_is_rebuilt(tmp_path: Path) -> None:
    from benchbench.datasets.base import DataConfig
    from benchbench.datasets.mpi3d import Mpi3D, cache_file

    sizes = (2, 2, 2, 3, 3, 2, 2)
    arr = np.random.default_rng(0).integers(0, 256, (int(np.prod(sizes)), 64, 64, 3), dtype=np.uint8)
    path = tmp_path / "mpi3d_toy.npz"
    np.savez_compressed(path, images=arr)
    Mpi3D(DataConfig(), tmp_path, factor_sizes=sizes).images(np.arange(4))
    _flip(cache_file(path), cache_file(path).stat().st_size - 10)
    with pytest.warns(UserWarning, match="converted cache .* fails its SHA-256 check"):
        again = Mpi3D(DataConfig(), tmp_path, factor_sizes=sizes).images(np.arange(len(arr)))
    assert np.array_equal(again, arr)


def test_tampered_celeba_cache_is_not_used(tmp_path: Path) -> None:
    from benchbench.datasets.base import DataConfig
    from benchbench.datasets.celeba import CelebA
    from tests.test_celeba import N, write_fixture

    write_fixture(tmp_path / "celeba")
    ds = CelebA(DataConfig(), tmp_path)
    lazy = ds.images(np.arange(N))
    path = ds.build_cache(workers=1, progress=False)
    data = bytearray(path.read_bytes())
    data[-5:] = bytes(255 - b for b in data[-5:])  # the last pixels of the last image
    path.write_bytes(bytes(data))
    fresh = CelebA(DataConfig(), tmp_path)
    with pytest.warns(UserWarning, match="celeba: the image cache .* fails its SHA-256 check"):
        assert np.array_equal(fresh.images(np.arange(N)), lazy)  # decoded again, not the tampered pixels
    assert np.array_equal(fresh.images(np.arange(N)), lazy)  # warned once
    fresh.build_cache(workers=1, progress=False)
    assert np.array_equal(CelebA(DataConfig(), tmp_path).images(np.arange(N)), lazy)


def test_unpinned_download_changed_in_place_with_its_mtime_restored_is_a_mismatch(tmp_path: Path) -> None:
    from benchbench.datasets.manifest import FileEntry, check_file

    path = tmp_path / "mpi3d_toy.npz"
    path.write_bytes(os.urandom(4096))
    entry = FileEntry(file=path.name, url="http://x/", size=None, sha256=None, dataset="mpi3d", variant="toy",
                      min_size=1024)
    assert check_file(path, entry).status == "size-only"  # trust on first download: the hash is recorded
    _flip(path)
    found = check_file(path, entry)
    assert found.status == "mismatch" and "the file changed" in found.detail


def test_pinned_file_changed_in_place_with_its_mtime_restored_is_a_mismatch(tmp_path: Path) -> None:
    from benchbench.datasets.manifest import FileEntry, check_file

    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(4096))
    entry = FileEntry(file=path.name, url="http://x/", size=4096, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                      dataset="d")
    assert check_file(path, entry).status == "verified"
    _flip(path)
    assert check_file(path, entry).status == "mismatch"


# Point 6: sweeps.


def test_two_sweeps_started_in_the_same_second_get_their_own_folders(tmp_path: Path, monkeypatch) -> None:
    from benchbench import sweep as sw

    monkeypatch.setattr(sw.time, "strftime", lambda fmt, *a: "20260101-000000")
    sw.submit([], "debug", tmp_path, log=lambda m: None)
    sw.submit([], "debug", tmp_path, log=lambda m: None)
    assert len(list((tmp_path / "sweeps").glob("*/sweep.json"))) == 2


def test_truncated_sweep_json_does_not_break_status(tmp_path: Path, invoke) -> None:
    from benchbench.store import atomic_write_json

    good = tmp_path / "sweeps" / "20260101-000000"
    run_dir = tmp_path / "runs" / "x" / "betavae" / "smoke-00000000" / "seed0"
    atomic_write_json(good / "sweep.json", {"launcher": "debug", "run_jobs": {}, "runs": [
        {"index": 0, "method": "betavae", "dataset": "shapes3d-synth", "seed": 0, "dir": str(run_dir)}]})
    bad = tmp_path / "sweeps" / "20260101-000001"
    bad.mkdir(parents=True)
    (bad / "sweep.json").write_text('{"launcher": "debug", "runs": [{"ind')
    code, out, err = invoke(["status", "--out", str(tmp_path)])
    assert code == 0 and "Traceback" not in err
    assert "queued" in out and "20260101-000001" in out and "unreadable" in out


# Point 8: `data info` says what a file holds.


def test_data_info_on_a_73_image_subset(tmp_path: Path, invoke) -> None:
    _shapes_h5(tmp_path / "3dshapes.h5", 73)
    code, out, _ = invoke(["data", "info", "shapes3d", "--data-dir", str(tmp_path)])
    assert code == 0
    assert "images: 73 present of the 480,000" in out
    assert "subset" in out and "needs the full file" in out
    assert "images: 480,000 at" not in out
