"""Score a representation the user brings: codes plus factors (or attributes) as arrays on disk.

``benchbench score`` runs the sampling-free metrics on the given rows as they are (metrics.md §0,
"Arrays given directly"). FactorVAE and the BetaVAE score sample from a dataset, so they need
``benchbench run`` or the Python API (``benchbench.evaluate.EncoderSource`` with any encode function).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchbench.config import override
from benchbench.errors import BenchbenchError, MetricInputError
from benchbench.evaluate import metric_settings, plain
from benchbench.metrics.settings import EvalConfig
from benchbench.registry import metrics
from benchbench.validate import check_eval


def load_array(path: Path, what: str, keys: tuple[str, ...]) -> np.ndarray:
    """Load ``.npy`` or ``.npz`` (the key named like ``what``, or the only array inside)."""
    path = Path(path)
    if not path.is_file():
        raise BenchbenchError(f"--{what}: {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise BenchbenchError(f"--{what}: {path} is not a readable .npy/.npz file ({type(exc).__name__})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        names = list(loaded.files)
        for key in (*keys, "arr_0"):
            if key in names:
                return loaded[key]
        if len(names) == 1:
            return loaded[names[0]]
    raise BenchbenchError(f"--{what}: {path} holds {names}; name the array {keys[0]!r} or keep one array per file")


def _check(codes: np.ndarray, labels: np.ndarray, what: str) -> None:
    if codes.ndim != 2 or labels.ndim != 2:
        raise MetricInputError(f"codes must be [N, D] and {what} [N, K]; got {codes.shape} and {labels.shape}")
    if len(codes) != len(labels):
        raise MetricInputError(f"codes have {len(codes)} rows but {what} have {len(labels)}; they must match")
    if not np.issubdtype(codes.dtype, np.number):
        raise MetricInputError(f"codes must be numeric, got dtype {codes.dtype}")


def score_arrays(
    codes: np.ndarray,
    factors: np.ndarray | None = None,
    attributes: np.ndarray | None = None,
    names: tuple[str, ...] = (),
    seed: int = 0,
    overrides: tuple[str, ...] = (),
) -> dict[str, dict[str, Any]]:
    """Score codes [N, D] against factors [N, K] and/or binary attributes [N, A].

    Args:
        names: metric names (default: every array metric the inputs allow).
        seed: seed of the train/test shuffles (DCI, SAP, explicitness).
        overrides: ``metric.key=value`` settings, e.g. ``dci.mode=fast``.
    Returns:
        {metric: {"value", "extras", "settings", "higher_is_better", "label"}}.
    """
    if factors is None and attributes is None:
        raise BenchbenchError("give --factors and/or --attributes to score the codes against")
    cfg = EvalConfig()
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise BenchbenchError(f"--set {item!r}: expected METRIC.KEY=VALUE, e.g. --set dci.mode=fast")
        cfg = override(cfg, key.strip(), text.strip())
    check_eval(cfg)
    inputs = {"codes+factors": factors, "codes+attributes": attributes}
    for what, labels in (("factors", factors), ("attributes", attributes)):
        if labels is not None:
            _check(codes, labels, what)
    chosen = list(names) or [e.name for e in metrics if e.meta.get("arrays") and inputs.get(e.meta.get("needs"))
                              is not None]
    results: dict[str, dict[str, Any]] = {}
    for name in chosen:
        entry = metrics.get(name)
        arrays = entry.meta.get("arrays")
        if arrays is None:
            how = ("it samples from a dataset: score it with `benchbench run` or the Python API"
                   if entry.meta.get("sampling") else f"it needs {entry.meta.get('needs')}, not arrays")
            raise BenchbenchError(f"metric {name!r} cannot score arrays: {how}")
        labels = inputs.get(entry.meta.get("needs"))
        if labels is None:
            flag = "--factors" if entry.meta.get("needs") == "codes+factors" else "--attributes"
            raise BenchbenchError(f"metric {name!r} needs {flag}")
        settings = metric_settings(entry, cfg)
        res = arrays(np.asarray(codes), np.asarray(labels), settings, seed)
        results[name] = {"value": float(res.value), "extras": plain(res.extras),
                         "settings": {**asdict(settings), "seed": seed},
                         "higher_is_better": entry.meta.get("higher_is_better", True),
                         "label": entry.meta.get("label", name)}
    return results
