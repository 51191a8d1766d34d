"""Timings of the factor metrics at reference sizes (metrics.md §11) on a synthetic code table.

10,000 codes x 10 dims, 6 factors of sizes (10, 10, 10, 8, 4, 15) (Shapes3D's); the representation is a
row lookup in a 480,000-row code table (code-table mode, metrics.md §0). Prints, for each metric, our
time and, where cheap enough, the time of the plain reference-style computation plus a parity check.

    python benchmarks/bench_metrics.py --dci-points 2000  # --skip-dci, --skip-extra (SAP, modularity, BetaVAE)
    python benchmarks/bench_metrics.py --skip-dci --skip-extra --dci-modes  # DCI fast vs exact, 10,000 points
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from benchbench.metrics.betavae_score import betavae_score
from benchbench.metrics.dci import dci
from benchbench.metrics.factor_vae import factor_vae_score
from benchbench.metrics.mig import mig
from benchbench.metrics.modularity import explicitness, modularity
from benchbench.metrics.sap import sap
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


def sap_loop(z: np.ndarray, y: np.ndarray, zt: np.ndarray, yt: np.ndarray) -> float:
    """Discrete SAP the reference way: one LinearSVC per (dim, factor) pair, serially."""
    s = np.zeros((z.shape[1], y.shape[1]))
    for i in range(z.shape[1]):
        for k in range(y.shape[1]):
            clf = LinearSVC(C=0.01, class_weight="balanced").fit(z[:, i : i + 1], y[:, k])
            s[i, k] = np.mean(clf.predict(zt[:, i : i + 1]) == yt[:, k])
    top = np.sort(s, axis=0)
    return float(np.mean(top[-1] - top[-2]))


def modularity_explicitness_loop(z: np.ndarray, y: np.ndarray, zt: np.ndarray, yt: np.ndarray) -> tuple:
    """Modularity (sklearn MI per pair) and test explicitness (one-hot + roc_auc_score) the reference way."""
    b = histogram_discretize(z)
    m2 = np.array([[mutual_info_score(f, c) for f in y.T] for c in b.T]) ** 2
    top = m2.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = np.where(top > 0, 1 - (m2.sum(axis=1) - top) / (top * (m2.shape[1] - 1)), 0.0)
    mean, std = z.mean(axis=0), z.std(axis=0)
    x, xt = (z - mean) / std, (zt - mean) / std
    aucs = []
    for k in range(y.shape[1]):
        clf = LogisticRegression().fit(x, y[:, k])
        aucs.append(roc_auc_score(MultiLabelBinarizer().fit_transform(yt[:, k : k + 1]), clf.predict_proba(xt)))
    return float(np.mean(per_code)), float(np.mean(aucs))


def betavae_loop(source: CodeTable, seed: int) -> float:
    """BetaVAE eval accuracy the reference way: two represent calls per point."""
    rs = np.random.RandomState(seed)

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        x, labels = np.zeros((n, source.table.shape[1])), np.zeros(n, dtype=np.int64)
        for p in range(n):
            labels[p] = rs.randint(len(SIZES))
            f1, f2 = source.sample_factors(64, rs), source.sample_factors(64, rs)
            f2[:, labels[p]] = f1[:, labels[p]]
            x[p] = np.mean(np.abs(source.represent(f1) - source.represent(f2)), axis=0)
        return x, labels

    model = LogisticRegression(random_state=rs).fit(*points(10_000))
    return float(model.score(*points(5_000)))


def bench_extra(source: CodeTable, seed: int) -> None:
    """SAP, modularity + explicitness and BetaVAE score at reference sizes (10,000 train / 5,000 test)."""
    rs = np.random.RandomState(seed)
    ztr, ytr = generate_batch_factor_code(source, 10_000, rs)
    zte, yte = generate_batch_factor_code(source, 5_000, rs)

    (ours, _), t_ours = timed(sap, ztr, ytr, zte, yte)
    ref, t_ref = timed(sap_loop, ztr, ytr, zte, yte)
    (cont, _), t_cont = timed(sap, ztr, ytr, zte, yte, continuous_factors=True)
    print(
        f"SAP       ours {t_ours:8.2f} s  | serial loop {t_ref:8.2f} s | values {ours:.12f} vs {ref:.12f} | "
        f"continuous {cont:.6f} in {t_cont * 1e3:.1f} ms"
    )

    (mod, _), t_mod = timed(modularity, ztr, ytr)
    expl, t_expl = timed(explicitness, ztr, ytr, zte, yte)
    (ref_mod, ref_expl), t_ref = timed(modularity_explicitness_loop, ztr, ytr, zte, yte)
    print(
        f"Modularity ours {t_mod * 1e3:6.1f} ms + explicitness {t_expl:6.2f} s | reference loop {t_ref:6.2f} s | "
        f"modularity {mod:.12f} vs {ref_mod:.12f}, explicitness_test {expl['explicitness_test']:.12f} "
        f"vs {ref_expl:.12f}"
    )

    out, t_ours = timed(betavae_score, source, seed)
    ref, t_ref = timed(betavae_loop, source, seed)
    print(
        f"BetaVAE   ours {t_ours:8.2f} s  | reference loop {t_ref:8.2f} s | "
        f"eval accuracy {out['eval_accuracy']:.6f} vs {ref:.6f} (train {out['train_accuracy']:.6f})"
    )


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_dci_modes(source: CodeTable, seed: int, num_train: int) -> None:
    """DCI mode "fast" (dci_trees) vs "exact" (sklearn GBT) on one draw: seconds, D, C, I_test and the gaps.

    Both modes run as ``dci`` does by default (threads over factors). CPU seconds (all threads, this
    process) are the fairer comparison on a shared machine; wall seconds are printed beside them.
    """
    rs = np.random.RandomState(seed)
    ztr, ytr = generate_batch_factor_code(source, num_train, rs)
    zte, yte = generate_batch_factor_code(source, num_train // 2, rs)
    runs = {}
    for mode in ("fast", "exact"):
        cpu, wall = time.process_time(), time.perf_counter()
        out = dci(ztr, ytr, zte, yte, mode=mode)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        runs[mode] = (out, wall, cpu)
        print(
            f"DCI {mode:5s} {wall:7.1f} s wall {cpu:7.1f} s CPU at {num_train} train / {num_train // 2} test | "
            f"D {out['disentanglement']:.4f} C {out['completeness']:.4f} I_test {out['informativeness_test']:.4f}",
            flush=True,
        )
    (fast, f_wall, f_cpu), (exact, e_wall, e_cpu) = runs["fast"], runs["exact"]
    print(
        f"DCI fast/exact: {e_wall / f_wall:.1f}x faster (wall), {e_cpu / f_cpu:.1f}x (CPU) | "
        f"D {fast['disentanglement'] - exact['disentanglement']:+.4f} "
        f"C {fast['completeness'] - exact['completeness']:+.4f} "
        f"I_test {fast['informativeness_test'] - exact['informativeness_test']:+.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dci-points", type=int, default=10_000, help="DCI train points (test = half).")
    parser.add_argument("--skip-dci", action="store_true")
    parser.add_argument("--skip-extra", action="store_true", help="Skip SAP, modularity/explicitness, BetaVAE.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dci-modes", action="store_true", help="Also time DCI fast vs exact at --dci-points (and compare D, C)."
    )
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

    if not args.skip_extra:
        bench_extra(source, args.seed)

    if args.dci_modes:
        bench_dci_modes(source, args.seed, args.dci_points)


if __name__ == "__main__":
    main()
