"""Codes and samples -> every applicable metric, with the settings each number was computed with.

The evaluator is the only place where methods and metrics meet: it wraps a trained model and a
dataset as a :class:`~benchbench.metrics.base.FactorSource` (codes looked up by factor indices, each
image encoded once and memoised, as disentanglement_lib's code-table mode) and calls the registered
metric functions. Metrics never import methods and methods never import metrics.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbench import progress as prog
from benchbench.datasets.base import DataSpec, GroundTruthData, to_model_input
from benchbench.errors import BenchbenchError, ConfigError
from benchbench.method import Method
from benchbench.metrics.settings import EvalConfig
from benchbench.quiet import summarised
from benchbench.registry import Entry, metrics


def can_sample(method_cls: type) -> bool:
    """Whether a method class implements ``sample`` (needed by image metrics such as FID)."""
    return getattr(method_cls, "sample", None) is not Method.sample


def applies(entry: Entry, spec: DataSpec, method_cls: type | None = None) -> bool:
    """Whether a metric applies at all (factor metrics need factors, image metrics a sampler)."""
    needs = entry.meta.get("needs", "")
    if needs == "codes+factors":
        return spec.has_factors
    if needs == "codes+attributes":
        return bool(spec.attr_names)
    if needs == "images":
        return method_cls is None or can_sample(method_cls)
    if needs == "diffusion":  # a method offering its denoiser (and mean shift) for the gap curves
        return method_cls is not None and hasattr(method_cls, "pmg_model")
    return False


def select_metrics(
    spec: DataSpec, cfg: EvalConfig, method_cls: type | None = None
) -> tuple[list[str], dict[str, str]]:
    """Metrics to compute and those skipped (name -> the one-line reason and fix).

    Without ``cfg.metrics`` every metric that applies and can run here is chosen; one that applies but
    cannot run (FID without its weights) is skipped with its reason. Metrics that do not apply to the
    dataset are left out silently. A metric asked for by name must apply and be able to run.

    Raises:
        BenchbenchError: a requested metric is unknown, does not apply, or cannot run (before training).
    """
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    for entry in metrics:  # every metric's protocol is checked (a typo fails before training, applicable or not)
        metric_settings(entry, cfg)
    for name in cfg.metrics or [e.name for e in metrics]:
        entry = metrics.get(name)
        if not applies(entry, spec, method_cls):
            if cfg.metrics:
                raise ConfigError(
                    f"metric {name!r} needs {entry.meta.get('needs')}, which {spec.name!r} with this method "
                    f"does not provide; drop it from --metrics"
                )
            continue
        check = entry.meta.get("unavailable")
        reason = check(metric_settings(entry, cfg)) if check else None
        if reason is not None:
            if cfg.metrics:
                raise BenchbenchError(f"metric {name!r} cannot run: {reason}")
            skipped[name] = reason
            continue
        chosen.append(name)
    return chosen, skipped


@dataclass
class EncoderSource:
    """A FactorSource that renders the images for given factors and encodes them once each.

    Attributes:
        data: the ground-truth dataset.
        encode: images [B, C, H, W] in [-1, 1] on the model's device -> codes [B, D].
        device: where to run the encoder.
        batch: images per encoder call.
    """

    data: GroundTruthData
    encode: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    batch: int = 256
    transform: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.factor_sizes = self.data.factor_sizes
        self._table: np.ndarray | None = None
        self._known: np.ndarray | None = None
        self.num_encoded = 0

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.data.sample_factors(n, random_state)

    @torch.no_grad()
    def _encode_indices(self, idx: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(idx), self.batch):
            x = to_model_input(self.data.images(idx[i : i + self.batch])).to(self.device)
            out.append(self.encode(x).float().cpu().numpy())
        self.num_encoded += len(idx)
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def represent(self, factors: np.ndarray) -> np.ndarray:
        """Codes [n, D] float64 for factor indices [n, K]; each distinct image is encoded once."""
        flat = self.data.factors_to_index(factors)
        todo = np.unique(flat) if self._known is None else np.unique(flat[~self._known[flat]])
        if len(todo):
            codes = self._encode_indices(todo)
            if self._table is None:
                self._table = np.zeros((len(self.data), codes.shape[1]), np.float32)
                self._known = np.zeros(len(self.data), bool)
            self._table[todo] = codes
            self._known[todo] = True
        assert self._table is not None
        codes = self._table[flat].astype(np.float64)
        return self.transform(codes) if self.transform is not None else codes


def evaluate(
    model: torch.nn.Module,
    data: Any,
    cfg: EvalConfig,
    names: list[str],
    device: torch.device,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    out_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Compute the metrics ``names`` for ``model`` on ``data``; curves and figures go to ``out_dir``.

    Progress: a ``scoring`` bar over the metrics (FID adds a bar over its samples) and one :func:`summary` line per
    finished metric through ``log``; sklearn ConvergenceWarnings are counted and logged once per metric.

    Returns:
        {metric: {"value", "extras", "settings", "higher_is_better", "label", "needs"}}.
    """
    model.eval()
    results: dict[str, dict[str, Any]] = {}
    source = None
    if isinstance(data, GroundTruthData):
        source = EncoderSource(data, model.encode, device, cfg.encode_batch)
        fit = getattr(model, "code_postprocess", None)
        if fit is not None and any(metrics.get(n).meta.get("needs") == "codes+factors" for n in names):
            # A method's registered code post-processing (Diff-AE's z-normalisation, DisDiff's per-factor
            # PCA) is fitted on a seeded sample of the dataset, then applied to every code a metric sees.
            idx = np.sort(np.random.default_rng(cfg.seed).choice(len(data), min(cfg.postprocess_fit, len(data)),
                                                               replace=False))
            source.transform = fit(source.represent(data.index_to_factors(idx)))
    bar = prog.bar(len(names), "scoring", progress, log, unit="metric")
    for name in names:
        entry = metrics.get(name)
        settings = metric_settings(entry, cfg)
        bar.set_postfix(metric=name)
        t0 = time.perf_counter()
        needs = entry.meta.get("needs")
        with summarised(name, log):
            res = _compute(entry, name, needs, model, data, source, settings, cfg, device, out_dir, progress, log)
        results[name] = {
            "value": float(res.value),
            "extras": plain(res.extras),
            "settings": {**asdict(settings), "seed": cfg.seed},
            "higher_is_better": bool(entry.meta.get("higher_is_better", True)),
            "label": entry.meta.get("label", name),
            "needs": entry.meta.get("needs"),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if needs == "codes+factors":  # what the factor metrics saw (benchbench.method.CODE_RULES), with each number
            results[name]["code_rule"] = getattr(model, "code_rule", "raw")
        log(summary(name, results[name]))
        bar.update(1)
    bar.close()
    return results


def metric_settings(entry: Entry, cfg: EvalConfig) -> Any:
    """The settings a metric runs with: its group of ``cfg``, resolved by the metric's protocol where it has one
    (e.g. ``tad.protocol=infodiffusion`` fixes the exact AUROC); these effective settings are what is stored."""
    settings = getattr(cfg, entry.meta.get("settings_key", entry.name))
    resolve = entry.meta.get("resolve")
    return resolve(settings) if resolve is not None else settings


def _compute(entry: Entry, name: str, needs: Any, model: torch.nn.Module, data: Any, source: EncoderSource | None,
             settings: Any, cfg: EvalConfig, device: torch.device, out_dir: Path | None, progress: bool,
             log: Callable[[str], None]) -> Any:
    """One metric's value on ``model``: the arrays or callables its ``needs`` call for, drawn by its protocol."""
    if needs == "codes+factors":
        return entry.obj(source, settings, cfg.seed)
    if needs == "images":
        return _image_metric(entry, model, data, settings, cfg.seed, device, progress, log, out_dir)
    if needs == "codes+attributes":
        # The metric's protocol picks the rows (default, datasets.md §4: the first test-split images).
        rows = entry.meta.get("rows") or (lambda st, split, size: split("test")[: st.num_images])
        idx = rows(settings, data.split, len(data))
        codes = encode_images(model.encode, data, idx, cfg.encode_batch, device)
        return entry.obj(codes, data.attributes(idx), data.spec.attr_names, settings, cfg.seed)
    if needs == "diffusion":
        predict, schedule = model.pmg_model()
        draw = entry.meta.get("draw") or (lambda st, seed, size: np.sort(np.random.default_rng(seed).choice(
            size, size=min(st.num_images, size), replace=False)))
        idx = draw(settings, cfg.seed, len(data))  # the metric's protocol draws the images
        x0 = to_model_input(data.images(idx)).to(device)
        return entry.obj(predict, schedule, x0, settings, cfg.seed, out_dir)
    raise ConfigError(f"metric {name!r} needs {needs!r}, which the evaluator does not know")


def summary(name: str, result: dict[str, Any], most: int = 3) -> str:
    """One line per finished metric: ``  dci  0.4123  (disentanglement=0.41, completeness=0.38, 2.1 s)``."""
    scalars = [(k, v) for k, v in result.get("extras", {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)][:most]
    parts = [f"{k}={v:.4g}" for k, v in scalars] + [f"{result.get('seconds', 0):.1f} s"]
    return f"  {name:<14} {result['value']:.4f}  ({', '.join(parts)})"


def plain(obj: Any) -> Any:
    """numpy values -> JSON-ready Python values."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@torch.no_grad()
def encode_images(encode: Callable[[torch.Tensor], torch.Tensor], data: Any, idx: np.ndarray, batch: int,
                  device: torch.device) -> np.ndarray:
    """Codes [len(idx), D] (float64) of the images at ``idx``, never flipped."""
    out = [encode(to_model_input(data.images(idx[i : i + batch])).to(device)).float().cpu().numpy()
           for i in range(0, len(idx), batch)]
    return np.concatenate(out).astype(np.float64)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images [N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C] (round to nearest)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def generate(model: torch.nn.Module, n: int, seed: int, batch: int, progress: bool = False,
             log: Callable[[str], None] | None = None) -> np.ndarray:
    """n uint8 samples [n, H, W, C]; the noise comes from a CPU generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with prog.bar(n, "fid: sampling", progress, log, unit="img") as bar:
        for i in range(0, n, batch):
            out.append(to_uint8(model.sample(min(batch, n - i), generator=gen)))
            bar.update(len(out[-1]))
    return np.concatenate(out)


def chunk_sampler(model: torch.nn.Module, seed: int, batch: int) -> Callable[[int, int], np.ndarray]:
    """(chunk i, n) -> n uint8 samples, the noise of chunk i from its own CPU generator (resumable FID)."""
    from benchbench.train import derive_seed

    return lambda i, n: generate(model, n, derive_seed(seed, i, 7), batch)


def reference_indices(data: Any, n: int) -> np.ndarray:
    """Indices of the FID reference set: n training images drawn without replacement with seed 0 (datasets.md §4;
    sets without a split draw from every image, never the first n), sorted; n = 0: the whole training split."""
    pool = data.train_indices()
    size = len(data) if pool is None else len(pool)
    if n == 0:
        return np.arange(size) if pool is None else np.sort(np.asarray(pool))
    idx = np.random.default_rng(0).choice(size, size=min(n, size), replace=False)
    return np.sort(idx if pool is None else pool[idx])


def reference_images(data: Any, n: int) -> np.ndarray:
    """The FID reference images (see :func:`reference_indices`), never flipped."""
    return data.images(reference_indices(data, n))


def _with_sample_grid(sample: Callable[[int, int], np.ndarray], path: Path, title: str = "Samples",
                      num: int = 64) -> Callable[[int, int], np.ndarray]:
    """``sample`` that also writes the first chunk's first ``num`` images as ``path`` (so ``samples.png`` shows
    images of the very generator and noise the FID was computed on)."""

    def wrapped(i: int, n: int) -> np.ndarray:
        images = sample(i, n)
        if i == 0:
            from benchbench.figures import save_sample_figure

            path.parent.mkdir(parents=True, exist_ok=True)
            save_sample_figure(images[:num], path.with_suffix(""), title)
        return images

    return wrapped


def gray_to_rgb(images: np.ndarray) -> np.ndarray:
    """One-channel images [N, H, W, 1] (dSprites) -> [N, H, W, 3] by repeating the channel, for the RGB Inception
    net of FID (the usual practice for grey images); RGB images pass unchanged."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def _image_metric(entry: Entry, model: torch.nn.Module, data: Any, settings: Any, seed: int,
                  device: torch.device, progress: bool = False, log: Callable[[str], None] | None = None,
                  out_dir: Path | None = None) -> Any:
    import hashlib

    from benchbench.datasets.base import data_root
    from benchbench.metrics.fid import content_hash
    from benchbench.metrics.fid_protocols import counts

    spec = data.spec
    _, num_real = counts(settings)
    idx = reference_indices(data, num_real)
    probe = content_hash(data.images(idx[:64]))  # catches crops/options that change the images
    split = "all" if data.train_indices() is None else "train"
    which = hashlib.sha256(idx.tobytes()).hexdigest()[:8]
    real_key = f"{spec.name}-{spec.version}-r{spec.resolution}-{split}-{which}-{probe}"
    generator = model.code_generator() if hasattr(model.cfg, "code_prior") else type(model).__name__
    work = None
    if out_dir is not None:
        tag = hashlib.sha256(f"{settings}|{seed}|{generator}".encode()).hexdigest()[:10]
        work = Path(out_dir) / "fid" / f"{settings.protocol}-{tag}"
    sample = chunk_sampler(model, seed, settings.gen_batch)
    if out_dir is not None:
        sample = _with_sample_grid(sample, Path(out_dir) / "samples.png",
                                   f"Samples scored by FID ({settings.protocol}): {generator}")
    rgb = sample  # one-channel datasets are compared as RGB (``gray_to_rgb``)
    res = entry.obj(lambda i, n: gray_to_rgb(rgb(i, n)), lambda n: gray_to_rgb(reference_images(data, n)), real_key,
                    settings, work, data_root() / "fid-stats", device, progress)
    res.extras["generator"] = generator
    # The report heads the FID column with its protocol (VAEs and diffusion methods share it); a Gaussian code
    # generator is listed among the row's deviations (``Method.code_prior_deviations``).
    res.extras["mode"] = settings.protocol
    return res
