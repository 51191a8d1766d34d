"""FID protocols: chunked, resumable generation; clean-fid and torch-fidelity paths; cached reference statistics."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from benchbench.errors import BenchbenchError
from benchbench.metrics import fid_protocols as fp
from benchbench.metrics.fid import fid, fid_metric, unavailable
from benchbench.metrics.settings import FIDSettings


@pytest.fixture(scope="module")
def cleanfid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random stand-in for clean-fid's TorchScript Inception: ``.layers`` maps [B, 3, 299, 299] to 2048 features."""

    class Layers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 5, stride=4)
            self.fc = nn.Linear(16 * 16, 2048)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = nn.functional.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 4).flatten(1)
            return torch.tanh(self.fc(h)).view(-1, 2048, 1, 1)

    class Base(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = Layers()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x)

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cleanfid") / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(Base()), str(path))
    return path


def _images(seed: int, n: int, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 200, size=(n, 32, 32, 3)) + shift, 0, 255).astype(np.uint8)


def _sampler(shift: int, calls: list[int] | None = None, fail_at: int | None = None):
    def sample(i: int, n: int) -> np.ndarray:
        if fail_at is not None and i == fail_at:
            raise KeyboardInterrupt("killed half-way")
        if calls is not None:
            calls.append(i)
        return _images(100 + i, n, shift)  # chunk i's images depend on i only
    return sample


def _projected(settings: FIDSettings, dims: int = 32):
    """The protocol's real (random-weight) extractor, keeping the first ``dims`` features: the 2048-d matrix square
    root costs ~25-90 s on a loaded 2-core machine, the plumbing under test does not depend on the width."""
    full = fp.feature_extractor(settings, torch.device("cpu"))
    return lambda images: full(images)[:, :dims]


def test_killed_fid_resumes_to_the_same_number(weights: Path, tmp_path: Path) -> None:
    settings = FIDSettings(num_gen=8, num_real=6, batch_size=8, chunk=2, weights=str(weights))
    real = lambda n: _images(2, n, shift=40)  # noqa: E731
    feats = _projected(settings)
    run = lambda sample, work: fid_metric(sample, real, "ref", settings, work, tmp_path / "stats",  # noqa: E731
                                          progress=False, features=feats)
    whole = run(_sampler(0), tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(_sampler(0, fail_at=2), tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["feat-00000.npy", "feat-00001.npy"]
    calls: list[int] = []
    resumed = run(_sampler(0, calls), tmp_path / "b")
    assert calls == [2, 3]  # only the missing chunks are generated again
    assert resumed.value == whole.value
    assert resumed.extras["num_generated"] == 8 and resumed.extras["num_real"] == 6
    assert resumed.extras["tool"].startswith("torch-fidelity ")


@pytest.mark.slow
def test_chunked_fid_equals_torch_fidelity(weights: Path, tmp_path: Path) -> None:
    """Full 2048-d features: the chunked number is torch-fidelity's own ``calculate_metrics`` on all images."""
    settings = FIDSettings(num_gen=20, num_real=12, batch_size=10, chunk=5, weights=str(weights))
    real = lambda n: _images(2, n, shift=40)  # noqa: E731
    whole = fid_metric(_sampler(0), real, "ref", settings, tmp_path / "a", tmp_path / "stats", progress=False)
    gen = np.concatenate([_images(100 + i, 5) for i in range(4)])
    assert whole.value == pytest.approx(fid(gen, real(12), settings), rel=1e-6, abs=1e-6)


def test_reference_statistics_are_cached_per_key(weights: Path, tmp_path: Path) -> None:
    settings = FIDSettings(num_gen=6, num_real=8, batch_size=8, chunk=6, weights=str(weights))
    loads: list[int] = []

    def real(n: int) -> np.ndarray:
        loads.append(n)
        return _images(3, n)

    feats = _projected(settings, 8)
    a = fid_metric(_sampler(9), real, "set", settings, None, tmp_path, progress=False, features=feats)
    b = fid_metric(_sampler(9), real, "set", settings, None, tmp_path, progress=False, features=feats)
    assert loads == [8] and a.value == b.value
    assert (tmp_path / "set-benchbench-n8.npz").exists()


@pytest.mark.slow
def test_cleanfid_protocol_matches_cleanfid_on_png_folders(cleanfid_file: Path, tmp_path: Path) -> None:
    """The infodiffusion protocol (arrays, no PNGs) gives clean-fid's own number for the same images as PNG folders."""
    from cleanfid import fid as cfid
    from cleanfid.inception_torchscript import InceptionV3W
    from PIL import Image

    settings = FIDSettings(protocol="infodiffusion", num_gen=10, num_real=0, batch_size=4, chunk=4,
                           cleanfid_weights=str(cleanfid_file))
    real_imgs = _images(5, 9, shift=30)
    value = fid_metric(_sampler(0), lambda n: real_imgs, "r", settings, None, None, torch.device("cpu"),
                       progress=False)
    gen = np.concatenate([_images(100 + i, n) for i, n in enumerate([4, 4, 2])])
    for name, arr in (("gen", gen), ("real", real_imgs)):
        (tmp_path / name).mkdir()
        for k, img in enumerate(arr):
            Image.fromarray(img).save(tmp_path / name / f"{k:05d}.png")
    model = InceptionV3W(str(cleanfid_file.parent), download=False).eval()
    ref = cfid.compare_folders(str(tmp_path / "gen"), str(tmp_path / "real"), lambda x: model(x), mode="clean",
                               num_workers=0, batch_size=4, device=torch.device("cpu"), verbose=False)
    assert value.value == pytest.approx(float(ref), rel=1e-5)
    assert value.extras["tool"].startswith("clean-fid ") and value.extras["num_real"] == 9


def test_disdiff_quirk_differs_and_is_marked(cleanfid_file: Path) -> None:
    base = FIDSettings(protocol="infodiffusion", num_gen=8, num_real=0, batch_size=8, chunk=8,
                       cleanfid_weights=str(cleanfid_file))
    quirky = FIDSettings(**{**base.__dict__, "protocol": "disdiff-quirk"})
    real = lambda n: _images(5, 8, shift=30)  # noqa: E731
    clean = fid_metric(_sampler(0), real, "r", base, None, None, progress=False, features=_projected(base))
    quirk = fid_metric(_sampler(0), real, "r", quirky, None, None, progress=False, features=_projected(quirky))
    assert quirk.extras["comparable"] is False and clean.extras["comparable"] is True
    assert quirk.extras["tool"].startswith("clean-fid ")
    assert quirk.value != pytest.approx(clean.value)
    # The quirk's input is 256 x (bilinear-resized [0, 255] floats): InceptionV3W's (x - 128) / 128 = 2 x - 1 > 1.
    seen: list[torch.Tensor] = []
    with mock.patch("cleanfid.fid.get_batch_features", lambda b, m, d: (seen.append(b), np.zeros((len(b), 4)))[1]):
        fp.feature_extractor(quirky, torch.device("cpu"))(_images(1, 2))
    assert seen[0].shape == (2, 3, 299, 299) and float(seen[0].max()) > 255 * 128


def test_protocol_counts_and_errors(tmp_path: Path) -> None:
    assert fp.counts(FIDSettings()) == (10_000, 10_000)
    assert fp.counts(FIDSettings(protocol="infodiffusion")) == (10_000, 0)
    assert fp.counts(FIDSettings(protocol="diffae")) == (50_000, 50_000)
    assert fp.counts(FIDSettings(protocol="diffae", num_gen=300, num_real=0)) == (300, 0)
    with pytest.raises(BenchbenchError, match="eval.fid.protocol"):
        fp.counts(FIDSettings(protocol="nope"))
    msg = unavailable(FIDSettings(protocol="infodiffusion", cleanfid_weights=str(tmp_path / "missing.pt")))
    assert msg is not None and "cleanfid_weights" in msg and "\n" not in msg
