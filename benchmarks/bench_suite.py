"""Time the whole disentanglement suite for one model at reference sizes (metrics.md defaults).

The model is a code table (disentanglement_lib's code-table mode): 480,000 Shapes3D grid points, 10 code
dims mixing the factors with noise, so ``represent`` is a row lookup and the timings are the metrics' own.

    python benchmarks/bench_suite.py [--dci-mode fast|exact] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from benchbench.metrics.settings import EvalConfig
from benchbench.registry import metrics

SIZES = (10, 10, 10, 8, 4, 15)


class CodeTable:
    """A FactorSource whose representation is a lookup into precomputed codes [480000, D]."""

    def __init__(self, dims: int = 10, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        grid = np.stack(np.unravel_index(np.arange(int(np.prod(SIZES))), SIZES), axis=1).astype(np.float64)
        mix = np.eye(len(SIZES), dims) + 0.2 * rng.normal(size=(len(SIZES), dims))
        self.table = grid / np.array(SIZES) @ mix + 0.05 * rng.normal(size=(len(grid), dims))
        self.factor_sizes = SIZES

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        return np.stack([random_state.randint(s, size=n) for s in SIZES], axis=1)

    def represent(self, factors: np.ndarray) -> np.ndarray:
        return self.table[np.ravel_multi_index(tuple(factors.T), SIZES)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dci-mode", default="fast", choices=["fast", "exact"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = CodeTable()
    cfg = EvalConfig()
    cfg = replace(cfg, dci=replace(cfg.dci, mode=args.dci_mode))
    total = 0.0
    for name in ("factorvae", "mig", "dci", "sap", "modularity", "betavae_score"):
        entry = metrics.get(name)
        t0 = time.perf_counter()
        res = entry.obj(source, getattr(cfg, entry.meta["settings_key"]), 0)
        dt = time.perf_counter() - t0
        total += dt
        print(f"{name:<14} {res.value:8.4f}  {dt:7.2f} s")
    print(f"{'suite':<14} {'':8}  {total:7.2f} s  (DCI mode {args.dci_mode}, reference sizes)")


if __name__ == "__main__":
    main()
