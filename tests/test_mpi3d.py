"""MPI3D loader and its look-alike (datasets.md §2, §5b, §6).

Fixtures are written at test time in the real on-disk schema (``np.savez``, single key ``images``)
from ``mpi3d-synth`` renders over a reduced grid (2, 2, 1, 1, 1, 3, 3), so pixels agree with factors.
Full-size archives (1,036,800 or 460,800 rows, 12.7 / 5.7 GB) are hand-built zip64 files whose pixel
bytes are a sparse hole, so the row-count inference and the >4 GiB offsets run without the data.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchbench.datasets import DataConfig
from benchbench.datasets import mpi3d as mpi3d_module
from benchbench.datasets.mpi3d import (
    COMPLEX_FACTOR_SIZES,
    COMPLEX_VALUE_NAMES,
    FACTOR_NAMES,
    FACTOR_SIZES,
    NUM_IMAGES,
    NUM_IMAGES_COMPLEX,
    Mpi3D,
    cache_file,
    expected_file,
    resolve_factor_sizes,
)
from benchbench.datasets.mpi3d_synth import GEN_VERSION, Mpi3DSynth, compose, object_bounds
from benchbench.errors import ConfigError, DataError
from benchbench.registry import datasets

REDUCED = (2, 2, 1, 1, 1, 3, 3)  # N = 36 (§6)
# Which synth factor index each reduced index stands for (colour, shape, size, camera, bg, h, v).
REDUCED_VALUES = ([0, 3], [1, 5], [1], [1], [2], [0, 20, 39], [0, 20, 39])


def reduced_images() -> np.ndarray:
    """uint8 [36, 64, 64, 3]: mpi3d-synth renders of the reduced grid, in its C-order ravel."""
    idx = np.stack(np.unravel_index(np.arange(int(np.prod(REDUCED))), REDUCED), axis=1)
    factors = np.stack([np.asarray(REDUCED_VALUES[k])[idx[:, k]] for k in range(7)], axis=1)
    return compose(factors)


@pytest.fixture(scope="module")
def arr() -> np.ndarray:
    return reduced_images()


@pytest.fixture(scope="module")
def stored_dir(tmp_path_factory: pytest.TempPathFactory, arr: np.ndarray) -> Path:
    root = tmp_path_factory.mktemp("stored")
    np.savez(root / "mpi3d_toy.npz", images=arr)
    return root


def npy_header(shape: tuple[int, ...], fortran: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": fortran, "shape": shape})
    return buf.getvalue()


def write_sparse_npz(path: Path, rows: int, declared_rows: int | None = None) -> Path:
    """A ZIP_STORED, zip64 ``.npz`` holding ``images`` [rows, 64, 64, 3] whose pixels are a sparse hole.

    ``declared_rows`` (default ``rows``) is the row count written in the ``.npy`` header; a different
    value makes the member's zip size disagree with its header (a damaged file).
    """
    header = npy_header(((declared_rows or rows), 64, 64, 3))
    size = len(header) + rows * 64 * 64 * 3
    name = b"images.npy"
    extra = struct.pack("<HHQQ", 1, 16, size, size)  # zip64: uncompressed, compressed size
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0, 0, 0, 0x21, 0, 2**32 - 1, 2**32 - 1, len(name),
                        len(extra)) + name + extra  # fmt: skip
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 0, 0, 0x21, 0, 2**32 - 1, 2**32 - 1,
                          len(name), len(extra), 0, 0, 0, 0, 0) + name + extra  # fmt: skip
    cd_offset = len(local) + size
    eocd64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, len(central), cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, cd_offset + len(central), 1)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), 2**32 - 1, 0)
    with open(path, "wb") as f:
        f.write(local + header)
        f.seek(cd_offset)  # leaves a hole: no pixel bytes are written
        f.write(central + eocd64 + locator + eocd)
    if os.stat(path).st_blocks * 512 > 2**24:
        pytest.skip("the temporary folder does not support sparse files")
    return path


# Section: the memory-mapped loader (§2, §6).


def test_memmap_matches_np_load(stored_dir: Path, arr: np.ndarray) -> None:
    ds = Mpi3D(DataConfig(), data_dir=stored_dir, factor_sizes=REDUCED)
    assert ds.stored and ds.spec.source == "real" and ds.spec.family == "mpi3d"
    assert ds.spec.factor_names == FACTOR_NAMES and ds.factor_sizes == REDUCED and len(ds) == 36
    with np.load(stored_dir / "mpi3d_toy.npz") as npz:
        reference = npz["images"]
    np.testing.assert_array_equal(reference, arr)
    np.testing.assert_array_equal(ds.images(np.arange(36)), reference)
    pick = np.array([35, 0, 7, 7, 20])  # unsorted, with a repeat
    out = ds.images(pick)
    assert out.dtype == np.uint8 and out.shape == (5, 64, 64, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, reference[pick])
    np.testing.assert_array_equal(ds[12], reference[12])
    assert isinstance(ds._source(), np.memmap) and not ds._source().flags.writeable
    clone = pickle.loads(pickle.dumps(ds))  # spawned workers reopen the mapping
    assert clone._map is None
    np.testing.assert_array_equal(clone.images(pick), reference[pick])
    with pytest.raises(IndexError):
        ds.images(np.array([36]))


def test_forked_child_reopens_the_map(stored_dir: Path, arr: np.ndarray) -> None:
    ds = Mpi3D(DataConfig(), data_dir=stored_dir, factor_sizes=REDUCED)
    parent_map = ds._source()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's mapping object
        try:
            ok = ds._source() is not parent_map and np.array_equal(ds.images(np.arange(36)), arr)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1" and ds._source() is parent_map


def test_ravel_order_matches_readme_reshape(stored_dir: Path, arr: np.ndarray) -> None:
    ds = Mpi3D(DataConfig(), data_dir=stored_dir, factor_sizes=REDUCED)
    grid = arr.reshape(*REDUCED, 64, 64, 3)  # the README's reshape, reduced
    factors = ds.index_to_factors(np.arange(36))
    for f, image in zip(factors, ds.factor_images(factors)):
        np.testing.assert_array_equal(image, grid[tuple(f)])
    # Full grid: index = position in np.arange(N).reshape(6, 6, 2, 3, 3, 40, 40), last factor fastest.
    synth = Mpi3DSynth(DataConfig())
    f = synth.sample_factors(1000, np.random.RandomState(0))
    table = np.arange(NUM_IMAGES).reshape(FACTOR_SIZES)
    np.testing.assert_array_equal(synth.factors_to_index(f), table[tuple(f.T)])
    np.testing.assert_array_equal(synth.index_to_factors(table[tuple(f.T)]), f)
    assert synth.index_to_factors(np.array([1])).tolist() == [[0, 0, 0, 0, 0, 0, 1]]
    assert synth.index_to_factors(np.array([40])).tolist() == [[0, 0, 0, 0, 0, 1, 0]]


def test_opening_a_large_file_allocates_little(tmp_path: Path) -> None:
    rows, sizes = 4096, (1, 1, 1, 2, 2, 32, 32)  # 50.3 MB of pixels
    big = np.zeros((rows, 64, 64, 3), dtype=np.uint8)
    big[:, 0, 0, 0] = np.arange(rows) % 251
    np.savez(tmp_path / "mpi3d_toy.npz", images=big)
    del big
    tracemalloc.start()
    try:
        ds = Mpi3D(DataConfig(), data_dir=tmp_path, factor_sizes=sizes)
        out = ds.images(np.array([4095, 0, 1000]))
        _, peak_open = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with np.load(tmp_path / "mpi3d_toy.npz") as npz:  # control: tracemalloc does see numpy buffers
            npz["images"]
        _, peak_load = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out[:, 0, 0, 0].tolist() == [4095 % 251, 0, 1000 % 251]
    assert peak_open < 5 * 2**20 and peak_load > 45 * 2**20


def test_compressed_archive_takes_the_conversion_fallback(
    tmp_path: Path, arr: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mpi3d_realistic.npz"
    np.savez_compressed(path, images=arr)
    cfg = DataConfig(variant="realistic")
    ds = Mpi3D(cfg, data_dir=tmp_path, factor_sizes=REDUCED)
    assert not ds.stored and cache_file(path).name == "mpi3d_realistic.images.npy"
    np.testing.assert_array_equal(ds.images(np.arange(36)), arr)
    np.testing.assert_array_equal(np.load(cache_file(path)), arr)  # a plain .npy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mpi3d_realistic.images.npy",
                                                         "mpi3d_realistic.images.npy.sha256", "mpi3d_realistic.npz"]

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted twice")

    with monkeypatch.context() as m:  # the second open reuses the cache
        m.setattr(mpi3d_module, "convert_deflated", no_conversion)
        np.testing.assert_array_equal(Mpi3D(cfg, tmp_path, factor_sizes=REDUCED).images(np.array([3])), arr[[3]])
    np.savez_compressed(path, images=arr[::-1])  # a replaced archive invalidates the cache
    np.testing.assert_array_equal(Mpi3D(cfg, tmp_path, factor_sizes=REDUCED).images(np.arange(36)), arr[::-1])


def test_corrupt_compressed_stream_raises_and_leaves_nothing(tmp_path: Path, arr: np.ndarray) -> None:
    path = tmp_path / "mpi3d_toy.npz"
    np.savez_compressed(path, images=arr)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("images.npy")
    data = bytearray(path.read_bytes())
    middle = info.header_offset + 30 + len("images.npy") + info.compress_size // 2
    data[middle : middle + 64] = bytes(64)  # damage the deflate stream, keep the directory intact
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        Mpi3D(DataConfig(), data_dir=tmp_path, factor_sizes=REDUCED)
    assert "\n" not in str(err.value) and "mpi3d_toy.npz" in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["mpi3d_toy.npz"]


def test_row_count_decides_the_factor_sizes(stored_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="1,036,800") as err:
        Mpi3D(DataConfig(), data_dir=stored_dir)  # 36 rows and no explicit sizes
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="product"):
        Mpi3D(DataConfig(), data_dir=stored_dir, factor_sizes=(2, 2, 1, 1, 1, 3, 4))
    assert resolve_factor_sizes(NUM_IMAGES, None, tmp_path) == FACTOR_SIZES == (6, 6, 2, 3, 3, 40, 40)
    assert resolve_factor_sizes(NUM_IMAGES_COMPLEX, None, tmp_path) == COMPLEX_FACTOR_SIZES
    write_sparse_npz(tmp_path / "mpi3d_real.npz", NUM_IMAGES)  # 12.7 GB, offsets past 4 GiB (zip64)
    real = Mpi3D(DataConfig(variant="real"), data_dir=tmp_path)
    assert real.stored and real.factor_sizes == FACTOR_SIZES and len(real) == NUM_IMAGES
    assert real.images(np.array([0, NUM_IMAGES - 1])).shape == (2, 64, 64, 3)
    write_sparse_npz(tmp_path / "mpi3d_toy.npz", NUM_IMAGES_COMPLEX)
    cplx = Mpi3D(DataConfig(), data_dir=tmp_path)
    assert cplx.factor_sizes == COMPLEX_FACTOR_SIZES and cplx.value_names == COMPLEX_VALUE_NAMES


def test_resolution_option_resizes(stored_dir: Path) -> None:
    ds = Mpi3D(DataConfig(resolution=32), data_dir=stored_dir, factor_sizes=REDUCED)
    assert ds.spec.resolution == 32 and ds.images(np.arange(3)).shape == (3, 32, 32, 3)


def test_variants_and_missing_file_message(tmp_path: Path) -> None:
    assert [expected_file(v) for v in ("toy", "realistic", "real")] == [
        "mpi3d_toy.npz",
        "mpi3d_realistic.npz",
        "mpi3d_real.npz",
    ]
    with pytest.raises(ConfigError):
        Mpi3D(DataConfig(variant="complex", download=False), data_dir=tmp_path)
    with pytest.raises(DataError) as err:
        Mpi3D(DataConfig(variant="realistic", download=False), data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "mpi3d_realistic.npz") in msg
    for part in (
        "https://github.com/rr-learning/disentanglement_dataset",
        "waleedgondal/mpi3d",
        "--data-dir",
        "BENCHBENCH_DATA",
        "--dataset mpi3d-synth",
    ):
        assert part in msg


def _bad_file(kind: str, path: Path, arr: np.ndarray) -> None:
    """Write one malformed ``mpi3d_toy.npz`` at ``path``."""
    if kind == "not_a_zip":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "bare_npy":
        with open(path, "wb") as f:
            np.save(f, arr)
    elif kind == "truncated":
        np.savez(path.with_name("good.npz"), images=arr)
        data = path.with_name("good.npz").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "wrong_key":
        np.savez(path, imgs=arr)
    elif kind == "positional":
        np.savez(path, arr)
    elif kind == "wrong_dtype":
        np.savez(path, images=arr.astype(np.float32))
    elif kind == "wrong_shape":
        np.savez(path, images=arr[:, :32, :32])
    elif kind == "grey":
        np.savez(path, images=arr[..., 0])
    elif kind == "empty":
        np.savez(path, images=arr[:0])
    elif kind == "fortran":
        np.savez(path, images=np.asfortranarray(arr))
    elif kind == "size_mismatch":
        write_sparse_npz(path, 36, declared_rows=NUM_IMAGES)


BAD_KINDS = [
    "not_a_zip",
    "bare_npy",
    "truncated",
    "wrong_key",
    "positional",
    "wrong_dtype",
    "wrong_shape",
    "grey",
    "empty",
    "fortran",
    "size_mismatch",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_files_raise_one_line_data_error(kind: str, tmp_path: Path, arr: np.ndarray) -> None:
    _bad_file(kind, tmp_path / "mpi3d_toy.npz", arr[:4])
    with pytest.raises(DataError) as err:
        Mpi3D(DataConfig(), data_dir=tmp_path, factor_sizes=(1, 1, 1, 1, 1, 2, 2))
    assert "\n" not in str(err.value) and "mpi3d_toy.npz" in str(err.value)


# Section: mpi3d-synth (§5b).


def test_registry_entries() -> None:
    synth, real = datasets.get("mpi3d-synth"), datasets.get("mpi3d")
    assert synth.obj is Mpi3DSynth and real.obj is Mpi3D
    assert (synth.source, synth.family, synth.kind, synth.files) == ("synthetic", "mpi3d", "factors", ())
    assert (real.source, real.family, real.kind, real.files) == ("real", "mpi3d", "factors", ("mpi3d_toy.npz",))


def test_synth_spec_and_config() -> None:
    ds = datasets.get("mpi3d-synth").obj(DataConfig(), None)
    assert ds.spec.version == f"gen{GEN_VERSION}" and ds.spec.source == "synthetic"
    assert ds.spec.factor_sizes == FACTOR_SIZES and ds.spec.factor_names == FACTOR_NAMES and len(ds) == NUM_IMAGES
    assert [len(v) for v in ds.factor_values] == list(FACTOR_SIZES)
    with pytest.raises(ConfigError):
        Mpi3DSynth(DataConfig(size=1000))
    small = Mpi3DSynth(DataConfig(resolution=32))
    assert small.images(np.array([0, 5])).shape == (2, 32, 32, 3)


def test_synth_is_deterministic_and_batch_independent() -> None:
    a, b = Mpi3DSynth(DataConfig()), Mpi3DSynth(DataConfig())
    idx = np.random.default_rng(0).integers(0, NUM_IMAGES, 300)
    first = a.images(idx)
    assert first.dtype == np.uint8 and first.shape == (300, 64, 64, 3)
    np.testing.assert_array_equal(b.images(idx), first)
    perm = np.random.default_rng(1).permutation(300)
    np.testing.assert_array_equal(a.images(idx[perm]), first[perm])
    for k in (0, 150, 299):
        np.testing.assert_array_equal(a[int(idx[k])], first[k])
    np.testing.assert_array_equal(a.factor_images(a.index_to_factors(idx[:5])), first[:5])
    with pytest.raises(IndexError):
        a.images(np.array([NUM_IMAGES]))


def test_synth_index_factor_round_trip_and_rng_parity() -> None:
    ds = Mpi3DSynth(DataConfig())
    idx = np.random.default_rng(2).integers(0, NUM_IMAGES, 1000)
    np.testing.assert_array_equal(ds.factors_to_index(ds.index_to_factors(idx)), idx)
    rs = np.random.RandomState(0)
    expected = np.stack([rs.randint(s, size=7) for s in FACTOR_SIZES], axis=1)
    np.testing.assert_array_equal(ds.sample_factors(7, np.random.RandomState(0)), expected)


@pytest.mark.parametrize("column", range(7))
def test_each_factor_step_changes_the_pixels(column: int) -> None:
    """Every single-step change of every factor changes the image, at several base points."""
    bases = np.random.default_rng(column).integers(0, FACTOR_SIZES, size=(20, 7))
    bases[:, column] = np.random.default_rng(9).integers(0, FACTOR_SIZES[column] - 1, 20)
    stepped = bases.copy()
    stepped[:, column] += 1
    a, b = compose(bases), compose(stepped)
    changed = np.any(a != b, axis=-1).mean(axis=(1, 2))  # fraction of pixels per pair
    assert (changed > 0).all()
    if column == 0:  # colour recolours the object only
        assert changed.max() < 0.1
    if column == 4:  # background colour changes most of the frame
        assert changed.min() > 0.8


def test_object_stays_inside_the_frame_for_every_geometry() -> None:
    """All (shape, size, camera, h, v) combinations, 6*2*3*40*40 = 57,600, from geometry alone."""
    grids = np.meshgrid(*[np.arange(n) for n in (1, 6, 2, 3, 1, 40, 40)], indexing="ij")
    factors = np.stack(grids, axis=-1).reshape(-1, 7)
    obj, window = object_bounds(factors)
    assert len(factors) == 57_600
    for box in (obj, window):  # the paste window too: compose never needs to clip
        assert (box[:, :2] >= 0).all() and (box[:, 2:] <= 64).all()
    assert ((obj[:, 2:] - obj[:, :2]) > 2).all()  # the object is visible, not degenerate
    # Cross-check with renders: recolouring the object only changes pixels inside its box.
    sample = factors[np.random.default_rng(3).choice(len(factors), 200, replace=False)]
    a = compose(sample)
    other = sample.copy()
    other[:, 0] = 3  # blue instead of white
    changed = np.any(a != compose(other), axis=-1)
    box, _ = object_bounds(sample)
    for mask, (t, l, btm, r) in zip(changed, box):
        ys, xs = np.nonzero(mask)
        assert len(ys) and ys.min() >= t and ys.max() < btm and xs.min() >= l and xs.max() < r


GOLDEN = {  # index: ((row, column) positions, their pixels, per-channel mean); 64x64, GEN_VERSION 1
    0: (
        [(0, 0), (63, 63), (13, 17), (12, 19), (15, 15), (3, 21), (3, 23)],
        [[107, 77, 140], [64, 46, 84], [225, 225, 225], [107, 77, 140], [235, 235, 235], [64, 64, 69], [107, 77, 140]],
        [79.515, 58.016, 103.344],
    ),
    123456: (
        [(0, 0), (63, 63), (28, 21), (27, 23), (30, 19), (8, 26), (8, 28)],
        [[235, 140, 115], [141, 84, 69], [177, 157, 152], [235, 140, 115], [235, 235, 235], [64, 64, 69],
         [235, 140, 115]],
        [184.172, 110.893, 91.709],
    ),  # fmt: skip
    530001: (
        [(0, 0), (63, 63), (22, 24), (21, 26), (24, 22), (6, 27), (6, 29)],
        [[46, 140, 115], [28, 84, 69], [37, 73, 196], [46, 140, 115], [38, 77, 204], [64, 64, 69], [64, 64, 69]],
        [40.522, 120.522, 100.437],
    ),
    1036799: (
        [(0, 0), (63, 63), (50, 47), (49, 49), (52, 45), (13, 38), (13, 40)],
        [[235, 140, 115], [141, 84, 69], [95, 95, 19], [93, 93, 19], [77, 77, 15], [64, 64, 69], [235, 140, 115]],
        [197.748, 120.012, 97.077],
    ),
}


def test_synth_golden_64() -> None:
    ds = Mpi3DSynth(DataConfig())
    assert ds.index_to_factors(np.array(list(GOLDEN))).tolist() == [
        [0, 0, 0, 0, 0, 0, 0],
        [0, 4, 0, 1, 2, 6, 16],
        [3, 0, 0, 2, 1, 10, 1],
        [5, 5, 1, 2, 2, 39, 39],
    ]
    images = ds.images(np.array(list(GOLDEN)))
    for image, (positions, pixels, mean) in zip(images, GOLDEN.values()):
        got = np.array([image[r, c] for r, c in positions], dtype=int)
        assert np.abs(got - np.array(pixels)).max() <= 1
        np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), mean, atol=1.0)


def test_missing_file_is_fetched_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchbench.datasets.download as download

    calls = []

    def fake_fetch(name: str, root: Path, url: str | None = None, variant: str | None = None) -> Path:
        calls.append((name, variant, url))
        raise DataError("network unreachable (stand-in)")

    monkeypatch.setattr(download, "fetch", fake_fetch)
    with pytest.raises(DataError, match="stand-in"):
        Mpi3D(DataConfig(variant="real", url="http://mirror/"), data_dir=tmp_path)
    assert calls == [("mpi3d", "real", "http://mirror/")]
