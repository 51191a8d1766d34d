"""Shapes3D loader and its look-alike (datasets.md §1, §5a, §6).

Fixtures are written at test time in the real on-disk schema from ``shapes3d-synth`` renders, so
images agree with labels. The 64x64 synth checks render directly (a few geometries); the map cache
is exercised at 16x16 to keep the file fast.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections import namedtuple
from pathlib import Path

import h5py
import numpy as np
import pytest

from benchbench.datasets import DataConfig, shapes3d
from benchbench.datasets.shapes3d import (
    FACTOR_SIZES,
    NUM_IMAGES,
    Shapes3D,
    cache_paths,
    factors_to_labels,
    labels_to_factors,
    row_lookup,
)
from benchbench.datasets.shapes3d_synth import GEN_VERSION, Shapes3DSynth, cache_path
from benchbench.errors import ConfigError, DataError
from benchbench.registry import datasets

SUBSET = np.unique(np.r_[0, NUM_IMAGES - 1, np.arange(0, NUM_IMAGES, 4817)])  # ~100 grid points
SMALL = DataConfig(resolution=16)


def all_labels() -> np.ndarray:
    """[480000, 6] label values of the full grid in flat-index order (an in-memory mock of the file)."""
    return factors_to_labels(np.stack(np.unravel_index(np.arange(NUM_IMAGES), FACTOR_SIZES), axis=1))


def write_h5(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """The real schema: exactly ``images`` |u1 and ``labels`` <f8, gzip-compressed and chunked (§6)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(1, *images.shape[1:]), compression="gzip")
        f.create_dataset("labels", data=labels, chunks=True, compression="gzip")
    return path


@pytest.fixture(scope="module")
def subset() -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 64, 64, 3] and labels [N, 6] of ``SUBSET``, rendered directly (no cache)."""
    synth = Shapes3DSynth(DataConfig(), data_dir=Path("/nonexistent"))
    return synth.render(SUBSET), synth.labels(SUBSET)


@pytest.fixture(scope="module")
def h5_dir(tmp_path_factory: pytest.TempPathFactory, subset: tuple[np.ndarray, np.ndarray]) -> Path:
    root = tmp_path_factory.mktemp("h5")
    write_h5(root / "3dshapes.h5", *subset)
    return root


# Section: labels -> factor indices (§1).


def test_labels_to_factors_full_grid_float64_and_float32() -> None:
    labels = all_labels()
    expected = np.stack(np.unravel_index(np.arange(NUM_IMAGES), FACTOR_SIZES), axis=1)
    np.testing.assert_array_equal(labels_to_factors(labels), expected)
    np.testing.assert_array_equal(labels_to_factors(labels.astype(np.float32)), expected)
    scale = np.linspace(0.75, 1.25, 8)
    for dtype in (np.float32, np.float64):
        rows = np.zeros((8, 6), dtype=dtype)
        rows[:, 3] = scale.astype(dtype)
        np.testing.assert_array_equal(labels_to_factors(rows)[:, 3], np.arange(8))


@pytest.mark.parametrize("column,value", [(0, 0.05), (3, 0.8), (4, 4.0), (5, 31.0), (2, np.nan)])
def test_off_grid_label_raises(column: int, value: float) -> None:
    row = factors_to_labels(np.zeros((1, 6), dtype=np.int64))
    row[0, column] = value
    with pytest.raises(DataError):
        labels_to_factors(row)


def test_full_size_order_check() -> None:
    labels = all_labels()
    assert row_lookup(labels) is None
    assert row_lookup(labels.astype(np.float32)) is None
    labels[[10, 11]] = labels[[11, 10]]
    with pytest.raises(DataError, match="order"):
        row_lookup(labels)


def test_subset_lookup_and_duplicates() -> None:
    labels = all_labels()[SUBSET[::-1]]
    lookup = row_lookup(labels)
    assert lookup is not None and lookup.shape == (NUM_IMAGES,)
    np.testing.assert_array_equal(lookup[SUBSET[::-1]], np.arange(len(SUBSET)))
    assert np.count_nonzero(lookup >= 0) == len(SUBSET)
    with pytest.raises(DataError, match="more than once"):
        row_lookup(np.concatenate([labels, labels[:1]]))


# Section: the loader on fixture files (§6).


def test_h5_subset_reads_images_and_labels(h5_dir: Path, subset: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = subset
    ds = Shapes3D(DataConfig(), data_dir=h5_dir)
    assert ds.spec.source == "real" and ds.spec.factor_sizes == FACTOR_SIZES and len(ds) == NUM_IMAGES
    np.testing.assert_array_equal(ds.available_indices, SUBSET)
    pick = np.array([5, 0, 5, len(SUBSET) - 1, 17])  # unsorted, with a repeat
    out = ds.images(SUBSET[pick])
    assert out.dtype == np.uint8 and out.shape == (5, 64, 64, 3)
    np.testing.assert_array_equal(out, images[pick])
    np.testing.assert_array_equal(ds.labels(SUBSET[pick]), labels[pick])
    np.testing.assert_array_equal(ds[int(SUBSET[3])], images[3])
    np.testing.assert_array_equal(ds.factor_images(ds.index_to_factors(SUBSET[:2])), images[:2])
    clone = pickle.loads(pickle.dumps(ds))  # spawned workers reopen the file
    np.testing.assert_array_equal(clone.images(SUBSET[:3]), images[:3])
    with pytest.raises(IndexError):
        ds.images(np.array([-1]))


def test_h5_subset_absent_combination_raises(h5_dir: Path) -> None:
    ds = Shapes3D(DataConfig(), data_dir=h5_dir)
    with pytest.raises(DataError, match="subset") as err:
        ds.images(np.array([SUBSET[0], 1]))
    assert "\n" not in str(err.value)
    with pytest.raises(DataError):
        ds.sample_observations_from_factors(ds.sample_factors(50, np.random.RandomState(0)), None)


def test_npz_variant_shuffled_rows(tmp_path: Path, subset: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = subset
    perm = np.random.default_rng(0).permutation(len(SUBSET))
    np.savez(tmp_path / "3dshapes.npz", images=images[perm], labels=labels[perm])
    ds = Shapes3D(DataConfig(), data_dir=tmp_path)
    assert ds.spec.version.startswith("3dshapes.npz:")
    np.testing.assert_array_equal(ds.images(SUBSET[[4, 2, 9]]), images[[4, 2, 9]])


def test_resolution_option_resizes(h5_dir: Path) -> None:
    ds = Shapes3D(DataConfig(resolution=32), data_dir=h5_dir)
    assert ds.spec.resolution == 32 and ds.images(SUBSET[:3]).shape == (3, 32, 32, 3)


def test_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        Shapes3D(DataConfig(download=False), data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "3dshapes.h5") in msg
    for part in (
        "https://storage.googleapis.com/3d-shapes/3dshapes.h5",
        "benchbench data fetch shapes3d",
        "--data-dir",
        "BENCHBENCH_DATA",
        "--dataset shapes3d-synth",
    ):
        assert part in msg


def test_download_flag_fetches_a_missing_file(
    tmp_path: Path, subset: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_fetch(name: str, root: Path, url: str | None = None) -> Path:  # stands in for the network
        calls.append((name, root))
        return write_h5(root / "3dshapes.h5", *subset)

    monkeypatch.setattr(shapes3d, "fetch", fake_fetch)
    with pytest.raises(DataError, match="not found"):
        Shapes3D(DataConfig(download=False), data_dir=tmp_path)  # the network is never touched
    assert calls == []
    ds = Shapes3D(DataConfig(), data_dir=tmp_path)  # data.download defaults to True
    assert calls == [("shapes3d", tmp_path)] and ds.path == tmp_path / "3dshapes.h5"
    Shapes3D(DataConfig(), data_dir=tmp_path, download=True)  # present now: no second fetch
    assert len(calls) == 1


# Section: the uncompressed image cache (§1).


def _count_conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = shapes3d._convert
    monkeypatch.setattr(shapes3d, "_convert", lambda h5, npy: (calls.append(h5), real(h5, npy))[1])
    return calls


def test_image_cache_built_once_reused_and_identical(
    tmp_path: Path, subset: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    images, _ = subset
    h5 = write_h5(tmp_path / "3dshapes.h5", *subset)
    npy, meta = cache_paths(h5)
    calls = _count_conversions(monkeypatch)
    ds = Shapes3D(DataConfig(), data_dir=tmp_path)
    assert not npy.exists()  # built on the first read, not at construction
    pick = np.array([7, 0, 7, len(SUBSET) - 1])
    np.testing.assert_array_equal(ds.images(SUBSET[pick]), images[pick])
    assert len(calls) == 1 and npy.is_file() and meta.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with h5py.File(h5, "r") as f:
        np.testing.assert_array_equal(np.load(npy), f["images"][()])  # byte-identical to the h5 reads
    np.testing.assert_array_equal(Shapes3D(DataConfig(), data_dir=tmp_path).images(SUBSET[pick]), images[pick])
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone.images(SUBSET[:3]), images[:3])
    assert len(calls) == 1  # reused by a second loader and by a pickled copy


def test_image_cache_rebuilt_when_the_source_changes(
    tmp_path: Path, subset: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = subset
    h5 = write_h5(tmp_path / "3dshapes.h5", images, labels)
    calls = _count_conversions(monkeypatch)
    Shapes3D(DataConfig(), data_dir=tmp_path).images(SUBSET[:2])
    mtime = h5.stat().st_mtime_ns
    write_h5(h5, 255 - images, labels)  # same size and labels, new pixels
    os.utime(h5, ns=(mtime + 10**9, mtime + 10**9))
    np.testing.assert_array_equal(Shapes3D(DataConfig(), data_dir=tmp_path).images(SUBSET[:2]), 255 - images[:2])
    assert len(calls) == 2
    npy, _ = cache_paths(h5)
    npy.write_bytes(b"damaged")  # a damaged cache is rebuilt too
    np.testing.assert_array_equal(Shapes3D(DataConfig(), data_dir=tmp_path).images(SUBSET[:2]), 255 - images[:2])
    assert len(calls) == 3


def test_low_disk_reads_h5_directly_with_one_warning(
    tmp_path: Path, subset: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    images, _ = subset
    write_h5(tmp_path / "3dshapes.h5", *subset)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    ds = Shapes3D(DataConfig(), data_dir=tmp_path)
    pick = np.array([3, 1, 3, 50])
    with pytest.warns(UserWarning, match="not enough free disk") as rec:
        np.testing.assert_array_equal(ds.images(SUBSET[pick]), images[pick])
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    np.testing.assert_array_equal(ds.images(SUBSET[:4]), images[:4])  # no second attempt or warning
    assert not cache_paths(tmp_path / "3dshapes.h5")[0].exists()


def _bad_file(kind: str, root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write one malformed ``3dshapes.h5`` / ``.npz`` into ``root``."""
    path = root / "3dshapes.h5"
    if kind == "truncated":
        data = write_h5(root / "good.h5", images, labels).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "wrong_keys":
        with h5py.File(path, "w") as f:
            f["imgs"], f["labels"] = images, labels
    elif kind == "wrong_shape":
        write_h5(path, images[:, :32, :32], labels)
    elif kind == "wrong_dtype":
        write_h5(path, images.astype(np.float32), labels)
    elif kind == "label_dtype":
        write_h5(path, images, labels.astype(np.int64))
    elif kind == "row_mismatch":
        write_h5(path, images, labels[:-1])
    elif kind == "off_grid":
        write_h5(path, images, labels + 0.03)
    elif kind == "npz_garbage":
        (root / "3dshapes.npz").write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(3000))
    elif kind == "npz_no_labels":
        np.savez(root / "3dshapes.npz", images=images)


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "garbage",
        "wrong_keys",
        "wrong_shape",
        "wrong_dtype",
        "label_dtype",
        "row_mismatch",
        "off_grid",
        "npz_garbage",
        "npz_no_labels",
    ],
)
def test_bad_files_raise_one_line_data_error(
    kind: str, tmp_path: Path, subset: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = subset[0][:8], subset[1][:8]
    _bad_file(kind, tmp_path, images, labels)
    with pytest.raises(DataError) as err:
        Shapes3D(DataConfig(download=False), data_dir=tmp_path)
    assert "\n" not in str(err.value) and "3dshapes" in str(err.value)


# Section: shapes3d-synth (§5a).


def test_registry_entries() -> None:
    synth, real = datasets.get("shapes3d-synth"), datasets.get("shapes3d")
    assert synth.obj is Shapes3DSynth and real.obj is Shapes3D
    assert (synth.source, synth.family, synth.kind, synth.files) == ("synthetic", "shapes3d", "factors", ())
    assert real.source == "real" and real.files == ("3dshapes.h5", "3dshapes.npz")


def test_synth_spec_and_config(tmp_path: Path) -> None:
    ds = datasets.get("shapes3d-synth").obj(DataConfig(), tmp_path)
    assert ds.spec.version == f"gen{GEN_VERSION}" and ds.spec.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert len(ds) == NUM_IMAGES and not cache_path(tmp_path, 64).exists()  # the cache is lazy
    with pytest.raises(ConfigError):
        Shapes3DSynth(DataConfig(size=1000), tmp_path)


def test_synth_labels_and_index_round_trip(tmp_path: Path) -> None:
    ds = Shapes3DSynth(DataConfig(), tmp_path)
    idx = np.random.default_rng(0).integers(0, NUM_IMAGES, 500)
    factors = ds.index_to_factors(idx)
    np.testing.assert_array_equal(ds.factors_to_index(factors), idx)
    np.testing.assert_array_equal(labels_to_factors(ds.labels(idx)), factors)
    assert ds.labels(np.array([NUM_IMAGES - 1])).tolist() == [[0.9, 0.9, 0.9, 1.25, 3.0, 30.0]]


def test_sample_factors_rng_parity(tmp_path: Path) -> None:
    ds = Shapes3DSynth(DataConfig(), tmp_path)
    rs = np.random.RandomState(0)
    expected = np.stack([rs.randint(s, size=7) for s in FACTOR_SIZES], axis=1)
    np.testing.assert_array_equal(ds.sample_factors(7, np.random.RandomState(0)), expected)


def test_synth_cache_is_deterministic_and_matches_direct(tmp_path: Path) -> None:
    a = Shapes3DSynth(SMALL, tmp_path / "a")
    idx = np.random.default_rng(1).integers(0, NUM_IMAGES, 200)
    first = a.images(idx)
    path = cache_path(tmp_path / "a", 16)
    assert first.shape == (200, 16, 16, 3) and path.name == f"shapes3d-synth-gen{GEN_VERSION}-r16.npy"
    assert not list(path.parent.glob("*.tmp"))
    np.testing.assert_array_equal(Shapes3DSynth(SMALL, tmp_path / "a").images(idx), first)  # from disk
    np.testing.assert_array_equal(Shapes3DSynth(SMALL, tmp_path / "b").images(idx), first)  # rebuilt
    assert np.abs(a.render(idx).astype(int) - first).max() <= 1
    path.write_bytes(b"not an npy file")  # a damaged cache is rebuilt
    np.testing.assert_array_equal(Shapes3DSynth(SMALL, tmp_path / "a").images(idx), first)


def test_synth_pickle_and_index_range(tmp_path: Path) -> None:
    ds = Shapes3DSynth(SMALL, tmp_path)
    first = ds.images(np.array([3, 470000]))
    clone = pickle.loads(pickle.dumps(ds))  # carries no maps; reloads them from the disk cache
    np.testing.assert_array_equal(clone.images(np.array([3, 470000])), first)
    with pytest.raises(IndexError):
        ds.images(np.array([NUM_IMAGES]))


def _changed(ds: Shapes3DSynth, factors: list[int], column: int, value: int) -> float:
    """Fraction of pixels that change when factor ``column`` is set to ``value``."""
    other = list(factors)
    other[column] = value
    a, b = ds.render(ds.factors_to_index(np.array([factors, other])))
    return float(np.any(a != b, axis=-1).mean())


@pytest.mark.parametrize("column,value", [(0, 5), (1, 5), (2, 5), (3, 7), (4, 2), (5, 0)])
def test_each_factor_changes_part_of_the_image(column: int, value: int) -> None:
    ds = Shapes3DSynth(SMALL, Path("/nonexistent"))
    changed = _changed(ds, [1, 4, 8, 3, 0, 9], column, value)
    assert 0.0 < changed
    if column < 3:  # a hue recolours one surface class only
        assert changed < 0.9
    if column == 5:  # the orbit moves the floor/wall boundary and the object
        assert changed > 0.05


GOLDEN = {  # index: (pixels at GOLDEN_POS, per-channel mean); 64x64, GEN_VERSION 1
    0: ([[171, 0, 0], [234, 0, 0], [171, 0, 0], [171, 0, 0], [171, 0, 0], [234, 0, 0]], [198.898, 0.0, 0.0]),
    123456: (
        [[0, 171, 171], [187, 234, 0], [41, 0, 205], [125, 156, 0], [0, 171, 171], [187, 234, 0]],
        [85.244, 190.472, 94.509],
    ),
    250001: (
        [[137, 171, 0], [0, 234, 234], [147, 0, 0], [0, 156, 156], [137, 171, 0], [0, 234, 234]],
        [79.12, 179.73, 102.302],
    ),
    479999: (
        [[171, 0, 102], [234, 0, 140], [135, 0, 81], [156, 0, 94], [171, 0, 102], [234, 0, 140]],
        [195.936, 0.0, 117.139],
    ),
}
GOLDEN_POS = [(0, 0), (63, 0), (32, 32), (40, 40), (20, 50), (50, 10)]  # (row, column)


def test_synth_golden_64() -> None:
    ds = Shapes3DSynth(DataConfig(), Path("/nonexistent"))
    idx = np.array(list(GOLDEN))
    images = ds.render(idx)
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
    for image, (pixels, mean) in zip(images, GOLDEN.values(), strict=True):
        got = np.array([image[r, c] for r, c in GOLDEN_POS], dtype=int)
        assert np.abs(got - np.array(pixels)).max() <= 1
        np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), mean, atol=1.0)
