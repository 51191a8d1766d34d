"""Timings of TAD at the reference size (metrics.md §8, §11): 10,000 codes x 512 dims, 40 attributes.

Attributes have CelebA-like base rates (2% to 80%) and some are encoded, with noise, by a code dim, so
a few attributes are kept. Prints the time of ``tad()`` for each AUROC variant, and the time of the
reference-style computation (one ``sklearn.metrics.roc_auc_score`` per sign, attribute and dim)
extrapolated from a few dims.

    python benchmarks/bench_tad.py --rows 10000 --dims 512
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from benchbench.metrics.tad import VARIANTS, tad


def make_data(rows: int, dims: int, num_attrs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes [rows, dims] (float32 encoder output cast to float64) and binary attributes [rows, num_attrs]."""
    rng = np.random.default_rng(seed)
    rates = np.linspace(0.02, 0.8, num_attrs)
    attrs = (rng.random((rows, num_attrs)) < rates).astype(np.int64)
    codes = rng.normal(size=(rows, dims))
    for a in range(0, num_attrs, 3):  # every third attribute drives one dim
        codes[:, a % dims] += 1.5 * attrs[:, a]
    return codes.astype(np.float32).astype(np.float64), attrs


def sklearn_seconds(codes: np.ndarray, attrs: np.ndarray, num_dims: int = 4) -> float:
    """Reference-style exact AUROC (two roc_auc_score calls per pair) on a few dims, scaled to all dims."""
    start = time.perf_counter()
    for j in range(num_dims):
        for a in range(attrs.shape[1]):
            max(roc_auc_score(attrs[:, a], codes[:, j]), roc_auc_score(attrs[:, a], -codes[:, j]))
    return (time.perf_counter() - start) * codes.shape[1] / num_dims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--attrs", type=int, default=40)
    args = parser.parse_args()
    codes, attrs = make_data(args.rows, args.dims, args.attrs)
    print(f"TAD on {args.rows:,} x {args.dims} codes, {args.attrs} attributes")
    for variant in VARIANTS:
        start = time.perf_counter()
        out = tad(codes, attrs, variant=variant)
        seconds = time.perf_counter() - start
        print(f"  {variant:<8} {seconds:7.2f} s   TAD {out['tad']:.4f}  ATTRS {out['attrs']}")
    print(f"  sklearn roc_auc_score loop (exact, extrapolated): {sklearn_seconds(codes, attrs):7.1f} s")


if __name__ == "__main__":
    main()
