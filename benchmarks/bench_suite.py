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
from benchbench.metrics.table import CodeTable
from benchbench.registry import metrics

SIZES = (10, 10, 10, 8, 4, 15)


def code_table(dims: int = 10, seed: int = 0) -> CodeTable:
    """480,000 Shapes3D grid points mapped to ``dims`` codes mixing the factors, plus noise."""
    rng = np.random.default_rng(seed)
    mix = np.eye(len(SIZES), dims) + 0.2 * rng.normal(size=(len(SIZES), dims))
    return CodeTable.from_function(
        SIZES, lambda grid: grid / np.array(SIZES) @ mix + 0.05 * rng.normal(size=(len(grid), dims))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dci-mode", default="fast", choices=["fast", "exact"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = code_table()
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
