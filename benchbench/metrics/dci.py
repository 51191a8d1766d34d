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

* ``exact`` (default, the reference): sklearn ``GradientBoostingClassifier`` with library defaults and
  ``random_state`` fixed; R = its impurity importances.
* ``fast``: LightGBM, a histogram-based booster, driven to grow the same model: 100 rounds, learning
  rate 0.1, depth-3 trees (8 leaves), one tree per class per round (one for a binary factor), leaves of
  one sample allowed, one thread per fit, fixed seed, ``deterministic=True``. Three choices make it
  track ``exact`` closely (see ``_fit_factor_fast``): splits are searched on the negative gradient with
  unit hessians, so LightGBM's split gain *is* sklearn's squared-error impurity decrease; leaf values
  are then reset to sklearn's one-step Newton values; and the histogram has one bin per distinct training
  value (no coarsening). R = total split gain per code dim, normalised per factor to sum 1 (all zeros
  if no tree split), with the gain of code dims that order the training rows identically shared
  equally among them (sklearn breaks such exact ties at random, LightGBM always to the first dim).
  On the sanity cases of tests/test_dci_fast.py (2,000 points) and on the 10,000-point code table of
  benchmarks/bench_metrics.py (``--dci-modes``) fast D and C are within 0.006 of exact (required: 0.02),
  for about 1/6 of exact's CPU time at 10,000 points. Fast numbers are still an approximation: they are
  labelled with their mode and never averaged or ranked together with exact ones.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import lightgbm
import numpy as np
import scipy.special
import scipy.stats
import sklearn
from sklearn.ensemble import GradientBoostingClassifier

from benchbench.errors import ConfigError, MetricInputError
from benchbench.metrics.base import FactorSource, MetricResult
from benchbench.metrics.settings import DCISettings
from benchbench.metrics.utils import (
    as_random_state,
    check_codes_factors,
    generate_batch_factor_code,
    shuffle_split,
)
from benchbench.registry import register_metric

MODES = ("exact", "fast")

# sklearn GradientBoostingClassifier defaults that mode "fast" reproduces.
_ROUNDS = 100
_LEARNING_RATE = 0.1
_MAX_DEPTH = 3
# LightGBM settings of mode "fast". objective "none": gradients and hessians come from _fit_factor_fast.
# min_data_in_leaf 1, min_sum_hessian 0, no penalties: sklearn's min_samples_leaf=1 and unregularised
# splits. min_data_in_bin 1 plus max_bin >= distinct values (set per fit): one bin per training value,
# so the candidate thresholds are sklearn's (midpoints between consecutive values).
_LGBM_PARAMS: dict[str, Any] = {
    "objective": "none",
    "boosting": "gbdt",
    "learning_rate": _LEARNING_RATE,  # LightGBM's own leaf values are replaced, see _fit_factor_fast
    "max_depth": _MAX_DEPTH,
    "num_leaves": 2**_MAX_DEPTH,
    "min_data_in_leaf": 1,
    "min_sum_hessian_in_leaf": 0.0,
    "min_gain_to_split": 0.0,
    "lambda_l1": 0.0,
    "lambda_l2": 0.0,
    "min_data_in_bin": 1,
    "feature_pre_filter": False,
    "bagging_fraction": 1.0,
    "feature_fraction": 1.0,
    "force_row_wise": True,
    "deterministic": True,
    "num_threads": 1,
    "verbose": -1,
}


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


def _tied_dims(codes: np.ndarray) -> list[np.ndarray]:
    """Groups (of two or more) of code dims that order the rows identically, up to reversal.

    A tree cannot tell such dims apart: every split on one is a split on the other with the same gain.
    """
    groups: dict[bytes, list[int]] = {}
    for i, column in enumerate(codes.T):
        rank = np.unique(column, return_inverse=True)[1].astype(np.int64)
        flipped = rank.max() - rank
        key = min(rank.tobytes(), flipped.tobytes())
        groups.setdefault(key, []).append(i)
    return [np.array(g) for g in groups.values() if len(g) > 1]


def _fit_factor_fast(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int
) -> tuple[np.ndarray, float, float]:
    """One factor with LightGBM, grown like sklearn's GBT: importances [D] (normalised), train and test accuracy.

    sklearn's ``GradientBoostingClassifier`` starts from the log class priors (binary: log odds) and per
    round fits, for every class, a depth-3 squared-error regression tree to the negative gradient
    ``y - p`` of the log loss, then sets each leaf to one Newton step, ``(K-1)/K * mean(y - p) /
    mean(p (1 - p))`` (no (K-1)/K factor for binary; 0 when the hessian mean is below 1e-150), times the
    learning rate. LightGBM's own objective would instead pick splits by the Newton gain
    ``G_L^2/H_L + G_R^2/H_R - G^2/H``, which weights the late, near-pure rounds much more and moves
    importance to noise dims (D and C off by 0.03-0.04 on the noisy sanity case). Here LightGBM gets the
    gradient with unit hessians, so its gain is ``G_L^2/n_L + G_R^2/n_R - G^2/n``, exactly the squared-error
    impurity decrease sklearn splits on and sums into its importances; after each round the leaves of
    the new trees are reset to the Newton values above. The histogram keeps one bin per distinct value:
    with the default 255 bins thresholds inside a bin are lost and the trees fall back on other dims in
    small nodes (D off by 0.02-0.03 on the ideal and noisy cases at 2,000 points; 1,023 bins still 0.026
    on the noisy case). Known difference: LightGBM splits only on a positive gain, sklearn also splits a
    node whose best split gains exactly nothing (e.g. a perfectly balanced XOR of two binary dims).
    """
    classes, y = np.unique(y_train, return_inverse=True)
    num_samples, num_classes = len(y), len(classes)
    num_trees = 1 if num_classes == 2 else num_classes  # trees per round
    prior = np.bincount(y, minlength=num_classes) / num_samples
    if num_trees == 1:
        target = y[:, None].astype(np.float64)
        init = np.array([np.log(prior[1] / prior[0])])
        newton_scale = 1.0
    else:
        target = np.eye(num_classes)[y]
        init = np.log(prior)
        newton_scale = (num_classes - 1) / num_classes
    max_bin = max(len(np.unique(column)) for column in x_train.T) + 1
    params = dict(
        _LGBM_PARAMS, num_class=num_trees, max_bin=max_bin, bin_construct_sample_cnt=num_samples, seed=seed
    )
    varying = bool(np.any(x_train != x_train[:1]))
    # LightGBM refuses data without a usable feature; with constant codes no tree can split anyway.
    booster = lightgbm.Booster(params, lightgbm.Dataset(x_train, label=y, params=params)) if varying else None
    raw = np.tile(init, (num_samples, 1))  # [N, trees] raw scores of the model so far
    offset = np.zeros(num_trees)  # root-only rounds (no tree could split), not stored in the booster
    unit_hess = np.ones(num_samples * num_trees)
    max_leaves = int(params["num_leaves"])
    tree_base = np.arange(num_trees) * max_leaves  # [trees]
    num_cells = num_trees * max_leaves
    for _ in range(_ROUNDS):
        prob = scipy.special.expit(raw) if num_trees == 1 else scipy.special.softmax(raw, axis=1)
        neg_grad = target - prob  # [N, trees]
        hess = prob * (1.0 - prob)
        grad = np.ravel(-neg_grad, order="F")  # LightGBM's layout: class-major

        if booster is None or booster.update(fobj=lambda _preds, _data, g=grad: (g, unit_hess)):
            # No tree of this round split (LightGBM dropped them); sklearn adds root-only trees.
            num, den = neg_grad.mean(axis=0) * newton_scale, hess.mean(axis=0)
            step = _LEARNING_RATE * np.where(np.abs(den) < 1e-150, 0.0, num / np.where(den == 0, 1.0, den))
            offset += step
            raw += step
            continue
        last = booster.current_iteration() - 1
        leaves = booster.predict(x_train, start_iteration=last, num_iteration=1, pred_leaf=True, num_threads=1)
        # cell = (tree k, leaf j) as k * max_leaves + j; every leaf holds at least one training row
        cell = np.asarray(leaves, dtype=np.int64).reshape(num_samples, num_trees) + tree_base
        count = np.bincount(cell.ravel(), minlength=num_cells)
        num = np.bincount(cell.ravel(), neg_grad.ravel(), num_cells) * newton_scale
        den = np.bincount(cell.ravel(), hess.ravel(), num_cells)
        mean_den = den / np.maximum(count, 1)
        value = _LEARNING_RATE * np.where(mean_den < 1e-150, 0.0, num / np.where(den == 0, 1.0, den))
        for c in np.flatnonzero(count):
            booster.set_leaf_output(last * num_trees + c // max_leaves, c % max_leaves, float(value[c]))
        raw += value[cell]

    if booster is None:
        importance = np.zeros(x_train.shape[1])
    else:
        importance = booster.feature_importance(importance_type="gain").astype(np.float64)
    for group in _tied_dims(x_train):
        importance[group] = importance[group].mean()
    total = importance.sum()
    importance = importance / total if total > 0 else np.zeros_like(importance)

    def predict(raw_scores: np.ndarray) -> np.ndarray:
        index = (raw_scores[:, 0] > 0).astype(np.int64) if num_trees == 1 else np.argmax(raw_scores, axis=1)
        return classes[index]

    if booster is not None and booster.current_iteration() > 0:
        raw_test = np.asarray(booster.predict(x_test, raw_score=True, num_threads=1)).reshape(len(x_test), -1)
    else:
        raw_test = np.zeros((len(x_test), num_trees))
    raw_test = raw_test + init + offset
    train_acc = float(np.mean(predict(raw) == y_train))
    test_acc = float(np.mean(predict(raw_test) == y_test))
    return importance, train_acc, test_acc


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
        mode: "exact" (sklearn GradientBoostingClassifier, the reference) or "fast" (LightGBM grown
            to track it; an approximation, never mixed with exact numbers; see the module docstring).
        random_state: ``random_state`` of every classifier (the reference leaves it unset); LightGBM's
            ``seed`` in mode "fast".
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
    fit = _fit_factor if mode == "exact" else _fit_factor_fast
    args = [(x_train, y_train[:, k], x_test, y_test[:, k], random_state) for k in range(num_factors)]
    if jobs == 1:
        fits = [fit(*a) for a in args]
    else:  # threads: sklearn's tree builder and LightGBM release the GIL, and threads cost no start-up
        fits = joblib.Parallel(n_jobs=jobs, prefer="threads")(joblib.delayed(fit)(*a) for a in args)
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
        extras["lightgbm_version"] = lightgbm.__version__
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
        mode, random_state, sklearn_version (plus lightgbm_version in mode "fast").
    """
    _check_mode(settings.mode)  # before the draws
    rs = as_random_state(seed)
    batch = settings.batch_size
    codes_train, factors_train = generate_batch_factor_code(source, settings.num_train, rs, batch)
    codes_test, factors_test = generate_batch_factor_code(source, settings.num_test, rs, batch)
    return _result(dci(codes_train, factors_train, codes_test, factors_test, settings.mode, settings.random_state),
                   settings)
