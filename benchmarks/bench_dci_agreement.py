"""Agreement of DCI mode "fast" with mode "exact" (sklearn GBT) on codes shaped like ours; prints the table.

Cases: the sanity codes of metrics.md §3 (ideal, mixed, duplicated, noisy; 6 or 7 or 10 dims) and, for
each code size D in --dims, four code kinds over Shapes3D's factors (10, 10, 10, 8, 4, 15):

* disentangled: dims 0-5 = factor / size + N(0, 0.05^2), the other D - 6 dims N(0, 1) noise;
* mixed: every dim a random linear mix of the six factors plus N(0, 0.1^2);
* rotated: the disentangled code times a random orthogonal D x D matrix;
* noise: N(0, 1) codes independent of the factors (the overfitting regime, where ties abound).

A row passes when |D_fast - D_exact| and |C_fast - C_exact| are at most 0.01 and both
informativeness gaps are at most 0.01. Exact DCI costs about 7,300 CPU s at 10,000 x 512, so exact
results are cached in --cache (JSON, keyed by case and sizes); --num-train sets the sample size and
--factor-sizes the factors of the shaped codes (exact's cost grows with the number of classes).

Measured (issue 15, shared 2-core box, sklearn 1.9.1): every row agrees, with gaps of rounding size only, since
mode fast reproduces sklearn's arithmetic wherever rounding decides a split (metrics/dci_sklearn.py):

* Shapes3D factors, 1,000 points, all four kinds at 10, 64, 192 and 512 dims, and the four sanity cases at 2,000
  points: 20/20, largest gap 6e-16 (both informativeness values equal); all four kinds at 10,000 x 10: 4/4,
  largest gap 2e-16; disentangled and noise at 10,000 x 64: 2/2, largest gap 2e-16 (exact 933 and 947 CPU s,
  fast 10.4 and 13.5 s).
* Factors (4, 4, 3), 1,000 points, 192 and 512 dims (near-separable codes of 48 distinct points, where the trees
  fit tiny residuals and many dims tie to rounding): 8/8, largest gap 9e-16. Before sklearn's arithmetic was
  reproduced (histogram sums deciding such ties) this variant failed 5/8 rows by 0.011 to 0.030.
* Exact cost 16 s (10-d), 73-76 s (64-d), 208-217 s (192-d) and 538-602 s (512-d) at 1,000 points, 155-161 s at
  10,000 x 10; fast 0.8 s, 2.4-2.7 s, 6.7-8.5 s, 19-22 s and 4.6-6.6 s.

The paper preset still uses exact, the reference; fast is its default on the quick and smoke presets.

    python benchmarks/bench_dci_agreement.py --num-train 1000 --dims 10,64 --threads 1
    python benchmarks/bench_dci_agreement.py --no-sanity --dims 192,512 --factor-sizes 4,4,3 --num-train 1000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchbench.metrics.dci import dci
from benchbench.metrics.utils import generate_batch_factor_code
from benchbench.threads import set_threads

SIZES = (10, 10, 10, 8, 4, 15)
TOL = 0.01
KINDS = ("disentangled", "mixed", "rotated", "noise")


class Source:
    """FactorSource over a factor grid with codes from ``code_fn(grid [n, K] float, sizes) -> [n, D]``."""

    def __init__(self, code_fn, sizes: tuple[int, ...] = SIZES) -> None:
        self.factor_sizes = sizes
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
        self.table = code_fn(grid.astype(np.float64), sizes)

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        return np.stack([random_state.randint(s, size=n) for s in self.factor_sizes], axis=1)

    def represent(self, factors: np.ndarray) -> np.ndarray:
        return self.table[np.ravel_multi_index(tuple(factors.T), self.factor_sizes)]


def sanity_code(name: str):
    """The sanity cases of tests/test_dci_fast.py (metrics.md §3)."""

    def ideal(grid):
        return grid / np.array(SIZES) + 0.01 * np.random.default_rng(1).normal(size=grid.shape)

    def fn(grid, sizes):
        z = ideal(grid)
        if name == "mixed":
            z[:, 0], z[:, 1] = (z[:, 0] + z[:, 1]) / np.sqrt(2), (z[:, 0] - z[:, 1]) / np.sqrt(2)
            z[:, 2], z[:, 3] = (z[:, 2] + z[:, 3]) / np.sqrt(2), (z[:, 2] - z[:, 3]) / np.sqrt(2)
        elif name == "duplicated":
            z = np.hstack([z, z[:, :1]])
        elif name == "noisy":
            rng = np.random.default_rng(2)
            z = grid / np.array(SIZES) + 0.05 * rng.normal(size=grid.shape)
            z = np.hstack([z, rng.normal(size=(len(grid), 4))])
        return z

    return fn


def shaped_code(kind: str, dims: int):
    """A D-dim code of one kind (module docstring); deterministic in (kind, dims)."""

    def fn(grid, sizes):
        rng = np.random.default_rng(1000 + dims)
        scaled = grid / np.array(sizes)
        if kind == "mixed":
            return scaled @ rng.normal(size=(len(sizes), dims)) + 0.1 * rng.normal(size=(len(grid), dims))
        if kind == "noise":
            return rng.normal(size=(len(grid), dims))
        signal = scaled + 0.05 * rng.normal(size=grid.shape)
        z = np.hstack([signal, rng.normal(size=(len(grid), dims - len(sizes)))])
        if kind == "rotated":
            q, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
            z = z @ q
        return z

    return fn


def draw(code_fn, num_train: int, sizes: tuple[int, ...] = SIZES) -> tuple[np.ndarray, ...]:
    source = Source(code_fn, sizes)
    rs = np.random.RandomState(0)
    return (*generate_batch_factor_code(source, num_train, rs), *generate_batch_factor_code(source, num_train // 2, rs))


def timed_dci(arrays, mode: str) -> tuple[dict, float]:
    cpu = time.process_time()
    out = dci(*arrays, mode=mode)
    return out, time.process_time() - cpu


KEYS = ("disentanglement", "completeness", "informativeness_train", "informativeness_test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=10_000, help="train points (test = half)")
    parser.add_argument("--dims", default="10,64,192,512")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--factor-sizes", default="10,10,10,8,4,15", help="factors of the shaped codes")
    parser.add_argument("--no-sanity", action="store_true", help="skip the sanity cases")
    parser.add_argument("--sanity-train", type=int, default=2000, help="train points of the sanity cases")
    parser.add_argument("--cache", type=Path, default=Path("dci_exact_cache.json"), help="exact results cache")
    parser.add_argument("--threads", type=int, default=None, help="thread budget (default: available cores)")
    args = parser.parse_args()
    set_threads(args.threads)
    cache = json.loads(args.cache.read_text()) if args.cache.exists() else {}
    sizes = tuple(int(x) for x in args.factor_sizes.split(","))
    tag = "" if sizes == SIZES else "/f" + "-".join(map(str, sizes))
    cases = [] if args.no_sanity else [(f"sanity/{n}", sanity_code(n), args.sanity_train, SIZES)
                                       for n in ("ideal", "mixed", "duplicated", "noisy")]
    for d in (int(x) for x in args.dims.split(",") if x):
        cases += [(f"{kind}/{d}{tag}", shaped_code(kind, d), args.num_train, sizes)
                  for kind in args.kinds.split(",") if kind]
    header = (f"{'case':<24} {'N':>6} {'D exact':>8} {'D fast':>8} {'dD':>8} {'C exact':>8} {'C fast':>8} {'dC':>8} "
              f"{'dI_tr':>8} {'dI_te':>8} {'exact CPU s':>11} {'fast CPU s':>10}  ok")
    print(header, flush=True)
    failures = 0
    largest = 0.0
    for name, code_fn, n, case_sizes in cases:
        arrays = draw(code_fn, n, case_sizes)
        key = f"{name}/n{n}"
        if key not in cache:
            out, cpu = timed_dci(arrays, "exact")
            cache[key] = {**{k: out[k] for k in KEYS}, "cpu_s": cpu}
            args.cache.write_text(json.dumps(cache, indent=1, sort_keys=True))
        exact = cache[key]
        fast, fast_cpu = timed_dci(arrays, "fast")
        gaps = {k: fast[k] - exact[k] for k in KEYS}
        ok = all(abs(v) <= TOL for v in gaps.values())
        failures += not ok
        largest = max(largest, *(abs(v) for v in gaps.values()))
        print(f"{name:<24} {n:>6} {exact['disentanglement']:8.4f} {fast['disentanglement']:8.4f} "
              f"{gaps['disentanglement']:+8.0e} {exact['completeness']:8.4f} {fast['completeness']:8.4f} "
              f"{gaps['completeness']:+8.0e} {gaps['informativeness_train']:+8.0e} "
              f"{gaps['informativeness_test']:+8.0e} {exact['cpu_s']:11.1f} {fast_cpu:10.1f}  "
              f"{'yes' if ok else 'NO'}", flush=True)
    print(f"{len(cases) - failures}/{len(cases)} cases within {TOL} (D, C, informativeness train and test); "
          f"largest gap {largest:.1e}")


if __name__ == "__main__":
    main()
