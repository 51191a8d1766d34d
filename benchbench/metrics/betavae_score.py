"""BetaVAE score: accuracy of a linear classifier telling which factor was held fixed in a pair of batches.

Reference: Higgins, Matthey, Pal, Burgess, Glorot, Botvinick, Mohamed and Lerchner, "beta-VAE: Learning
Basic Visual Concepts with a Constrained Variational Framework", ICLR 2017,
https://openreview.net/forum?id=Sy2fzU9gl (Sec. 3), in the scikit-learn variant of
google-research/disentanglement_lib (``evaluation/metrics/beta_vae.py``; metrics.md §4).

One point: draw the factor k to hold fixed, two batches of factor vectors F1 and F2 with
``F2[:, k] = F1[:, k]``, and take the feature ``mean_batch |z(F1) - z(F2)|`` [D] with label k. A
``LogisticRegression(random_state=rs)`` (sklearn defaults, fed the metric's own RandomState as the
reference does) is fit on the training points; the score is its accuracy on fresh evaluation points.

Draw order on ``rs`` (kept for parity): for each training point ``k = rs.randint(K)``,
``sample_factors(batch_size)`` twice; then the classifier is fit; then the same for each evaluation
point. sklearn <= 0.21 defaulted to liblinear, which draws from ``rs`` during the fit (shifting the
evaluation sample); >= 0.22 uses lbfgs, which draws nothing. The sklearn version is recorded.

Fast exact path: the factor batches of many points are drawn first (same order) and encoded by one
``represent`` call; the features are then computed together, bit-identical to a per-point loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

from benchbench.errors import ConfigError, MetricInputError
from benchbench.metrics.base import FactorSource, MetricResult
from benchbench.metrics.settings import BetaVAEScoreSettings
from benchbench.metrics.utils import as_random_state, represent_codes
from benchbench.registry import register_metric
from benchbench.threads import single_blas

# Bytes of float64 codes (two batches per point) encoded per ``represent`` call: points per block =
# this over (2 * batch_size * D * 8), so a block stays in cache at any code size. Bounds memory and
# time, not results.
_BLOCK_BYTES = 1 << 21


def _draw_pairs(
    source: FactorSource, rs: np.random.RandomState, num_points: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels [P] and factor rows [P, 2, batch_size, K] (F1 then F2 per point) in the reference draw order."""
    num_factors = len(source.factor_sizes)
    labels = np.empty(num_points, dtype=np.int64)
    pairs = np.empty((num_points, 2, batch_size, num_factors), dtype=np.int64)
    for p in range(num_points):
        k = rs.randint(num_factors)
        pairs[p, 0] = source.sample_factors(batch_size, rs)
        pairs[p, 1] = source.sample_factors(batch_size, rs)
        pairs[p, 1, :, k] = pairs[p, 0, :, k]
        labels[p] = k
    return labels, pairs


def _features(
    source: FactorSource, rs: np.random.RandomState, num_points: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features [P, D] = mean over the batch of |z(F1) - z(F2)|, and labels [P].

    Points are drawn and encoded block by block (the first block is one point, which tells the code
    size D); ``represent`` draws nothing, so the draw order is the reference's whatever the block size.
    """
    features, labels = [], []
    start, block = 0, 1
    while start < num_points:
        y, pairs = _draw_pairs(source, rs, min(block, num_points - start), batch_size)
        codes = represent_codes(source, pairs.reshape(-1, pairs.shape[-1])).reshape(len(y), 2, batch_size, -1)
        features.append(np.mean(np.abs(codes[:, 0] - codes[:, 1]), axis=1))  # [P', D]
        labels.append(y)
        start += len(y)
        block = max(1, _BLOCK_BYTES // (16 * batch_size * codes.shape[-1]))
    return np.concatenate(features), np.concatenate(labels)


def betavae_score(
    source: FactorSource,
    random_state: int | np.random.RandomState = 0,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
) -> dict[str, Any]:
    """BetaVAE score of ``source.represent`` (metrics.md §4), bit-compatible with the reference.

    Args:
        source: ground-truth sampler plus representation function; at least 2 factors.
        random_state: seed or ``np.random.RandomState`` (also handed to the classifier, as the reference).
        batch_size: factor vectors per batch (two batches per point).
        num_train: training points (fit the classifier).
        num_eval: evaluation points (the score).
    Returns:
        dict with eval_accuracy (the score), train_accuracy, and the features and labels:
        train_features [num_train, D], train_labels [num_train], eval_features [num_eval, D],
        eval_labels [num_eval].
    Raises:
        ConfigError: a size below 1.
        MetricInputError: fewer than 2 factors, or all training points hold the same factor.
    """
    if batch_size < 1 or num_train < 1 or num_eval < 1:
        raise ConfigError(
            f"BetaVAE score: batch_size, num_train and num_eval must be >= 1, got {batch_size}, {num_train}, {num_eval}"
        )
    if len(source.factor_sizes) < 2:
        raise MetricInputError(f"BetaVAE score: needs at least 2 factors to classify, got {len(source.factor_sizes)}")
    rs = as_random_state(random_state)
    train_x, train_y = _features(source, rs, num_train, batch_size)
    if len(np.unique(train_y)) < 2:
        raise MetricInputError(
            f"BetaVAE score: all {num_train} training points hold factor {train_y[0]} fixed; raise num_train"
        )
    model = LogisticRegression(random_state=rs)  # the RandomState object itself, as the reference
    with single_blas():  # a [num_train, D] solve: a BLAS pool only adds contention
        model.fit(train_x, train_y)
    train_accuracy = float(np.mean(model.predict(train_x) == train_y))
    eval_x, eval_y = _features(source, rs, num_eval, batch_size)
    return {
        "eval_accuracy": float(np.mean(model.predict(eval_x) == eval_y)),
        "train_accuracy": train_accuracy,
        "train_features": train_x,
        "train_labels": train_y,
        "eval_features": eval_x,
        "eval_labels": eval_y,
    }


@register_metric(
    "betavae_score",
    higher_is_better=True,
    needs="codes+factors",
    sampling=True,
    settings_key="betavae_score",
    label="BetaVAE",
)
def betavae_score_metric(source: FactorSource, settings: BetaVAEScoreSettings, seed: int) -> MetricResult:
    """BetaVAE score with ``RandomState(seed)``.

    Returns:
        value = eval accuracy; extras: train_accuracy, sklearn_version.
    """
    out = betavae_score(
        source,
        np.random.RandomState(seed),
        batch_size=settings.batch_size,
        num_train=settings.num_train,
        num_eval=settings.num_eval,
    )
    extras: dict[str, Any] = {"train_accuracy": out["train_accuracy"], "sklearn_version": sklearn.__version__}
    return MetricResult(out["eval_accuracy"], extras)
