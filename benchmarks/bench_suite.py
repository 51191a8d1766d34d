"""Time the whole disentanglement suite for one model at reference sizes and code sizes 10, 64, 192, 512.

The model is a lookup (disentanglement_lib's code-table mode) over the 480,000 Shapes3D grid points:
codes = (factor / size + 0.05 noise) @ M + 0.05 (noise16 @ N), with M [6, D] and N [16, D] fixed random
matrices, so every dim mixes the factors and ``represent`` costs nothing next to the metrics. Each metric
runs at its metrics.md defaults (10,000 train / 5,000 test points) in this one process; CPU seconds
(all threads of the process) are printed beside wall seconds, since on a shared machine wall time
says little. When ``disentanglement_lib`` is importable, its metrics run on the same source and a
reference column and the CPU ratio are added; otherwise that column is skipped (it needs TensorFlow 1
and gin, which are not installable everywhere).

DCI fast alone (issue 15, ``--metrics dci --threads 1``, shared 2-core box), CPU s at D = 10, 64, 192,
512: 5.0, 18.0, 50.0, 122.3 before the rewrite of its kernels, 4.2, 9.9, 25.0, 67.3 after (timed again
by a script, one after the other: 124.2 and 61.8 s at D = 512); D, C, both informativeness values and
the importance matrices are bitwise the same before and after at all four sizes.

    python benchmarks/bench_suite.py --dims 10,64 --dci-mode fast --threads 2
    python benchmarks/bench_suite.py --dims 512 --metrics dci           # DCI fast alone at 10k x 512
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from benchbench.metrics.settings import EvalConfig
from benchbench.registry import metrics
from benchbench.threads import set_threads

SIZES = (10, 10, 10, 8, 4, 15)
SUITE = ("factorvae", "mig", "dci", "sap", "modularity", "betavae_score")


class MixedCodes:
    """FactorSource: D-dim codes mixing the six factors, computed per lookup (no [480,000, D] table)."""

    def __init__(self, dims: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.factor_sizes = SIZES
        n = int(np.prod(SIZES))
        grid = np.stack(np.unravel_index(np.arange(n), SIZES), axis=1) / np.array(SIZES)
        self.base = grid + 0.05 * rng.normal(size=grid.shape)  # [480000, 6]
        self.noise = rng.normal(size=(n, 16))  # [480000, 16]
        self.mix = np.eye(len(SIZES), dims) + 0.3 * rng.normal(size=(len(SIZES), dims))  # [6, D]
        self.noise_mix = 0.05 * rng.normal(size=(16, dims))  # [16, D]

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        return np.stack([random_state.randint(s, size=n) for s in SIZES], axis=1)

    def represent(self, factors: np.ndarray) -> np.ndarray:
        idx = np.ravel_multi_index(tuple(np.asarray(factors).T), SIZES)
        return self.base[idx] @ self.mix + self.noise[idx] @ self.noise_mix


def reference_suite():
    """disentanglement_lib's metric functions by our names, or None when it is not importable."""
    try:
        from disentanglement_lib.evaluation.metrics import (
            beta_vae,
            dci,
            factor_vae,
            mig,
            modularity_explicitness,
            sap_score,
        )
    except Exception:  # noqa: BLE001 - TensorFlow 1 / gin missing: no reference column
        return None
    return {"factorvae": factor_vae.compute_factor_vae, "mig": mig.compute_mig, "dci": dci.compute_dci,
            "sap": sap_score.compute_sap, "modularity": modularity_explicitness.compute_modularity_explicitness,
            "betavae_score": beta_vae.compute_beta_vae_sklearn}


def timed(fn, *args):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="10,64,192,512")
    parser.add_argument("--metrics", default=",".join(SUITE))
    parser.add_argument("--dci-mode", default="fast", choices=["fast", "exact"])
    parser.add_argument("--threads", type=int, default=None, help="thread budget (default: available cores)")
    args = parser.parse_args()
    print(f"threads: {set_threads(args.threads)}")
    cfg = EvalConfig()
    cfg = replace(cfg, dci=replace(cfg.dci, mode=args.dci_mode))
    reference = reference_suite()
    if reference is None:
        print("disentanglement_lib is not importable here (needs TensorFlow 1 and gin): reference column skipped")
    head = f"{'D':>4} {'metric':<14} {'value':>8} {'CPU s':>9} {'wall s':>9}"
    print(head + ("  ref CPU s  ratio" if reference else ""))
    for dims in (int(d) for d in args.dims.split(",") if d):
        source = MixedCodes(dims)
        total_cpu = total_wall = 0.0
        for name in args.metrics.split(","):
            entry = metrics.get(name)
            res, cpu, wall = timed(entry.obj, source, getattr(cfg, entry.meta["settings_key"]), 0)
            total_cpu, total_wall = total_cpu + cpu, total_wall + wall
            line = f"{dims:>4} {name:<14} {res.value:8.4f} {cpu:9.1f} {wall:9.1f}"
            if reference:
                ref_fn = reference[name]
                _, ref_cpu, _ = timed(ref_fn, source, lambda x: x, np.random.RandomState(0))  # noqa: B023
                line += f"  {ref_cpu:9.1f}  {ref_cpu / max(cpu, 1e-9):5.1f}x"
            print(line, flush=True)
        print(f"{dims:>4} {'suite':<14} {'':8} {total_cpu:9.1f} {total_wall:9.1f}  (DCI {args.dci_mode})", flush=True)


if __name__ == "__main__":
    main()
