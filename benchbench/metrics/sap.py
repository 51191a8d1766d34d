"""SAP: Separated Attribute Predictability.

Reference: Kumar, Sattigeri and Balakrishnan, "Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations", ICLR 2018, https://arxiv.org/abs/1711.00848 (Sec. 3), in the variant of
google-research/disentanglement_lib (``evaluation/metrics/sap_score.py``; metrics.md §5).

A score matrix S [D, K] says how well code dim i alone predicts factor k:

* discrete factors (the default): S_ik = test accuracy of ``LinearSVC(C=0.01, class_weight="balanced")``
  fit on the single column z_i to predict y_k;
* continuous factors: S_ik = cov(z_i, y_k)^2 / (var z_i var y_k) (ddof 1), and 0 when var z_i <= 1e-12.

    SAP = mean_k (S_(1)k - S_(2)k)

with S_(1)k >= S_(2)k the two largest entries of column k. SAP is high only when each factor is
predicted by one dim much better than by any other; a duplicated latent gives that factor a gap of 0.

Fast exact path: the D*K one-dimensional SVM fits are independent and deterministic (liblinear's primal
solver, which sklearn's ``dual="auto"`` picks here, uses no randomness), so they run in parallel threads
(liblinear releases the GIL); the continuous matrix is one vectorised computation. sklearn's LinearSVC
default ``dual`` changed over versions (True before 1.5), which changes S: the version is recorded.
"""

from __future__ import annotations

from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.svm import LinearSVC

from benchbench.errors import MetricInputError
from benchbench.metrics.base import FactorSource, MetricResult
from benchbench.metrics.settings import SAPSettings
from benchbench.metrics.utils import as_random_state, check_codes_factors, generate_batch_factor_code, shuffle_split
from benchbench.registry import register_metric
from benchbench.threads import thread_count

# Below this variance a code dim counts as constant in the continuous score (the reference's cut-off).
_MIN_CODE_VARIANCE = 1e-12


def sap_from_matrix(score_matrix: np.ndarray) -> tuple[float, np.ndarray]:
    """SAP of a score matrix: mean over factors of (largest - second largest) entry of each column.

    Args:
        score_matrix: [D, K] predictability of factor k from code dim i, D >= 2.
    Returns:
        (score, per_factor_gaps [K]).

    Example:
        >>> round(sap_from_matrix(np.array([[0.9, 0.2], [0.4, 0.6], [0.1, 0.5]]))[0], 6)  # (0.5 + 0.1) / 2
        0.3
    """
    s = np.asarray(score_matrix, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2:
        raise MetricInputError(f"SAP: the score matrix must be [D, K] with D >= 2, got shape {s.shape}")
    top2 = np.sort(s, axis=0)[::-1][:2]  # [2, K], largest first
    gaps = top2[0] - top2[1]
    return float(np.mean(gaps)), gaps


def continuous_score_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Squared Pearson correlation of every code dim with every factor, 0 for (near-)constant dims.

    Equals the reference's per-pair ``np.cov(z_i, y_k, ddof=1)`` computation to ~1e-15.

    Args:
        codes: [N, D] real codes.
        factors: [N, K] real factor values, each with non-zero variance.
    Returns:
        [D, K] float64 matrix in [0, 1].
    """
    z = codes - codes.mean(axis=0)
    y = factors - factors.mean(axis=0)
    ddof_n = len(codes) - 1
    cov = z.T @ y / ddof_n  # [D, K]
    var_z = np.einsum("nd,nd->d", z, z) / ddof_n
    var_y = np.einsum("nk,nk->k", y, y) / ddof_n
    live = var_z > _MIN_CODE_VARIANCE
    out = np.zeros_like(cov)
    out[live] = cov[live] ** 2 / (var_z[live, None] * var_y[None, :])
    return out


def _svm_accuracy(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of the reference linear SVM fit on one code column [N] to predict one factor [N]."""
    model = LinearSVC(C=0.01, class_weight="balanced")
    model.fit(z_train[:, None], y_train)
    return float(np.mean(model.predict(z_test[:, None]) == y_test))


def discrete_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    n_jobs: int | None = None,
) -> np.ndarray:
    """Test accuracy of a one-dimensional LinearSVC for every (code dim, factor) pair.

    Args:
        codes_train: [N, D] codes; factors_train: [N, K] integer factors (each with >= 2 classes).
        codes_test: [M, D] codes; factors_test: [M, K] integer factors.
        n_jobs: parallel fits (joblib threads); None = ``threads.thread_count()``, 1 = serial. Results do
            not depend on it.
    Returns:
        [D, K] float64 accuracies.
    """
    num_codes, num_factors = codes_train.shape[1], factors_train.shape[1]
    pairs = [(i, k) for i in range(num_codes) for k in range(num_factors)]
    args = [(codes_train[:, i], factors_train[:, k], codes_test[:, i], factors_test[:, k]) for i, k in pairs]
    jobs = thread_count() if n_jobs is None else n_jobs
    if jobs == 1:
        accs = [_svm_accuracy(*a) for a in args]
    else:
        accs = joblib.Parallel(n_jobs=jobs, prefer="threads")(joblib.delayed(_svm_accuracy)(*a) for a in args)
    return np.array(accs, dtype=np.float64).reshape(num_codes, num_factors)


def _check_continuous(codes: np.ndarray, factors: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate codes [N, D] and real-valued factors [N, K] (finite, each varying); both as float64."""
    values = np.asarray(factors)
    if values.ndim != 2 or not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise MetricInputError(f"{what}factors must be a numeric 2-D array [N, K], got {values.dtype} {values.shape}")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise MetricInputError(f"{what}factors contain NaN or inf")
    # The shared checks (shapes, finite codes, single-valued factors) on the rank of each value.
    ranks = np.stack([np.unique(col, return_inverse=True)[1] for col in values.T], axis=1).reshape(values.shape)
    codes, _ = check_codes_factors(codes, ranks, what=what)
    return codes.astype(np.float64, copy=False), values


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
    n_jobs: int | None = None,
) -> tuple[float, np.ndarray]:
    """SAP score (metrics.md §5).

    Args:
        codes_train: [N, D] codes, D >= 2.
        factors_train: [N, K] factors: integer class indices (each with >= 2 classes), or real values
            when ``continuous_factors``.
        codes_test: [M, D] held-out codes (used by the discrete score only, as in the reference).
        factors_test: [M, K] held-out factors.
        continuous_factors: score by squared correlation on the train part instead of SVM accuracy.
        n_jobs: parallel SVM fits (threads); None = ``threads.thread_count()``. Results do not depend on it.
    Returns:
        (score, score_matrix [D, K]); score in [0, 1].
    Raises:
        MetricInputError: D < 2, mismatched shapes, NaN codes, a single-valued factor.

    Example:
        >>> y = np.repeat(np.arange(2), 50)[:, None].astype(float)
        >>> round(sap(np.hstack([y, np.zeros_like(y)]), y, y[:0], y[:0], continuous_factors=True)[0], 6)
        1.0
    """
    if continuous_factors:
        z_train, y_train = _check_continuous(codes_train, factors_train, "SAP (train): ")
        z_test, y_test = np.asarray(codes_test, dtype=np.float64), np.asarray(factors_test)
    else:
        z_train, y_train = check_codes_factors(codes_train, factors_train, what="SAP (train): ")
        z_test, y_test = check_codes_factors(
            codes_test, factors_test, min_samples=1, require_varying=False, what="SAP (test): "
        )
    num_codes, num_factors = z_train.shape[1], y_train.shape[1]
    if num_codes < 2:
        raise MetricInputError(f"SAP: needs at least 2 code dims (the gap compares two), got {num_codes}")
    if continuous_factors:
        matrix = continuous_score_matrix(z_train, y_train)
    else:
        if z_test.shape[1] != num_codes or y_test.shape[1] != num_factors:
            raise MetricInputError(
                f"SAP: train is [N, {num_codes}] x [N, {num_factors}] but test is "
                f"{list(z_test.shape)} x {list(y_test.shape)}"
            )
        matrix = discrete_score_matrix(z_train, y_train, z_test, y_test, n_jobs)
    return sap_from_matrix(matrix)[0], matrix


def _result(score: float, matrix: np.ndarray, **more: Any) -> MetricResult:
    extras: dict[str, Any] = {
        "per_factor_gaps": [float(g) for g in sap_from_matrix(matrix)[1]],
        "sklearn_version": sklearn.__version__,
        **more,
    }
    return MetricResult(float(score), extras)


def sap_arrays(codes: np.ndarray, factors: np.ndarray, settings: SAPSettings, seed: int) -> MetricResult:
    """SAP of user-supplied arrays: rows shuffled with ``seed`` and split 2:1 into train/test (metrics.md §0).

    Args:
        codes: [N, D] codes; factors: [N, K] factors (class indices unless ``settings.continuous_factors``).
    Returns:
        value = SAP; extras: per_factor_gaps, sklearn_version, num_points (N).
    """
    z, y = np.asarray(codes), np.asarray(factors)
    if z.ndim != 2 or y.ndim != 2 or len(z) != len(y):
        raise MetricInputError(f"SAP: codes [N, D] and factors [N, K] must match, got {z.shape} and {y.shape}")
    score, matrix = sap(*shuffle_split(z, y, seed), continuous_factors=settings.continuous_factors)
    return _result(score, matrix, num_points=len(z))


@register_metric(
    "sap",
    higher_is_better=True,
    needs="codes+factors",
    sampling=False,
    settings_key="sap",
    label="SAP",
    arrays=sap_arrays,
)
def sap_metric(source: FactorSource, settings: SAPSettings, seed: int) -> MetricResult:
    """SAP on a train draw then a test draw from one ``RandomState(seed)`` (chunks of ``batch_size``).

    Returns:
        value = SAP; extras: per_factor_gaps (K floats), sklearn_version.
    """
    rs = as_random_state(seed)
    codes_train, factors_train = generate_batch_factor_code(source, settings.num_train, rs, settings.batch_size)
    codes_test, factors_test = generate_batch_factor_code(source, settings.num_test, rs, settings.batch_size)
    score, matrix = sap(codes_train, factors_train, codes_test, factors_test, settings.continuous_factors)
    return _result(score, matrix)
