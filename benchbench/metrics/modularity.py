"""Modularity and explicitness.

Reference: Ridgeway and Mozer, "Learning Deep Disentangled Embeddings With the F-Statistic Loss",
NeurIPS 2018, https://arxiv.org/abs/1802.05312 (Sec. 3), in the variant of
google-research/disentanglement_lib (``evaluation/metrics/modularity_explicitness.py``; metrics.md §6).

Modularity: with M [D, K] the plug-in mutual information (nats) between each code dim, cut into 20
equal-width bins, and each factor, code i gets

    delta_i = (sum_k M_ik^2 - max_k M_ik^2) / (max_k M_ik^2 (K - 1)),   modularity_i = 1 - delta_i

(0 when max_k M_ik = 0, so dead codes count as 0), and the score is the mean over all D codes. It does
not penalise a factor spread over several codes, each coding nothing else.

Explicitness: codes are z-scored with the train mean and std (ddof 0); per factor a default
``LogisticRegression()`` on all codes gives class probabilities, scored by the macro average over
classes of the one-vs-rest ROC-AUC; the result is the mean over factors, on the train and test parts.

Deliberate departures, both only where the reference fails:
* a dead code dim (train std exactly 0) would give 0/0 = NaN features and make sklearn raise; its
  standardised value is set to 0 on train and test, so it carries no information (the reference
  numbers are unchanged whenever they exist);
* a class missing from the scored part (or from the train part) makes the reference's one-hot width
  differ from the probability columns and sklearn raise; we one-hot against the fitted model's
  ``classes_`` and average the AUC over the classes that have both positives and negatives in the
  scored part (identical to the reference when every class is present).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats
import sklearn
from sklearn.linear_model import LogisticRegression

from benchbench.errors import MetricInputError
from benchbench.metrics.base import FactorSource, MetricResult
from benchbench.metrics.settings import ModularitySettings
from benchbench.metrics.utils import (
    as_random_state,
    check_codes_factors,
    discrete_mutual_info,
    generate_batch_factor_code,
    histogram_discretize,
    shuffle_split,
)
from benchbench.registry import register_metric
from benchbench.threads import single_blas


def modularity_from_mi(mutual_info: np.ndarray) -> tuple[float, np.ndarray]:
    """Modularity of a mutual-information matrix (reference formula).

    Args:
        mutual_info: [D, K] non-negative MI between code dim i and factor k, K >= 2.
    Returns:
        (score, per_code [D]); per_code is 0 for a code with no information about any factor.

    Example:
        >>> modularity_from_mi(np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))[1].tolist()
        [1.0, 1.0, 0.0]
    """
    m2 = np.square(np.asarray(mutual_info, dtype=np.float64))
    if m2.ndim != 2 or m2.shape[1] < 2:
        raise MetricInputError(f"modularity: needs an MI matrix [D, K] with K >= 2, got shape {m2.shape}")
    top = m2.max(axis=1)
    live = top > 0
    per_code = np.zeros(len(m2))
    delta = (m2[live].sum(axis=1) - top[live]) / (top[live] * (m2.shape[1] - 1.0))
    per_code[live] = 1.0 - delta
    return float(np.mean(per_code)), per_code


def modularity(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> tuple[float, np.ndarray]:
    """Modularity of codes against factors on one sample (metrics.md §6).

    Args:
        codes: [N, D] codes; each dim is discretised into ``num_bins`` bins on this very sample.
        factors: [N, K] integer class indices, K >= 2, each factor with at least two values.
        num_bins: equal-width bins per code dim.
    Returns:
        (score, per_code [D]); score in [0, 1].
    Raises:
        MetricInputError: K < 2, a single-valued factor, NaN codes, mismatched lengths.
    """
    codes, factors = check_codes_factors(codes, factors, what="modularity: ")
    if factors.shape[1] < 2:
        raise MetricInputError("modularity: needs at least 2 factors (the formula divides by K - 1), got 1")
    return modularity_from_mi(discrete_mutual_info(histogram_discretize(codes, num_bins), factors))


def standardize(codes_train: np.ndarray, codes_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-score both parts with the train mean and std (ddof 0); dead train dims (std 0) become 0.

    Args:
        codes_train: [N, D]; codes_test: [M, D].
    Returns:
        standardised train [N, D] and test [M, D], float64.
    """
    mean = codes_train.mean(axis=0)
    std = codes_train.std(axis=0)
    dead = std == 0
    scale = np.where(dead, 1.0, std)
    train = (codes_train - mean) / scale
    test = (codes_test - mean) / scale
    train[:, dead] = 0.0
    test[:, dead] = 0.0
    return train, test


def macro_auc(model: LogisticRegression, x: np.ndarray, y: np.ndarray) -> float:
    """Mean one-vs-rest ROC-AUC of ``model.predict_proba(x)`` over the classes scorable on (x, y).

    Classes follow ``model.classes_``; a class without positives or without negatives among ``y``
    is left out (the reference would raise). Rows of a class unknown to the model are negatives for all.
    Each AUC is the Mann-Whitney form ``(sum of positive ranks - P(P+1)/2) / (P Q)`` with average ranks
    for ties, which equals ``sklearn.metrics.roc_auc_score`` (ties count 1/2) for all classes at once.

    Args:
        model: fitted classifier; x: [N, D] features; y: [N] labels.
    Returns:
        macro ROC-AUC in [0, 1].
    """
    onehot = y[:, None] == model.classes_[None, :]  # [N, C]
    num_pos = onehot.sum(axis=0)
    scorable = (num_pos > 0) & (num_pos < len(y))
    if not scorable.any():
        raise MetricInputError(
            f"explicitness: the scored part has {int(np.count_nonzero(num_pos))} class(es) known to the model; "
            "ROC-AUC needs 2"
        )
    proba = model.predict_proba(x)[:, scorable]  # [N, C']
    ranks = scipy.stats.rankdata(proba, axis=0)  # average ranks of tied probabilities
    pos, n_pos = onehot[:, scorable], num_pos[scorable]
    auc = ((ranks * pos).sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * (len(y) - n_pos))
    return float(np.mean(auc))


def explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
) -> dict[str, Any]:
    """Explicitness: macro ROC-AUC of a logistic regression from all codes to each factor (metrics.md §6).

    Args:
        codes_train: [N, D] codes used to fit K classifiers and for the standardisation.
        factors_train: [N, K] integer class indices, each with at least two values.
        codes_test: [M, D] held-out codes.
        factors_test: [M, K] held-out class indices.
    Returns:
        dict with explicitness_train, explicitness_test (means over factors) and per_factor [K, 2]
        (train, test ROC-AUC of each factor).
    Raises:
        MetricInputError: mismatched shapes, NaN codes, a single-valued train factor, a test factor with
            no scorable class.
    """
    z_train, y_train = check_codes_factors(codes_train, factors_train, what="explicitness (train): ")
    z_test, y_test = check_codes_factors(
        codes_test, factors_test, min_samples=1, require_varying=False, what="explicitness (test): "
    )
    if z_test.shape[1] != z_train.shape[1] or y_test.shape[1] != y_train.shape[1]:
        raise MetricInputError(
            f"explicitness: train is {list(z_train.shape)} x {list(y_train.shape)} but test is "
            f"{list(z_test.shape)} x {list(y_test.shape)}"
        )
    x_train, x_test = standardize(z_train.astype(np.float64), z_test.astype(np.float64))
    per_factor = np.empty((y_train.shape[1], 2))
    for k in range(y_train.shape[1]):
        with single_blas():  # small dense solves: a BLAS pool only adds contention on a shared machine
            model = LogisticRegression().fit(x_train, y_train[:, k])
        per_factor[k] = macro_auc(model, x_train, y_train[:, k]), macro_auc(model, x_test, y_test[:, k])
    return {
        "explicitness_train": float(np.mean(per_factor[:, 0])),
        "explicitness_test": float(np.mean(per_factor[:, 1])),
        "per_factor": per_factor,
    }


def _result(score: float, expl: dict[str, Any], **more: Any) -> MetricResult:
    extras: dict[str, Any] = {
        "explicitness_train": expl["explicitness_train"],
        "explicitness_test": expl["explicitness_test"],
        "sklearn_version": sklearn.__version__,
        **more,
    }
    return MetricResult(float(score), extras)


def modularity_arrays(codes: np.ndarray, factors: np.ndarray, settings: ModularitySettings, seed: int) -> MetricResult:
    """Modularity on all given rows; explicitness on a 2:1 train/test split shuffled with ``seed`` (§0).

    Args:
        codes: [N, D] codes; factors: [N, K] integer class indices.
    Returns:
        value = modularity; extras: explicitness_train, explicitness_test, sklearn_version, num_points (N).
    """
    score, _ = modularity(codes, factors, settings.num_bins)
    z, y = np.asarray(codes), np.asarray(factors)
    return _result(score, explicitness(*shuffle_split(z, y, seed)), num_points=len(z))


@register_metric(
    "modularity",
    higher_is_better=True,
    needs="codes+factors",
    sampling=False,
    settings_key="modularity",
    label="Modularity",
    arrays=modularity_arrays,
)
def modularity_metric(source: FactorSource, settings: ModularitySettings, seed: int) -> MetricResult:
    """Modularity (on the train draw, as the reference) and explicitness, from one ``RandomState(seed)``.

    Draws the train part, then the test part, each in chunks of ``batch_size``.

    Returns:
        value = modularity; extras: explicitness_train, explicitness_test, sklearn_version.
    """
    rs = as_random_state(seed)
    codes_train, factors_train = generate_batch_factor_code(source, settings.num_train, rs, settings.batch_size)
    codes_test, factors_test = generate_batch_factor_code(source, settings.num_test, rs, settings.batch_size)
    score, _ = modularity(codes_train, factors_train, settings.num_bins)
    return _result(score, explicitness(codes_train, factors_train, codes_test, factors_test))
