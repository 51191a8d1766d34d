"""dSprites loader and its look-alike.

Fixtures are written at test time in the real file's schema (``np.savez_compressed`` with ``imgs`` uint8 {0, 1}
[N, 64, 64], ``latents_classes`` / ``latents_values`` [N, 6], a pickled ``metadata`` dict with ``latents_sizes``)
over a reduced grid [1, 3, 2, 2, 2, 2] (N = 48), pixels rendered by ``dsprites-synth``. Downloads are served from
127.0.0.1 with the manifest entry's pinned MD5 replaced by the fixture's.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchbench.datainfo import describe
from benchbench.datasets import DataConfig
from benchbench.datasets.dsprites import FILE, DSprites, packed_file
from benchbench.datasets.dsprites_synth import FACTOR_VALUES, DSpritesSynth, render
from benchbench.datasets.manifest import MANIFEST, resolve, sidecar_path
from benchbench.errors import DataError
from benchbench.registry import datasets
from benchbench.store import read_json

SIZES = (1, 3, 2, 2, 2, 2)
PICK = ([0, 1, 2], [0, 5], [0, 10], [3, 28], [5, 30])  # which synth index each reduced index stands for


def fixture_arrays(sizes: tuple[int, ...] = SIZES) -> dict[str, object]:
    n = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(n), sizes), axis=1).astype(np.int64)
    synth = np.stack([np.asarray(PICK[k])[classes[:, k + 1]] for k in range(5)], axis=1)
    values = np.concatenate([np.ones((n, 1)), np.stack([FACTOR_VALUES[k][synth[:, k]] for k in range(5)], 1)], 1)
    names = ("color", "shape", "scale", "orientation", "posX", "posY")
    meta = {"latents_sizes": np.array(sizes), "latents_names": names, "description": "fixture"}
    return {"imgs": (render(synth)[..., 0] // 255).astype(np.uint8), "latents_classes": classes,
            "latents_values": values, "metadata": np.array(meta, dtype=object)}


def write(root: Path, **change: object) -> Path:
    arrays = {**fixture_arrays(), **change}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    root.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(root / FILE, **arrays)
    return root


def one_line_error(root: Path) -> str:
    with pytest.raises(DataError) as info:
        DSprites(DataConfig(download=False), root)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_reads_the_real_schema(tmp_path: Path) -> None:
    root = write(tmp_path)
    d = DSprites(DataConfig(download=False), root)
    arrays = fixture_arrays()
    assert d.spec.channels == 1 and d.factor_sizes == (3, 2, 2, 2, 2) and len(d) == 48
    assert d.spec.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    idx = np.array([47, 0, 5, 5, 30])
    got = d.images(idx)
    assert got.shape == (5, 64, 64, 1) and got.dtype == np.uint8 and set(np.unique(got)) <= {0, 255}
    assert np.array_equal(got[..., 0], arrays["imgs"][idx] * 255)
    assert np.array_equal(d.labels(idx), arrays["latents_values"][idx, 1:])
    # Flat index = ravel over the five latent factors (the constant colour dropped), as dot(factors, factor_bases).
    f = d.index_to_factors(idx)
    assert np.array_equal(f, arrays["latents_classes"][idx, 1:])
    assert packed_file(root / FILE).stat().st_size < 48 * 4096  # one bit per pixel
    again = DSprites(DataConfig(download=False), root)  # the cache is reused, not rebuilt
    assert np.array_equal(again.images(idx), got)


def test_renderer_consumes_the_colour_draw_like_the_reference(tmp_path: Path) -> None:
    d = DSprites(DataConfig(download=False), write(tmp_path))
    rs = np.random.RandomState(0)
    ref = np.random.RandomState(0)
    f = d.sample_factors(7, rs)
    d.sample_observations_from_factors(f, rs)
    ref_f = np.stack([ref.randint(n, size=7) for n in d.factor_sizes], axis=1)
    ref.randint(1, size=7)
    assert np.array_equal(f, ref_f) and rs.randint(1000) == ref.randint(1000)


@pytest.mark.parametrize("change, needle", [
    ({"metadata": None}, "keys ['metadata'] missing"),
    ({"metadata": np.array({"latents_sizes": np.array([2, 3, 2, 2, 2, 2])}, dtype=object)}, "latents_sizes"),
    ({"latents_classes": fixture_arrays()["latents_classes"][::-1]}, "out of order"),
    ({"imgs": np.zeros((48, 32, 32), np.uint8)}, "expected C-order uint8 [48, 64, 64]"),
    ({"latents_values": np.zeros((47, 6))}, "latents_values"),
])
def test_rejects_malformed_files(tmp_path: Path, change: dict, needle: str) -> None:
    assert needle in one_line_error(write(tmp_path, **change))


def test_rejects_non_binary_pixels_and_junk(tmp_path: Path) -> None:
    imgs = fixture_arrays()["imgs"].copy()
    imgs[3, 0, 0] = 7
    assert "values above 1" in one_line_error(write(tmp_path / "a", imgs=imgs))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / FILE).write_bytes(b"<html>not found</html>")
    assert "unreadable" in one_line_error(tmp_path / "b")


def test_missing_file_names_fetch_and_synth(tmp_path: Path) -> None:
    msg = one_line_error(tmp_path)
    assert str(tmp_path / FILE) in msg and "benchbench data fetch dsprites" in msg and "dsprites-synth" in msg
    entry = resolve("dsprites")
    assert entry.url.startswith("https://github.com/deepmind/dsprites-dataset/") and entry.url.endswith(FILE)
    # No SHA-256 is published: the MD5 that several loaders publish is pinned, the SHA-256 recorded at download.
    assert entry.sha256 is None and entry.md5 == "7da33b31b13a06f4b04a70402ce90c2e" and entry.min_size > 0


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, bytes]]:
    """The fixture archive on 127.0.0.1, its MD5 pinned in the manifest entry; yields (base URL, its bytes)."""
    folder = write(tmp_path / "served")
    data = (folder / FILE).read_bytes()
    monkeypatch.setitem(MANIFEST, FILE, dataclasses.replace(MANIFEST[FILE], md5=hashlib.md5(data).hexdigest(),
                                                            min_size=0))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", data
    httpd.shutdown()
    httpd.server_close()


def test_download_matching_the_published_md5_is_verified(tmp_path: Path, served: tuple[str, bytes]) -> None:
    base, data = served
    root = tmp_path / "data"
    d = DSprites(DataConfig(download=True, url=base), root)
    assert len(d) == 48 and (root / FILE).read_bytes() == data
    side = read_json(sidecar_path(root / FILE))
    assert side["sha256"] == hashlib.sha256(data).hexdigest() and side["md5"] == hashlib.md5(data).hexdigest()
    line = next(x for x in describe("dsprites", root) if x.strip().startswith("file "))
    assert line.strip() == f"file {root / FILE}: verified (the published md5 matched at download or first check; " \
                           f"later checks use the sha256 recorded then in {FILE}.sha256)"


def test_download_not_matching_the_published_md5_is_refused(
    tmp_path: Path, served: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, data = served
    monkeypatch.setitem(MANIFEST, FILE, dataclasses.replace(MANIFEST[FILE], md5="0" * 32))
    root = tmp_path / "data"
    with pytest.raises(DataError) as info:
        DSprites(DataConfig(download=True, url=base), root)
    msg = str(info.value)
    assert "\n" not in msg and f"expected the published md5 {'0' * 32}, got {hashlib.md5(data).hexdigest()}" in msg
    assert "removed" in msg and "dsprites-synth" in msg
    assert not (root / FILE).exists() and not list(root.iterdir())


def test_synth_matches_the_real_factors_and_labels() -> None:
    d = DSpritesSynth(DataConfig())
    assert len(d) == 737_280 and d.factor_sizes == (3, 6, 40, 32, 32) and d.spec.channels == 1
    assert datasets.get("dsprites-synth").family == datasets.get("dsprites").family == "dsprites"
    lab = d.labels(np.array([0, len(d) - 1]))
    assert np.allclose(lab[0], [1, 0.5, 0, 0, 0]) and np.allclose(lab[1], [3, 1, 2 * np.pi, 1, 1])
    ims = d.images(np.arange(0, len(d), 9973))
    assert ims.shape[1:] == (64, 64, 1) and set(np.unique(ims)) <= {0, 255}
    assert np.array_equal(ims, d.images(np.arange(0, len(d), 9973)))  # pure function of the index


def test_synth_factors_each_change_the_image() -> None:
    d = DSpritesSynth(DataConfig())
    base = np.array([[1, 3, 5, 16, 16]])
    ref = d.factor_images(base)
    for k, other in enumerate([2, 5, 9, 20, 20]):
        f = base.copy()
        f[0, k] = other
        assert not np.array_equal(d.factor_images(f), ref), k
    # Orientation 0 and 2π (the first and last of 40 values) are the same image, as in the real file.
    a, b = base.copy(), base.copy()
    a[0, 2], b[0, 2] = 0, 39
    assert np.array_equal(d.factor_images(a), d.factor_images(b))
    # Scale grows the sprite; x moves it right, y down.
    big, small = base.copy(), base.copy()
    big[0, 1], small[0, 1] = 5, 0
    assert d.factor_images(big).sum() > 2 * d.factor_images(small).sum()
    cols = np.flatnonzero(d.factor_images(np.array([[0, 3, 0, 31, 16]]))[0, :, :, 0].any(0))
    rows = np.flatnonzero(d.factor_images(np.array([[0, 3, 0, 16, 31]]))[0, :, :, 0].any(1))
    assert cols.min() > 40 and rows.min() > 40 and cols.max() < 64 and rows.max() < 64
