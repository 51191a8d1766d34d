"""FID plumbing through torch-fidelity with a random-weight Inception file (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from benchbench.errors import BenchbenchError
from benchbench.metrics.fid import FIDUnavailable, content_hash, fid, frechet_distance, weights_path
from benchbench.metrics.settings import FIDSettings


def _images(seed: int, n: int, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 200, size=(n, 32, 32, 3)) + shift, 0, 255).astype(np.uint8)


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(1.0, 2.0, size=(300, 8)) @ rng.normal(size=(8, 8))
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-9)
    # Closed form for two isotropic Gaussians: |mu1-mu2|^2 + d (s1 - s2)^2 for std s1, s2.
    assert frechet_distance(np.zeros(3), 4 * np.eye(3), np.ones(3), np.eye(3)) == pytest.approx(3 + 3 * 1.0)


def test_fid_through_torch_fidelity(weights: Path, tmp_path: Path) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    settings = FIDSettings(batch_size=8, weights=str(weights))
    gen, real = _images(1, 10), _images(2, 10, shift=50)
    name = f"test-{content_hash(real)}"
    value = fid(gen, real, settings, real_cache_name=name, cache_root=tmp_path)
    # Same number from features extracted directly and the scipy formula.
    net = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        f1 = net(torch.from_numpy(gen).permute(0, 3, 1, 2))[0].double().numpy()
        f2 = net(torch.from_numpy(real).permute(0, 3, 1, 2))[0].double().numpy()
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    direct = ((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(
        scipy.linalg.sqrtm(s1 @ s2).real)
    assert value == pytest.approx(direct, rel=1e-3, abs=1e-3)
    assert abs(frechet_distance(f1.mean(0), s1, f1.mean(0), s1)) < 1e-6 * max(1.0, np.trace(s1))
    # The real-set statistics are cached under the given name and reused.
    assert list(tmp_path.rglob(f"{name}*"))
    assert fid(gen, real, settings, real_cache_name=name, cache_root=tmp_path) == pytest.approx(value)


def test_missing_weights_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCHBENCH_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FIDUnavailable) as info:
        weights_path(FIDSettings())
    msg = str(info.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg and str(tmp_path / "torch") in msg
    assert "\n" not in msg
    monkeypatch.setenv("BENCHBENCH_FID_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(FIDUnavailable, match="BENCHBENCH_FID_WEIGHTS"):
        weights_path(FIDSettings())
    with pytest.raises(FIDUnavailable, match="eval.fid.weights"):
        weights_path(FIDSettings(weights=str(tmp_path / "x.pth")))


def test_bad_images_are_rejected(weights: Path) -> None:
    with pytest.raises(BenchbenchError, match="uint8"):
        fid(np.zeros((4, 8, 8, 3), np.float32), _images(0, 4), FIDSettings(weights=str(weights)))
