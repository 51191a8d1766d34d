"""CelebA loader and its look-alike (datasets.md §3, §4, §5c, §6; TAD's label filter, metrics.md §8).

Fixtures are written at test time in the real on-disk schema from ``celeba-synth(aligned=True)``, so
images agree with labels: 12 JPEGs (splits 8/2/2), byte-exact text files, a zip variant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchbench.datasets import DataConfig
from benchbench.datasets.celeba import CelebA
from benchbench.datasets.celeba_files import ATTR_NAMES, MD5, format_attr_file
from benchbench.datasets.celeba_synth import ATTR_NAMES as SYNTH_NAMES
from benchbench.datasets.celeba_synth import (
    COLUMNS,
    DEFAULT_RATES,
    GEN_VERSION,
    CelebASynth,
    draw_faces_params,
    splitmix64,
    uniform,
    write_fixture,
)
from benchbench.datasets.faces import colours, draw_faces, square_frame
from benchbench.errors import ConfigError, DataError
from benchbench.registry import datasets

N = 12


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A data folder with ``celeba/`` in the torchvision layout, and the 40-column attributes [12, 40]."""
    root = tmp_path_factory.mktemp("celeba")
    return root, write_fixture(root / "celeba")


@pytest.fixture
def bad_root(tmp_path: Path) -> Path:
    """A fresh writable copy of the fixture files (flat layout), for the malformed-file cases."""
    write_fixture(tmp_path)
    return tmp_path


# Section: the files' byte layout (§3).


def test_attr_file_is_byte_exact(fixture_root: tuple[Path, np.ndarray]) -> None:
    root, attrs = fixture_root
    data = (root / "celeba" / "list_attr_celeba.txt").read_bytes()
    lines = data.split(b"\r\n")
    assert lines[0] == b"12" and lines[-1] == b"" and b"\n" not in data.replace(b"\r\n", b"")
    assert lines[1] == (" ".join(ATTR_NAMES) + " ").encode()  # trailing space
    for k, line in enumerate(lines[2:-1]):
        values = attrs[k].astype(int) * 2 - 1
        expected = f"{k + 1:06d}.jpg {values[0]}" + "".join(f"{v:3d}" for v in values[1:])
        assert line == expected.encode()
        assert len(line) + 2 == (131 if values[0] == 1 else 132)
    assert attrs[6, 0] == 1 and lines[8].startswith(b"000007.jpg 1 ")  # a one-byte-shorter row
    unused = np.setdiff1d(np.arange(40), np.r_[0, list(COLUMNS)])
    assert not attrs[:, unused].any()


def test_published_byte_sizes_follow_from_the_layout() -> None:
    """202,599 rows of which 22,516 start with 1 give the published 26,721,026 bytes (§3 table)."""
    short = len(format_attr_file(["000001.jpg"], np.r_[1, -np.ones(39, dtype=int)][None]))
    long = len(format_attr_file(["000001.jpg"], -np.ones((1, 40), dtype=int)))
    header = len(format_attr_file([], np.zeros((0, 40), dtype=int)))  # "0\r\n" + names line
    assert header + 5 + 22_516 * (short - header) + (202_599 - 22_516) * (long - header) == 26_721_026
    assert 202_599 * len(b"000001.jpg 0\r\n") == 2_836_386


def test_partition_file_layout(fixture_root: tuple[Path, np.ndarray]) -> None:
    data = (fixture_root[0] / "celeba" / "list_eval_partition.txt").read_bytes()
    expected = "".join(f"{i + 1:06d}.jpg {s}\r\n" for i, s in enumerate([0] * 8 + [1] * 2 + [2] * 2))
    assert data == expected.encode() and len(data) == 14 * N


# Section: the loader on fixtures.


def test_parsing_names_values_and_splits(fixture_root: tuple[Path, np.ndarray]) -> None:
    root, attrs = fixture_root
    ds = datasets.get("celeba").obj(DataConfig(), root)
    assert len(ds) == N and ds.spec.attr_names == ATTR_NAMES and ds.spec.source == "real"
    assert ds.names == [f"{i:06d}.jpg" for i in range(1, N + 1)] and ds.train_flip
    np.testing.assert_array_equal(ds.attributes(np.arange(N)), attrs)
    np.testing.assert_array_equal(ds.attributes(np.array([3, 0])), attrs[[3, 0]])
    synth = CelebASynth(DataConfig())
    np.testing.assert_array_equal(ds.attributes(np.arange(N))[:, COLUMNS], synth.attributes(np.arange(N)))
    assert ds.split("train").tolist() == list(range(8)) and ds.split("valid").tolist() == [8, 9]
    assert ds.split("test").tolist() == [10, 11]
    np.testing.assert_array_equal(ds.train_indices(), ds.split("train"))
    with pytest.raises(ValueError):
        ds.split("val")
    with pytest.raises(IndexError):
        ds.images(np.array([N]))


def test_parser_accepts_whitespace_variants(tmp_path: Path, fixture_root: tuple[Path, np.ndarray]) -> None:
    src = fixture_root[0] / "celeba"
    shutil.copytree(src, tmp_path / "celeba")
    path = tmp_path / "celeba" / "list_attr_celeba.txt"
    text = path.read_bytes().replace(b"\r\n", b"\n").replace(b" -1", b"\t-1").replace(b"  1", b"    1")
    path.write_bytes(text + b"\n\n")
    np.testing.assert_array_equal(CelebA(DataConfig(), tmp_path).attributes(np.arange(N)), fixture_root[1])


def test_crops_shapes_and_difference(fixture_root: tuple[Path, np.ndarray]) -> None:
    root = fixture_root[0]
    d2c = CelebA(DataConfig(), root).images(np.arange(N))
    center = CelebA(DataConfig(crop="center"), root).images(np.arange(N))
    assert d2c.shape == center.shape == (N, 64, 64, 3) and d2c.dtype == center.dtype == np.uint8
    assert np.abs(d2c.astype(int) - center).mean() > 5
    assert CelebA(DataConfig(resolution=32), root).images(np.arange(2)).shape == (2, 32, 32, 3)
    with pytest.raises(ConfigError):
        CelebA(DataConfig(crop="nashae"), root)


def test_d2c_crop_reproduces_the_synth_design(fixture_root: tuple[Path, np.ndarray]) -> None:
    """The aligned render, JPEG-encoded, cropped and resized, is the 64x64 render up to blur and JPEG noise."""
    loaded = CelebA(DataConfig(), fixture_root[0]).images(np.arange(N)).astype(int)
    direct = CelebASynth(DataConfig()).images(np.arange(N)).astype(int)
    assert np.abs(loaded - direct).mean() < 4.0
    assert np.median(np.abs(loaded - direct)) <= 2


def test_zip_flat_and_png_variants(tmp_path: Path, fixture_root: tuple[Path, np.ndarray]) -> None:
    expected = CelebA(DataConfig(), fixture_root[0]).images(np.arange(N))
    write_fixture(tmp_path / "zip" / "celeba", as_zip=True)
    with zipfile.ZipFile(tmp_path / "zip" / "celeba" / "img_align_celeba.zip") as z:
        assert "img_align_celeba/000001.jpg" in z.namelist()
    zipped = CelebA(DataConfig(), tmp_path / "zip")
    np.testing.assert_array_equal(zipped.images(np.arange(N)), expected)
    clone = pickle.loads(pickle.dumps(zipped))  # workers reopen the archive
    np.testing.assert_array_equal(clone.images(np.array([5, 1])), expected[[5, 1]])
    write_fixture(tmp_path / "flat")  # files directly in the data folder
    np.testing.assert_array_equal(CelebA(DataConfig(), tmp_path / "flat").images(np.array([2])), expected[[2]])
    write_fixture(tmp_path / "png" / "celeba", image_format="png")
    (tmp_path / "png" / "celeba" / "img_align_celeba").rename(tmp_path / "png" / "celeba" / "img_align_celeba_png")
    png = CelebA(DataConfig(), tmp_path / "png").images(np.arange(N)).astype(int)
    assert np.abs(png - expected).mean() < 2.0  # lossless source vs JPEG


def test_cache_build_and_use(tmp_path: Path) -> None:
    write_fixture(tmp_path / "celeba")
    ds = CelebA(DataConfig(), tmp_path)
    lazy = ds.images(np.arange(N))
    assert not ds.cache_path.exists()
    path = ds.build_cache(workers=2, progress=False)
    assert path.name == "celeba-d2c-r64.npy" and path.parent == tmp_path / "celeba"
    assert not list(path.parent.glob("*.tmp"))
    fresh = CelebA(DataConfig(), tmp_path)

    def no_decoding(index: int) -> np.ndarray:
        raise AssertionError("decoded although a cache exists")

    fresh._decode = no_decoding  # type: ignore[method-assign]
    np.testing.assert_array_equal(fresh.images(np.array([4, 4, 0])), lazy[[4, 4, 0]])
    assert not CelebA(DataConfig(crop="center"), tmp_path).cache_path.exists()  # keyed by crop


def test_verify_reports_md5_mismatch(fixture_root: tuple[Path, np.ndarray]) -> None:
    checks = CelebA(DataConfig(), fixture_root[0]).verify()
    assert set(checks) == {"list_attr_celeba.txt", "list_eval_partition.txt"}
    for name, check in checks.items():
        assert check.expected == MD5[name] and not check.ok
        assert check.md5 == hashlib.md5(check.path.read_bytes()).hexdigest()
    assert MD5["list_attr_celeba.txt"] == "75e246fa4810816ffd6ee81facbd244c"


def test_missing_files_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        CelebA(DataConfig(), tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    for part in (
        str(tmp_path / "celeba" / "img_align_celeba"),
        "list_attr_celeba.txt",
        "list_eval_partition.txt",
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        "--data-dir",
        "--dataset celeba-synth",
    ):
        assert part in msg


def _edit(path: Path, old: bytes, new: bytes, count: int = 1) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, count))


BAD = {  # case: (edit of the flat fixture folder, a word the message must contain)
    "no_attr_file": (lambda r: (r / "list_attr_celeba.txt").unlink(), "attribute file"),
    "no_partition_file": (lambda r: (r / "list_eval_partition.txt").unlink(), "partition file"),
    "no_images": (lambda r: shutil.rmtree(r / "img_align_celeba"), "img_align_celeba"),
    "count_line": (lambda r: _edit(r / "list_attr_celeba.txt", b"12\r\n", b"13\r\n"), "announces 13"),
    "count_not_number": (lambda r: _edit(r / "list_attr_celeba.txt", b"12\r\n", b"twelve\r\n"), "count"),
    "name_mismatch": (lambda r: _edit(r / "list_attr_celeba.txt", b"Male ", b"Female "), "'Female'"),
    "names_missing": (lambda r: _edit(r / "list_attr_celeba.txt", b" Young ", b" "), "39 names"),
    "few_values": (lambda r: _edit(r / "list_attr_celeba.txt", b"000004.jpg -1", b"000004.jpg"), "line 6"),
    "value_zero": (lambda r: _edit(r / "list_attr_celeba.txt", b"000005.jpg -1", b"000005.jpg  0"), "'0'"),
    "value_two": (lambda r: _edit(r / "list_attr_celeba.txt", b"000005.jpg -1", b"000005.jpg -11"), "'-11'"),
    "partition_split": (lambda r: _edit(r / "list_eval_partition.txt", b"000009.jpg 1", b"000009.jpg 3"), "'3'"),
    "partition_names": (lambda r: _edit(r / "list_eval_partition.txt", b"000002.jpg", b"000102.jpg"), "same images"),
    "partition_short": (lambda r: _edit(r / "list_eval_partition.txt", b"000012.jpg 2\r\n", b""), "lists 11"),
    "image_missing": (lambda r: (r / "img_align_celeba" / "000012.jpg").unlink(), "000012.jpg"),
    "image_extra": (
        lambda r: shutil.copy(r / "img_align_celeba" / "000001.jpg", r / "img_align_celeba" / "x.jpg"),
        "count mismatch",
    ),
    "bad_zip": (
        lambda r: (shutil.rmtree(r / "img_align_celeba"), (r / "img_align_celeba.zip").write_bytes(b"PK")),
        "zip",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_raise_one_line_data_error(case: str, bad_root: Path) -> None:
    edit, word = BAD[case]
    edit(bad_root)
    with pytest.raises(DataError) as err:
        CelebA(DataConfig(), bad_root)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("celeba:") and word in msg


def test_unreadable_and_wrong_size_images_name_the_file(bad_root: Path) -> None:
    (bad_root / "img_align_celeba" / "000003.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    Image.new("RGB", (64, 64)).save(bad_root / "img_align_celeba" / "000004.jpg")
    ds = CelebA(DataConfig(), bad_root)  # images are read lazily
    assert ds.images(np.array([0])).shape == (1, 64, 64, 3)
    for index, word in ((2, "cannot read"), (3, "178x218")):
        with pytest.raises(DataError) as err:
            ds.images(np.array([index]))
        assert "\n" not in str(err.value) and word in str(err.value) and f"{index + 1:06d}.jpg" in str(err.value)


# Section: celeba-synth (§5c).


def test_registry_entries() -> None:
    synth, real = datasets.get("celeba-synth"), datasets.get("celeba")
    assert synth.obj is CelebASynth and real.obj is CelebA
    assert (synth.source, synth.family, synth.kind, synth.files) == ("synthetic", "celeba", "attributes", ())
    assert (real.source, real.family, real.kind) == ("real", "celeba", "attributes")
    assert real.files == ("celeba/list_attr_celeba.txt", "list_attr_celeba.txt")


def test_hash_streams() -> None:
    assert int(splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF  # SplitMix64 reference
    u = uniform(0, np.arange(10_000), 3)
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    assert not np.array_equal(u, uniform(0, np.arange(10_000), 4))  # another stream
    assert not np.array_equal(u, uniform(1, np.arange(10_000), 3))  # another seed


def test_training_pool_and_flips_follow_the_data_options(fixture_root: tuple[Path, np.ndarray]) -> None:
    root, _ = fixture_root
    ds = datasets.get("celeba").obj(DataConfig(), root)
    np.testing.assert_array_equal(ds.training_pool(), ds.split("train"))
    assert ds.flips_training_batches()
    every = datasets.get("celeba").obj(DataConfig(split="all", flip=False), root)  # Diff-AE's LMDB; DisDiff's loader
    assert every.training_pool() is None and not every.flips_training_batches()
    np.testing.assert_array_equal(every.train_indices(), ds.split("train"))  # evaluation's split is unchanged
    synth = CelebASynth(DataConfig(size=2000, split="all"))
    assert synth.training_pool() is None and synth.flips_training_batches()
    with pytest.raises(ConfigError, match="data.split"):
        DataConfig(split="valid")


def test_synth_spec_sizes_and_splits() -> None:
    ds = CelebASynth(DataConfig())
    assert len(ds) == 202_599 and ds.spec.attr_names == SYNTH_NAMES and ds.train_flip
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [162_770, 19_867, 19_962]
    assert ds.spec.version == f"gen{GEN_VERSION}" and ds.spec.source == "synthetic"
    assert SYNTH_NAMES == tuple(ATTR_NAMES[c] for c in COLUMNS)  # CelebA names, CelebA order
    assert list(COLUMNS) == sorted(COLUMNS)
    small = CelebASynth(DataConfig(size=2000))
    sizes = [len(small.split(s)) for s in ("train", "valid", "test")]
    assert sum(sizes) == len(small) == 2000 and min(sizes) > 0
    for size, official in zip(sizes, (162_770, 19_867, 19_962), strict=True):
        assert abs(size - 2000 * official / 202_599) <= 1
    assert np.array_equal(np.concatenate([small.split(s) for s in ("train", "valid", "test")]), np.arange(2000))
    assert len(CelebASynth(DataConfig(size=3)).split("test")) == 1
    with pytest.raises(ConfigError):
        CelebASynth(DataConfig(size=2))
    with pytest.raises(IndexError):
        small.images(np.array([2000]))
    assert CelebASynth(DataConfig(), balanced=True).spec.version == f"gen{GEN_VERSION}-balanced"


GOLDEN = {  # index: (attributes in SYNTH_NAMES order, per-channel mean, pixels at GOLDEN_POS); seed 0, 64x64
    0: ([0, 0, 1, 0, 0, 0, 1, 0, 0, 0], [187.874, 170.711, 120.895],
        [[191, 188, 135], [162, 123, 101], [193, 95, 95], [191, 188, 135]]),
    1: ([1, 0, 0, 0, 0, 0, 1, 0, 1, 1], [188.675, 118.766, 143.844],
        [[184, 73, 80], [221, 164, 130], [213, 145, 120], [194, 131, 193]]),
    2: ([0, 0, 0, 0, 1, 0, 0, 0, 1, 0], [140.581, 127.59, 143.232],
        [[131, 116, 133], [216, 178, 150], [205, 135, 118], [127, 131, 164]]),
    100_000: ([0, 1, 0, 0, 1, 0, 1, 0, 1, 0], [172.257, 143.812, 176.005],
              [[178, 150, 200], [191, 154, 121], [191, 154, 121], [178, 150, 200]]),
    202_598: ([0, 0, 1, 0, 1, 0, 1, 0, 0, 0], [181.801, 122.787, 175.238],
              [[173, 108, 192], [205, 158, 133], [205, 158, 133], [173, 108, 192]]),
}  # fmt: skip
GOLDEN_POS = ([10, 32, 45, 60], [32, 32, 32, 5])  # (rows, columns)


def test_synth_golden() -> None:
    """Exact labels; images within 1 LSB (float rounding may differ across CPUs, §5 shared rules)."""
    ds = CelebASynth(DataConfig())
    idx = np.array(list(GOLDEN))
    np.testing.assert_array_equal(ds.attributes(idx), [v[0] for v in GOLDEN.values()])
    for image, (_, mean, pixels) in zip(ds.images(idx), GOLDEN.values(), strict=True):
        assert np.abs(image[GOLDEN_POS].astype(int) - pixels).max() <= 1
        np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), mean, atol=0.05)


def test_synth_determinism() -> None:
    a, b = CelebASynth(DataConfig()), CelebASynth(DataConfig())
    idx = np.array([0, 7, 123_456, 202_598, 7])
    first = a.images(idx)
    assert first.shape == (5, 64, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(b.images(idx), first)
    np.testing.assert_array_equal(np.concatenate([a.images(idx[k : k + 1]) for k in range(5)]), first)  # batch-free
    np.testing.assert_array_equal(first[1], first[4])
    np.testing.assert_array_equal(a[123_456], first[2])
    other = CelebASynth(DataConfig(), seed=1)
    assert not np.array_equal(other.images(idx), first) and other.spec.version == f"gen{GEN_VERSION}-seed1"
    assert CelebASynth(DataConfig(resolution=32)).images(idx).shape == (5, 32, 32, 3)
    assert CelebASynth(DataConfig(), aligned=True).images(idx[:2]).shape == (2, 218, 178, 3)


def _mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """I(x; y) in nats of two binary arrays from empirical frequencies (zero cells dropped; metrics.md §8)."""
    total = 0.0
    for u in (0, 1):
        for v in (0, 1):
            joint = np.mean((x == u) & (y == v))
            if joint > 0:
                total += joint * np.log(joint / (np.mean(x == u) * np.mean(y == v)))
    return total


def _redundancy(attrs: np.ndarray) -> dict[str, float]:
    """r_a = max_{b != a} I(a; b) / H(a) per attribute (TAD's label filter, metrics.md §8 step 3)."""
    out = {}
    for a in range(attrs.shape[1]):
        mi = [_mutual_information(attrs[:, a], attrs[:, b]) for b in range(attrs.shape[1]) if b != a]
        out[SYNTH_NAMES[a]] = max(mi) / _mutual_information(attrs[:, a], attrs[:, a])
    return out


def test_base_rates() -> None:
    attrs = CelebASynth(DataConfig()).attributes(np.arange(20_000))
    r = DEFAULT_RATES
    expected = [r.bangs, r.black_hair, r.blond_hair, r.eyeglasses, r.male, r.mouth_open, 1 - r.male * r.beard,
                r.pale_skin, r.smiling, r.hat]  # fmt: skip
    for name, p, got in zip(SYNTH_NAMES, expected, attrs.mean(axis=0), strict=True):
        assert abs(got - p) < 4 * np.sqrt(p * (1 - p) / len(attrs)) + 1e-3, name
    assert not (attrs[:, 1] & attrs[:, 2]).any()  # one hair colour
    assert not ((attrs[:, 6] == 0) & (attrs[:, 4] == 0)).any()  # beards only for Male


@pytest.mark.parametrize("balanced", [False, True])
def test_tad_redundancy_design(balanced: bool) -> None:
    """No_Beard is excluded by TAD's 0.2 limit; Male and the hair labels are kept (§5c)."""
    r = _redundancy(CelebASynth(DataConfig(), balanced=balanced).attributes(np.arange(20_000)))
    assert r["No_Beard"] > 0.2
    assert max(r["Male"], r["Black_Hair"], r["Blond_Hair"]) < 0.2
    assert all(v < 0.01 for k, v in r.items() if k not in ("No_Beard", "Male", "Black_Hair", "Blond_Hair"))
    if not balanced:  # §5c's design values
        for name, target in (("No_Beard", 0.30), ("Male", 0.15), ("Black_Hair", 0.08), ("Blond_Hair", 0.11)):
            assert abs(r[name] - target) < 0.02, name


def _flip(attrs: np.ndarray, column: int) -> np.ndarray:
    """Toggle one attribute; setting one hair colour clears the other (hair is one categorical draw)."""
    out = attrs.copy()
    out[:, column] ^= 1
    if column in (1, 2):
        out[:, 3 - column] &= 1 - out[:, column]
    return out


@pytest.mark.parametrize("context", ["plain", "everything"])
def test_each_attribute_changes_pixels(context: str) -> None:
    """Flipping any attribute changes visible pixels, even when every other optional layer is drawn."""
    ds = CelebASynth(DataConfig())
    idx = np.arange(8)
    base = np.zeros((len(idx), 10), dtype=np.uint8)
    base[:, 6] = 1  # No_Beard
    if context == "everything":
        base[:] = [1, 1, 0, 1, 1, 1, 0, 1, 1, 1]  # bangs, black hair, glasses, male, open, beard, pale, smile, hat
    reference = ds.render(idx, base).astype(int)
    for column, name in enumerate(SYNTH_NAMES):
        changed = np.any(ds.render(idx, _flip(base, column)) != reference, axis=-1).reshape(len(idx), -1)
        assert (changed.sum(axis=1) >= 8).all(), name


def test_smiling_corners_rise() -> None:
    """With image y pointing down, a smile puts the lip corners above the lip centre (§5c sign check)."""
    idx = np.arange(6)
    for smiling in (0, 1):
        attrs = np.zeros((len(idx), 10), dtype=np.uint8)
        attrs[:, 6], attrs[:, 8] = 1, smiling
        upright = {"tilt": np.zeros(len(idx), np.float32), "cx": np.full(len(idx), 32.0, np.float32)}
        face = dataclasses.replace(draw_faces_params(0, idx, attrs), **upright)
        images = draw_faces(face, square_frame(64)).astype(int)
        lips = (colours(face)["lips"] * 255).astype(int)
        for image, lip, cy in zip(images, lips, face.cy, strict=True):
            top = int(cy) + 4  # the mouth window, inside the face: cx = 32, no tilt
            mask = np.abs(image[top : top + 14, 24:40] - lip).max(axis=-1) <= 12
            rows, cols = np.nonzero(mask)
            u = np.abs(cols + 24.5 - 32)
            centre, corner = rows[u < 1.5].mean(), rows[u > 4.5].mean()
            assert (centre - corner > 1.0) if smiling else (abs(centre - corner) < 0.6), (smiling, centre, corner)
