"""DCI: disentanglement, completeness and informativeness from per-factor gradient-boosted trees.

Reference: Eastwood and Williams, "A Framework for the Quantitative Evaluation of Disentangled
Representations", ICLR 2018, https://openreview.net/forum?id=By-7dz-AZ (Sec. 2), in the variant of
google-research/disentanglement_lib (``evaluation/metrics/dci.py``; metrics.md §3).

For every factor k a ``GradientBoostingClassifier`` (library defaults, ``random_state`` fixed) predicts
y_k from all codes; its impurity importances form column k of R [D, K]. With ``P_ik = R_ik / sum_k R_ik``
and ``P~_ik = R_ik / sum_i R_ik`` (after adding 1e-11 to every entry, as the reference does):

    D = sum_i rho_i (1 - H_K(P_i.)),  rho_i = sum_k R_ik / sum R
    C = sum_k w_k (1 - H_D(P~_.k)),   w_k = sum_i R_ik / sum R

(entropies in base K and D; uniform weights when R is all zero). Informativeness is the mean
classification *accuracy* over factors (train and test), despite the name.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
import scipy.stats
import sklearn
from sklearn.ensemble import GradientBoostingClassifier

from benchbench.errors import ConfigError, MetricInputError
from benchbench.metrics.base import FactorSource, MetricResult
from benchbench.metrics.settings import DCISettings
from benchbench.metrics.utils import as_random_state, check_codes_factors, generate_batch_factor_code
from benchbench.registry import register_metric

MODES = ("exact", "fast")


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
    if mode == "fast":
        raise ConfigError("DCI mode 'fast' (histogram-booster importances) is not available yet; use 'exact'")
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
        mode: "exact" (sklearn GradientBoostingClassifier, the reference); "fast" is not available yet.
        random_state: ``random_state`` of every classifier (the reference leaves it unset).
        n_jobs: parallel fits (joblib threads); None = min(K, cpu count), 1 = serial. Results do not
            depend on it.
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
    jobs = min(num_factors, os.cpu_count() or 1) if n_jobs is None else n_jobs
    args = [(x_train, y_train[:, k], x_test, y_test[:, k], random_state) for k in range(num_factors)]
    if jobs == 1:
        fits = [_fit_factor(*a) for a in args]
    else:  # threads: sklearn's tree builder releases the GIL, and threads cost no start-up
        fits = joblib.Parallel(n_jobs=jobs, prefer="threads")(joblib.delayed(_fit_factor)(*a) for a in args)
    importance = np.stack([f[0] for f in fits], axis=1)  # [D, K]
    disentanglement, completeness = dci_from_importance(importance)
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness_train": float(np.mean([f[1] for f in fits])),
        "informativeness_test": float(np.mean([f[2] for f in fits])),
        "importance": importance,
    }


@register_metric(
    "dci", higher_is_better=True, needs="codes+factors", sampling=False, settings_key="dci", label="DCI"
)
def dci_metric(source: FactorSource, settings: DCISettings, seed: int) -> MetricResult:
    """DCI on a train draw then a test draw from one ``RandomState(seed)`` (chunks of ``batch_size``).

    Returns:
        value = disentanglement; extras: completeness, informativeness_train, informativeness_test,
        mode, random_state, sklearn_version.
    """
    _check_mode(settings.mode)  # before the draws
    rs = as_random_state(seed)
    batch = settings.batch_size
    codes_train, factors_train = generate_batch_factor_code(source, settings.num_train, rs, batch)
    codes_test, factors_test = generate_batch_factor_code(source, settings.num_test, rs, batch)
    out = dci(codes_train, factors_train, codes_test, factors_test, settings.mode, settings.random_state)
    extras: dict[str, Any] = {
        key: out[key] for key in ("completeness", "informativeness_train", "informativeness_test")
    }
    extras.update(mode=settings.mode, random_state=settings.random_state, sklearn_version=sklearn.__version__)
    return MetricResult(out["disentanglement"], extras)
