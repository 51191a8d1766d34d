"""Timings of the factor metrics at reference sizes (metrics.md §11) on a synthetic code table.

10,000 codes x 10 dims, 6 factors of sizes (10, 10, 10, 8, 4, 15) (Shapes3D's); the representation is a
row lookup in a 480,000-row code table (code-table mode, metrics.md §0). Prints, for each metric, our
time and, where cheap enough, the time of the plain reference-style computation plus a parity check.

    python benchmarks/bench_metrics.py --dci-points 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import mutual_info_score

from benchbench.metrics.dci import dci
from benchbench.metrics.factor_vae import factor_vae_score
from benchbench.metrics.mig import mig
from benchbench.metrics.utils import generate_batch_factor_code, histogram_discretize

SIZES = (10, 10, 10, 8, 4, 15)


class CodeTable:
    """FactorSource over a code table [prod(SIZES), 10]: 5 noisy, partly mixed factor dims + 5 noise dims."""

    def __init__(self, seed: int = 0) -> None:
        self.factor_sizes = SIZES
        rng = np.random.default_rng(seed)
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in SIZES], indexing="ij"), -1).reshape(
            -1, len(SIZES)
        )
        z = grid / np.array(SIZES) + 0.05 * rng.normal(size=grid.shape)
        z[:, 0], z[:, 1] = z[:, 0] + 0.8 * z[:, 1], z[:, 1] - 0.8 * z[:, 0]
        z[:, 5] = 0.5 * rng.normal(size=len(grid))  # factor 5 is not encoded: FactorVAE < 1
        self.table = np.hstack([z, rng.normal(size=(len(grid), 4))])

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        return np.stack([random_state.randint(s, size=n) for s in SIZES], axis=1)

    def represent(self, factors: np.ndarray) -> np.ndarray:
        return self.table[np.ravel_multi_index(tuple(factors.T), SIZES)]


def mig_sklearn_loop(codes: np.ndarray, factors: np.ndarray) -> float:
    """MIG the reference way: histogram discretiser, then one sklearn call per (dim, factor) pair."""
    b = histogram_discretize(codes)
    m = np.array([[mutual_info_score(y, c) for y in factors.T] for c in b.T])
    h = np.array([mutual_info_score(y, y) for y in factors.T])
    s = np.sort(m, axis=0)[::-1]
    return float(np.mean((s[0] - s[1]) / h))


def factor_vae_loop(source: CodeTable, seed: int) -> float:
    """FactorVAE eval accuracy the reference way: one represent call and one argmin per vote."""
    rs = np.random.RandomState(seed)
    gv = np.var(source.represent(source.sample_factors(10_000, rs)), axis=0, ddof=1)
    active = np.sqrt(gv) >= 0.05

    def votes(n: int) -> np.ndarray:
        v = np.zeros((len(SIZES), len(gv)), dtype=np.int64)
        for _ in range(n):
            k = rs.randint(len(SIZES))
            f = source.sample_factors(64, rs)
            f[:, k] = f[0, k]
            lv = np.var(source.represent(f), axis=0, ddof=1)
            v[k, np.argmin(lv[active] / gv[active])] += 1
        return v

    c = np.argmax(votes(10_000), axis=0)
    ev = votes(5_000)
    return float(ev[c, np.arange(len(c))].sum() / ev.sum())


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dci-points", type=int, default=10_000, help="DCI train points (test = half).")
    parser.add_argument("--skip-dci", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = CodeTable()
    codes, factors = generate_batch_factor_code(source, 10_000, args.seed)

    (ours, _), t_ours = timed(mig, codes, factors)
    ref, t_ref = timed(mig_sklearn_loop, codes, factors)
    print(
        f"MIG       ours {t_ours * 1e3:8.1f} ms | sklearn loop {t_ref * 1e3:8.1f} ms | "
        f"values {ours:.12f} vs {ref:.12f} (|diff| {abs(ours - ref):.1e})"
    )

    out, t_ours = timed(factor_vae_score, source, args.seed)
    ref, t_ref = timed(factor_vae_loop, source, args.seed)
    print(
        f"FactorVAE ours {t_ours:8.2f} s  | reference loop {t_ref:8.2f} s | "
        f"eval accuracy {out['eval_accuracy']:.6f} vs {ref:.6f}"
    )

    if not args.skip_dci:
        n = args.dci_points
        rs = np.random.RandomState(args.seed)
        ztr, ytr = generate_batch_factor_code(source, n, rs)
        zte, yte = generate_batch_factor_code(source, n // 2, rs)
        res, t = timed(dci, ztr, ytr, zte, yte)
        print(
            f"DCI exact {t:8.1f} s at {n} train / {n // 2} test points | D {res['disentanglement']:.4f} "
            f"C {res['completeness']:.4f} I_test {res['informativeness_test']:.4f}"
        )


if __name__ == "__main__":
    main()
