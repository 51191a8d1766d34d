"""Realistic run folders for report tests: every built-in method, several seeds, real configs and provenance.

The records have the shape ``benchbench run`` writes (config.json with the resolved config and provenance,
result.json with metrics, settings, extras, figures); values are plausible quick-preset numbers with seeded noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchbench import store
from benchbench.config import config_hash, resolve, to_dict
from benchbench.registry import metrics as metric_registry

# Plausible means per method (FactorVAE, MIG, DCI, SAP, modularity, BetaVAE score, FID, PMG).
MEANS = {
    "betavae": (0.62, 0.21, 0.30, 0.09, 0.84, 0.81, 145.0, None),
    "infovae": (0.55, 0.14, 0.22, 0.06, 0.80, 0.74, 160.0, None),
    "random": (0.31, 0.02, 0.04, 0.01, 0.55, 0.40, 310.0, None),
    "diffae": (0.70, 0.25, 0.38, 0.11, 0.86, 0.85, 95.0, None),
    "pdae": (0.66, 0.22, 0.33, 0.10, 0.85, 0.83, 101.0, 0.0083),
    "disdiff": (0.74, 0.28, 0.41, 0.12, 0.88, 0.86, 120.0, None),
    "infodiffusion": (0.68, 0.24, 0.35, 0.10, 0.85, 0.84, 99.0, None),
}
NAMES = ("factorvae", "mig", "dci", "sap", "modularity", "betavae_score", "fid", "pmg")


def _png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (24, 48, 3), dtype=np.uint8)).save(path)


def write_run(out: Path, method: str, seed: int, preset: str = "quick", dataset: str = "shapes3d-synth",
              overrides: tuple[str, ...] = (), figures: bool = False, scale: float = 1.0,
              extra: dict[str, Any] | None = None) -> Path:
    """One complete run folder as ``benchbench run`` writes it; returns the seed folder."""
    cfg = resolve(method, dataset, preset, seed, list(overrides))
    h = config_hash(cfg)
    d = store.run_dir(out, dataset, method, preset, h, seed)
    header = {"schema": 1, "method": method, "dataset": dataset, "preset": preset, "config_hash": h, "seed": seed,
              "source": "synthetic" if dataset.endswith("-synth") else "real"}
    prov = {"git": {"commit": "0123456789abcdef0123", "dirty": False},
            "versions": {"python": "3.11.2", "benchbench": "0.1.0", "torch": "2.5.1"}, "platform": "Linux-x86_64"}
    store.atomic_write_json(d / "config.json", {**header, "config": to_dict(cfg), "provenance": prov})
    rng = np.random.default_rng(1000 * seed + len(method))
    metrics = {}
    for name, mean in zip(NAMES, MEANS[method]):
        if mean is None:
            continue
        noise = rng.normal(0, 0.03 * mean)
        value = float(mean * (scale if name not in ("fid", "pmg") else 1.0) + noise)
        settings = {**to_dict(getattr(cfg.eval, name)), "seed": seed}
        meta = metric_registry.get(name).meta
        extras = {"num_active_dims": 10} if name == "factorvae" else {}
        metrics[name] = {"value": value, "settings": settings, "extras": extras, "label": meta.get("label", name),
                         "higher_is_better": bool(meta.get("higher_is_better", True)), "needs": meta.get("needs")}
    names = []
    if figures:
        for stem in ("reconstructions", "traversals", "samples") + (("pmg",) if "pmg" in metrics else ()):
            _png(d / f"{stem}.png", seed)
            names.append(f"{stem}.png")
    store.atomic_write_json(d / "result.json", {**header, "status": "complete", "metrics": metrics, "missing": {},
                                                "figures": names, "provenance": prov, "device": "cpu",
                                                "timing": {"train_seconds": 12.5, "eval_seconds": 3.1},
                                                **(extra or {})})
    return d


def write_runs(out: Path, presets: tuple[str, ...] = ("quick",), seeds: int = 3, figures: bool = False,
               methods: tuple[str, ...] = tuple(MEANS), dataset: str = "shapes3d-synth") -> list[Path]:
    """Every method of ``methods`` x preset x seed; returns the seed folders."""
    return [write_run(out, m, s, p, dataset, figures=figures) for p in presets for m in methods for s in range(seeds)]
