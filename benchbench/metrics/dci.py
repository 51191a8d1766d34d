"""DCI: disentanglement, completeness and informativeness from per-factor gradient-boosted trees.

Reference: Eastwood and Williams, "A Framework for the Quantitative Evaluation of Disentangled
Representations", ICLR 2018, https://openreview.net/forum?id=By-7dz-AZ (Sec. 2), in the variant of
google-research/disentanglement_lib (``evaluation/metrics/dci.py``; metrics.md §3).

For every factor k a boosted-tree classifier predicts y_k from all codes; its importances form column k
of R [D, K]. With ``P_ik = R_ik / sum_k R_ik`` and ``P~_ik = R_ik / sum_i R_ik`` (after adding 1e-11 to
every entry, as the reference does):

    D = sum_i rho_i (1 - H_K(P_i.)),  rho_i = sum_k R_ik / sum R
    C = sum_k w_k (1 - H_D(P~_.k)),   w_k = sum_i R_ik / sum R

(entropies in base K and D; uniform weights when R is all zero). Informativeness is the mean
classification *accuracy* over factors (train and test), despite the name.

Two modes (metrics.md §3, §11), recorded with every number:

* ``exact`` (the reference; default of the ``paper`` preset): sklearn ``GradientBoostingClassifier``
  with library defaults and ``random_state`` fixed; R = its impurity importances.
* ``fast`` (default of the ``quick`` and ``smoke`` presets): the same boosting (100 rounds, learning
  rate 0.1, depth-3 squared-error trees on the negative log-loss gradient, one tree per class per
  round, one for a binary factor, Newton leaf values) grown by ``dci_trees``: histograms over 128
  quantile bins per code dim give the gain of every bin-edge split, and only bins whose interior could
  hold a better split (a bound on the gain says so) are rescanned row by row. The dims of every node
  are visited in the order sklearn's splitter draws them from ``random_state`` (its xorshift stream and
  Fisher-Yates bookkeeping), and every step whose rounding can decide between splits is done in
  sklearn's own arithmetic (``dci_sklearn``: its gradients, leaf values, sample order and running sums,
  for the splits within rounding of the best). The result is sklearn's model bit for bit: equal
  decision values and importances equal to 1e-13 on every case checked (``tests/test_dci_sklearn.py``;
  ``benchmarks/bench_dci_agreement.py`` prints the agreement of D, C and informativeness on the sanity
  cases and on 10- to 512-d codes). The one known exception: rows with equal values of a dim but
  different gradients are summed in row order here and in introsort's order there, which can move a
  tie decided by the last bit (continuous codes almost never have such rows).
  At 10,000 train / 5,000 test points x 512 dims with Shapes3D's factor sizes it takes about
  70 CPU s on one core (``dci_trees`` gives the cost breakdown; ``benchmarks/bench_suite.py``).
  Fast numbers are still labelled with their mode and never averaged or ranked with exact ones.

Exact mode runs the K per-factor fits in threads (sklearn's tree builder releases the GIL), the
factor with the most trees per round first, so the longest fit never starts last.
"""

from __future__ import annotations

from typing import Any

import joblib
import numba
import numpy as np
import scipy.stats
import sklearn
from sklearn.ensemble import GradientBoostingClassifier

from benchbench.errors import ConfigError, MetricInputError
from benchbench.metrics import dci_sklearn, dci_trees
from benchbench.metrics.base import FactorSource, MetricResult
from benchbench.metrics.settings import DCISettings
from benchbench.metrics.utils import (
    as_random_state,
    check_codes_factors,
    generate_batch_factor_code,
    shuffle_split,
)
from benchbench.registry import register_metric
from benchbench.threads import thread_count

MODES = ("exact", "fast")

# sklearn GradientBoostingClassifier defaults that mode "fast" reproduces.
_ROUNDS = 100
_LEARNING_RATE = 0.1
# Histogram bins per code dim in mode "fast". Bins only decide which splits are scored from a bin edge
# and which by a row-by-row rescan (splits within rounding of the best are rescored in sklearn's
# arithmetic either way), so the trees do not depend on them. On 10,000 x 512 codes 64 and 128 bins were
# fastest, 32 and 256 about 20% slower (measured before issue 15's rewrite of the kernels).
FAST_BINS = 128


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """Disentanglement and completeness of an importance matrix (reference formulas, +1e-11 smoothing).

    Args:
        importance: [D, K] non-negative importances R (code dim i, factor k), D >= 2, K >= 2.
    Returns:
        (disentanglement, completeness).

    Example:
        >>> [round(v, 6) for v in dci_from_importance(np.eye(3))]
        [1.0, 1.0]
    """
    r = np.asarray(importance, dtype=np.float64)
    num_codes, num_factors = r.shape
    per_code = 1.0 - scipy.stats.entropy(r + 1e-11, base=num_factors, axis=1)  # [D]
    per_factor = 1.0 - scipy.stats.entropy(r + 1e-11, base=num_codes, axis=0)  # [K]
    weights = r if r.sum() > 0 else np.ones_like(r)  # all-zero R: uniform weights
    code_weight = weights.sum(axis=1) / weights.sum()
    factor_weight = weights.sum(axis=0) / weights.sum()
    return float(np.sum(per_code * code_weight)), float(np.sum(per_factor * factor_weight))


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown DCI mode {mode!r}; choose one of {', '.join(MODES)}")


def _fit_factor(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int
) -> tuple[np.ndarray, float, float]:
    """One factor: |importances| [D], train accuracy, test accuracy of a default GBT classifier."""
    model = GradientBoostingClassifier(random_state=seed)
    model.fit(x_train, y_train)
    train_acc = float(np.mean(model.predict(x_train) == y_train))
    test_acc = float(np.mean(model.predict(x_test) == y_test))
    return np.abs(model.feature_importances_), train_acc, test_acc


def _fit_factor_fast(
    prepared: tuple[np.ndarray, ...], y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int,
) -> tuple[np.ndarray, float, float]:
    """One factor with ``dci_trees``: importances [D] (normalised), train and test accuracy.

    Args:
        prepared: ``dci_trees.prepare(x_train)`` (shared by the factors).
        y_train: [N] factor values; x_test: [M, D] float32 codes; y_test: [M] factor values.
        seed: sklearn's ``random_state``: the trees draw their dim orders as sklearn's do from it.
    """
    classes, y = np.unique(y_train, return_inverse=True)
    trees = 1 if len(classes) == 2 else len(classes)
    y = y.astype(np.int64)
    importance, raw, raw_test = dci_trees.boost(
        *prepared, y, len(classes), dci_sklearn.init_raw(y, len(classes)), x_test, _ROUNDS, _LEARNING_RATE,
        dci_trees.tree_seeds(seed, _ROUNDS * trees),
    )
    total = importance.sum()
    importance = importance / total if total > 0 else np.zeros_like(importance)

    def predict(raw_scores: np.ndarray) -> np.ndarray:
        index = (raw_scores[:, 0] > 0).astype(np.int64) if raw_scores.shape[1] == 1 else np.argmax(raw_scores, 1)
        return classes[index]

    train_acc = float(np.mean(predict(raw) == y_train))
    test_acc = float(np.mean(predict(raw_test) == y_test))
    return importance, train_acc, test_acc


def _trees_per_round(y: np.ndarray) -> int:
    """Trees sklearn grows per boosting round for one factor: 1 for two classes, else the class count."""
    n = len(np.unique(y))
    return 1 if n == 2 else n


def _run_longest_first(fit, args: list[tuple], costs: list[int], jobs: int) -> list:
    """``[fit(*a) for a in args]`` on ``jobs`` threads, the costliest first (results in the given order).

    joblib hands tasks to idle workers in submission order, so submitting by descending cost is the
    longest-processing-time-first schedule: the longest fit never starts last.
    """
    if jobs <= 1:
        return [fit(*a) for a in args]
    order = sorted(range(len(args)), key=lambda i: -costs[i])
    done = joblib.Parallel(n_jobs=jobs, prefer="threads")(joblib.delayed(fit)(*args[i]) for i in order)
    out: list = [None] * len(args)
    for i, res in zip(order, done):
        out[i] = res
    return out


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    mode: str = "exact",
    random_state: int = 0,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """DCI scores of codes against factors (metrics.md §3).

    Args:
        codes_train: [N, D] codes used to fit the K classifiers, D >= 2.
        factors_train: [N, K] integer factors, K >= 2, each with at least two values.
        codes_test: [M, D] held-out codes.
        factors_test: [M, K] held-out factors.
        mode: "exact" (sklearn GradientBoostingClassifier, the reference) or "fast" (the same model,
            bit for bit on every case checked, from histograms; still never mixed with exact numbers; see
            the module docstring).
        random_state: ``random_state`` of every classifier (the reference leaves it unset); in mode
            "fast" the same seed of the same dim-order stream.
        n_jobs: parallel fits (threads, most trees first); None = min(K, ``threads.thread_count()``),
            1 = serial. Results do not depend on it.
    Returns:
        dict with disentanglement, completeness, informativeness_train, informativeness_test
        (mean accuracies) and importance [D, K].
    """
    _check_mode(mode)
    x_train, y_train = check_codes_factors(codes_train, factors_train, what="DCI (train): ")
    x_test, y_test = check_codes_factors(
        codes_test, factors_test, min_samples=1, require_varying=False, what="DCI (test): "
    )
    num_codes, num_factors = x_train.shape[1], y_train.shape[1]
    if num_factors < 2:
        raise MetricInputError(f"DCI: needs at least 2 factors (entropy base K), got {num_factors}")
    if num_codes < 2:
        raise MetricInputError(f"DCI: needs at least 2 code dims (entropy base D), got {num_codes}")
    if x_test.shape[1] != num_codes or y_test.shape[1] != num_factors:
        raise MetricInputError(
            f"DCI: train is [N, {num_codes}] x [N, {num_factors}] but test is "
            f"{list(x_test.shape)} x {list(y_test.shape)}"
        )
    jobs = min(num_factors, thread_count()) if n_jobs is None else n_jobs
    costs = [_trees_per_round(y_train[:, k]) for k in range(num_factors)]
    if mode == "exact":
        args = [(x_train, y_train[:, k], x_test, y_test[:, k], random_state) for k in range(num_factors)]
        fits = _run_longest_first(_fit_factor, args, costs, jobs)
    else:  # sklearn's trees see float32 codes; so do these
        prepared = dci_trees.prepare(x_train, FAST_BINS)
        x_test32 = np.ascontiguousarray(x_test, dtype=np.float32)
        args = [(prepared, y_train[:, k], x_test32, y_test[:, k], random_state) for k in range(num_factors)]
        fits = _run_longest_first(_fit_factor_fast, args, costs, jobs)
    importance = np.stack([f[0] for f in fits], axis=1)  # [D, K]
    disentanglement, completeness = dci_from_importance(importance)
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness_train": float(np.mean([f[1] for f in fits])),
        "informativeness_test": float(np.mean([f[2] for f in fits])),
        "importance": importance,
    }


def _result(out: dict[str, Any], settings: DCISettings) -> MetricResult:
    extras: dict[str, Any] = {
        key: out[key] for key in ("completeness", "informativeness_train", "informativeness_test")
    }
    extras.update(mode=settings.mode, random_state=settings.random_state, sklearn_version=sklearn.__version__)
    if settings.mode == "fast":
        extras.update(fast_learner=f"dci_trees (sklearn's trees in its arithmetic, {FAST_BINS} bins)",
                      numba_version=numba.__version__)
    return MetricResult(out["disentanglement"], extras)


def dci_arrays(codes: np.ndarray, factors: np.ndarray, settings: DCISettings, seed: int) -> MetricResult:
    """DCI of user-supplied arrays: rows shuffled with ``seed`` and split 2:1 into train/test (metrics.md §0)."""
    _check_mode(settings.mode)
    x_train, y_train, x_test, y_test = shuffle_split(np.asarray(codes), np.asarray(factors), seed)
    res = _result(dci(x_train, y_train, x_test, y_test, settings.mode, settings.random_state), settings)
    res.extras.update(num_train=len(x_train), num_test=len(x_test))
    return res


@register_metric(
    "dci", higher_is_better=True, needs="codes+factors", sampling=False, settings_key="dci", label="DCI",
    arrays=dci_arrays,
)
def dci_metric(source: FactorSource, settings: DCISettings, seed: int) -> MetricResult:
    """DCI on a train draw then a test draw from one ``RandomState(seed)`` (chunks of ``batch_size``).

    Returns:
        value = disentanglement; extras: completeness, informativeness_train, informativeness_test,
        mode, random_state, sklearn_version (plus fast_learner and numba_version in mode "fast").
    """
    _check_mode(settings.mode)  # before the draws
    rs = as_random_state(seed)
    batch = settings.batch_size
    codes_train, factors_train = generate_batch_factor_code(source, settings.num_train, rs, batch)
    codes_test, factors_test = generate_batch_factor_code(source, settings.num_test, rs, batch)
    return _result(dci(codes_train, factors_train, codes_test, factors_test, settings.mode, settings.random_state),
                   settings)
