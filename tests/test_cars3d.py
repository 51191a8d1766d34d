"""Cars3D loader and its look-alike.

Fixtures are three ``car_*_mesh.mat`` files written at test time in the real schema (``im`` uint8 [128, 128, 3, 24,
4] and ``mask`` uint8 [128, 128, 24, 4], as Reed et al.'s files), each view painted with a pattern that encodes
(object, azimuth, elevation), so the loader's order and resizing can be checked exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from benchbench.config import config_hash, resolve
from benchbench.datasets import DataConfig
from benchbench.datasets.cars3d import Cars3D
from benchbench.datasets.cars3d_synth import Cars3DSynth, camera_rays, render_object
from benchbench.datasets.download import fetch
from benchbench.errors import DataError
from benchbench.registry import datasets

NAMES = ("car_002_mesh.mat", "car_001_mesh.mat", "car_010_mesh.mat")  # written out of order on purpose


def mesh(obj: int) -> np.ndarray:
    """im [128, 128, 3, 24, 4]: a colour ramp whose channels encode (object, azimuth, elevation)."""
    ramp = np.linspace(0, 1, 128)[:, None] * np.linspace(0.5, 1, 128)[None, :]
    im = np.zeros((128, 128, 3, 24, 4), np.uint8)
    for a in range(24):
        for e in range(4):
            base = np.array([40 + 60 * obj, 10 * a, 30 + 50 * e], np.float64)
            im[:, :, :, a, e] = np.round(base[None, None, :] * (0.5 + 0.5 * ramp[..., None])).astype(np.uint8)
    return im


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cars3d")
    (root / "cars").mkdir()
    order = sorted(NAMES)
    for name in NAMES:
        savemat(root / "cars" / name, {"im": mesh(order.index(name)), "mask": np.ones((128, 128, 24, 4), np.uint8)})
    return root


def test_order_and_resizing_match_the_reference(root: Path) -> None:
    d = Cars3D(DataConfig(), root, num_objects=3)
    assert d.factor_sizes == (4, 24, 3) and len(d) == 288 and d.spec.channels == 3
    assert d.spec.factor_names == ("elevation", "azimuth", "object_type")
    for e, a, o in [(0, 0, 0), (3, 23, 2), (1, 7, 1), (2, 12, 0)]:
        img = d.factor_images(np.array([[e, a, o]]))[0]
        original = np.ascontiguousarray(mesh(o)[:, :, :, a, e])
        thumb = Image.fromarray(original)
        thumb.thumbnail((64, 64), Image.LANCZOS)  # the references' PIL call (ANTIALIAS is LANCZOS)
        assert np.array_equal(img, np.asarray(thumb)), (e, a, o)
    # Flat index = ravel over (elevation 4, azimuth 24, object): the object varies fastest.
    assert np.array_equal(d.images(np.array([1]))[0], d.factor_images(np.array([[0, 0, 1]]))[0])


def test_cache_is_reused_and_keyed_by_resolution(root: Path) -> None:
    Cars3D(DataConfig(), root, num_objects=3)
    cache = root / "cars" / "cars3d-r64.npy"
    stamp = cache.stat().st_mtime_ns
    Cars3D(DataConfig(), root, num_objects=3)
    assert cache.stat().st_mtime_ns == stamp
    small = Cars3D(DataConfig(resolution=32), root, num_objects=3)
    assert small.images(np.array([5])).shape == (1, 32, 32, 3)


def test_disdiff_repetition_is_a_training_pool_only(root: Path) -> None:
    d = Cars3D(DataConfig(repeat=10), root, num_objects=3)
    pool = d.training_pool()
    assert pool is not None and len(pool) == 2880 and np.array_equal(np.bincount(pool), np.full(288, 10))
    assert len(d) == 288 and Cars3D(DataConfig(), root, num_objects=3).training_pool() is None
    assert d.train_indices() is None  # no split: the FID reference draws from every image once
    # The DisDiff paper preset on Cars3D asks for it; repeat = 1 leaves every other config hash unchanged.
    cfg = resolve("disdiff", "cars3d-synth", "paper", 0)
    assert cfg.data.repeat == 10
    assert resolve("disdiff", "shapes3d-synth", "paper", 0).data.repeat == 1
    assert config_hash(resolve("betavae", "shapes3d-synth", "quick", 0)) == config_hash(
        resolve("betavae", "shapes3d-synth", "quick", 0, ["data.repeat=1"]))


def _bad_root(tmp_path: Path, payload: dict | bytes) -> Path:
    (tmp_path / "cars").mkdir(parents=True)
    for i in range(3):
        path = tmp_path / "cars" / f"car_{i:03d}_mesh.mat"
        if isinstance(payload, bytes):
            path.write_bytes(payload)
        else:
            savemat(path, payload)
    return tmp_path


@pytest.mark.parametrize("payload, needle", [
    ({"im": np.zeros((64, 64, 3, 24, 4), np.uint8)}, "expected uint8 [128, 128, 3, 24, 4]"),
    ({"mask": np.zeros((128, 128, 24, 4), np.uint8)}, "no 'im' array"),
    (b"MATLAB? no", "not a readable MATLAB file"),
])
def test_rejects_malformed_files(tmp_path: Path, payload: dict | bytes, needle: str) -> None:
    with pytest.raises(DataError) as info:
        Cars3D(DataConfig(), _bad_root(tmp_path, payload), num_objects=3)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_missing_or_incomplete_folder_says_where_files_go(root: Path, tmp_path: Path) -> None:
    for where, needle in [(tmp_path, str(tmp_path / "cars")), (root, "holds 3 .mat files, expected 183")]:
        with pytest.raises(DataError) as info:
            Cars3D(DataConfig(), where)
        msg = str(info.value)
        assert needle in msg and "nips2015-analogy-data.tar.gz" in msg and "cars3d-synth" in msg and "\n" not in msg
    with pytest.raises(DataError, match="no checksummed direct download"):
        fetch("cars3d", tmp_path)


def test_synth_grid_views_and_cache(tmp_path: Path) -> None:
    d = Cars3DSynth(DataConfig(resolution=16), tmp_path)
    assert len(d) == 17_568 and d.factor_sizes == (4, 24, 183)
    assert datasets.get("cars3d-synth").family == datasets.get("cars3d").family == "cars3d"
    idx = np.array([0, 1, 183, 17_567, 9_000])
    got = d.images(idx)  # renders the whole set once at 16x16 and caches it
    assert got.shape == (5, 16, 16, 3) and (tmp_path / "synth-cache" / "cars3d-synth-gen1-r16.npy").is_file()
    assert np.array_equal(got, d.render(idx))
    assert np.array_equal(Cars3DSynth(DataConfig(resolution=16), tmp_path).images(idx), got)


def test_synth_factors_each_change_the_image() -> None:
    rays = camera_rays(32)
    a = render_object(5, rays, 32)
    b = render_object(6, rays, 32)
    assert not np.array_equal(a, b)  # the object id changes the car
    views = a.reshape(24, 4, 32, 32, 3)
    assert not np.array_equal(views[3, 0], views[3, 2])  # elevation
    assert not np.array_equal(views[3, 0], views[9, 0])  # azimuth
    assert (a < 250).any(axis=-1).mean() > 0.05  # the car covers part of the frame, the rest is background
