"""Helpers shared by the factor metrics: drawing codes, input checks, discretising, discrete MI.

The drawing order and the histogram discretiser follow google-research/disentanglement_lib
(``evaluation/metrics/utils.py``) so that numbers computed from a code table match the reference
bit for bit (metrics.md §0, §0.1). The mutual-information routines are vectorised replacements for
looping over ``sklearn.metrics.mutual_info_score``; they return the same plug-in estimate in nats.
"""

from __future__ import annotations

import numpy as np

from benchbench.errors import ConfigError, MetricInputError
from benchbench.metrics.base import FactorSource

# Rows handed to one ``represent`` call when codes are drawn; bounds memory, not results.
_REPRESENT_ROWS = 4096
# Largest contingency block (cells) built at once by ``discrete_mutual_info``.
_MAX_CELLS = 1 << 24


def as_random_state(random_state: int | np.random.RandomState) -> np.random.RandomState:
    """A ``np.random.RandomState`` from a seed, or the given state itself (its draws continue)."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    return np.random.RandomState(random_state)


def represent_codes(source: FactorSource, factors: np.ndarray) -> np.ndarray:
    """``source.represent(factors)`` as float64 [n, D], checked for shape and finiteness."""
    codes = np.asarray(source.represent(factors), dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] != len(factors):
        raise MetricInputError(
            f"represent() must return codes of shape [{len(factors)}, D], got shape {codes.shape}"
        )
    if not np.isfinite(codes).all():
        raise MetricInputError("represent() returned NaN or infinite codes; check the encoder or code table")
    return codes


def generate_batch_factor_code(
    source: FactorSource,
    num_points: int,
    random_state: int | np.random.RandomState,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``num_points`` factor vectors and their codes in the reference order.

    Factors are drawn in chunks of ``batch_size`` (``source.sample_factors(chunk, rs)`` per chunk), as
    disentanglement_lib does; the chunk size decides which draw lands where, so keep 16 for parity.
    ``represent`` does not consume the random state, so the chunks are encoded together in larger
    blocks afterwards; for a deterministic, row-wise ``represent`` this gives the same codes.

    Args:
        source: ground-truth sampler plus representation function.
        num_points: number of rows N to draw.
        random_state: seed or ``np.random.RandomState`` (its draws continue from where they are).
        batch_size: chunk size of the factor draws.
    Returns:
        codes [N, D] float64 and factors [N, K] int64.
    """
    if num_points < 1 or batch_size < 1:
        raise ConfigError(f"num_points and batch_size must be >= 1, got {num_points} and {batch_size}")
    rs = as_random_state(random_state)
    chunks = []
    for start in range(0, num_points, batch_size):
        chunks.append(np.asarray(source.sample_factors(min(batch_size, num_points - start), rs)))
    factors = np.concatenate(chunks).astype(np.int64, copy=False)
    blocks = range(0, num_points, _REPRESENT_ROWS)
    codes = np.concatenate([represent_codes(source, factors[i : i + _REPRESENT_ROWS]) for i in blocks])
    return codes, factors


def check_codes_factors(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    min_samples: int = 2,
    require_varying: bool = True,
    what: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (codes, factors) pair and return them as arrays (codes keep their float dtype).

    Args:
        codes: [N, D] real codes; NaN or inf is rejected.
        factors: [N, K] integer class indices (floats holding whole numbers are accepted).
        min_samples: smallest N accepted.
        require_varying: reject a factor column that takes a single value.
        what: prefix naming the caller in messages (e.g. "MIG: ").
    Returns:
        codes [N, D] (float input keeps its dtype, other input becomes float64) and factors [N, K] int64.
    Raises:
        MetricInputError: with a one-line message naming the problem.
    """
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    if codes.ndim != 2:
        raise MetricInputError(f"{what}codes must be a 2-D array [N, D], got shape {codes.shape}")
    if factors.ndim != 2:
        raise MetricInputError(f"{what}factors must be a 2-D array [N, K], got shape {factors.shape}")
    if not (np.issubdtype(codes.dtype, np.number) or codes.dtype == bool):
        raise MetricInputError(f"{what}codes must be numeric, got dtype {codes.dtype}")
    if not np.issubdtype(codes.dtype, np.floating):
        codes = codes.astype(np.float64)
    if codes.shape[0] != factors.shape[0]:
        raise MetricInputError(f"{what}codes have {codes.shape[0]} rows but factors have {factors.shape[0]}")
    if codes.shape[0] < min_samples:
        raise MetricInputError(f"{what}needs at least {min_samples} samples, got {codes.shape[0]}")
    if codes.shape[1] < 1 or factors.shape[1] < 1:
        raise MetricInputError(
            f"{what}needs at least one code dim and one factor, got {codes.shape} and {factors.shape}"
        )
    if not np.isfinite(codes).all():
        bad = np.flatnonzero(~np.isfinite(codes).all(axis=0)).tolist()
        raise MetricInputError(f"{what}codes contain NaN or inf (code dims {bad[:5]}); fix the encoder output")
    factors = _as_class_indices(factors, what)
    if require_varying:
        lo, hi = factors.min(axis=0), factors.max(axis=0)
        constant = np.flatnonzero(lo == hi)
        if constant.size:
            k = int(constant[0])
            raise MetricInputError(
                f"{what}factor column {k} has a single value ({lo[k]}); drop constant factors before scoring"
            )
    return codes, factors


def _as_class_indices(factors: np.ndarray, what: str) -> np.ndarray:
    """factors as int64, rejecting non-integer values with a hint to discretise them first."""
    if factors.dtype == bool or np.issubdtype(factors.dtype, np.integer):
        return factors.astype(np.int64, copy=False)
    if np.issubdtype(factors.dtype, np.floating):
        whole = np.isfinite(factors) & (factors == np.round(factors))
        if whole.all():
            return factors.astype(np.int64)
        k = int(np.flatnonzero(~whole.all(axis=0))[0])
        raise MetricInputError(
            f"{what}factors must be integer class indices; column {k} has non-integer values "
            "(discretise continuous factors first, e.g. np.unique(y, return_inverse=True))"
        )
    raise MetricInputError(f"{what}factors must be integer class indices, got dtype {factors.dtype}")


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Bin every code dim into ``num_bins`` equal-width bins spanning that dim's own min..max.

    Per dim: ``edges = np.histogram(z, num_bins)[1]`` and ``labels = np.digitize(z, edges[:-1])``,
    computed in the input dtype (metrics.md §0.1). Labels run 1..num_bins (the maximum lands in the
    last bin); a constant dim gets a single label.

    Args:
        codes: [N, D] real codes.
        num_bins: bins per dim.
    Returns:
        [N, D] int64 bin labels.
    """
    codes = np.asarray(codes)
    labels = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], num_bins)[1]
        labels[:, i] = np.digitize(codes[:, i], edges[:-1])
    return labels


def _dense_labels(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel every column of x [N, C] to 0..m-1; returns labels [N, C] int64 and distinct counts [C].

    Small-range integer columns are shifted by their minimum (unused values leave empty cells, which
    contribute nothing); anything else goes through ``np.unique``.
    """
    n, c = x.shape
    out = np.empty((n, c), dtype=np.int64)
    num_values = np.empty(c, dtype=np.int64)
    for j in range(c):
        col = x[:, j]
        if np.issubdtype(col.dtype, np.integer) and int(col.max()) - int(col.min()) <= 4 * n:
            out[:, j] = col.astype(np.int64) - int(col.min())
            num_values[j] = np.count_nonzero(np.bincount(out[:, j]))
        else:
            uniq, out[:, j] = np.unique(col, return_inverse=True)
            num_values[j] = len(uniq)
    return out, num_values


def discrete_mutual_info(codes_discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) between every discrete code dim and every factor.

    Equals ``sklearn.metrics.mutual_info_score(factors[:, k], codes_discrete[:, i])`` for every pair
    (to ~1e-15), computed from contingency counts for all dims of a factor in one ``np.bincount``:
    ``I = sum_{b,y} (c_by / N) * log(N c_by / (c_b c_y))``, clipped at 0, and 0 when either variable
    takes a single value (as sklearn does).

    Args:
        codes_discrete: [N, D] discrete labels (e.g. from :func:`histogram_discretize`).
        factors: [N, K] discrete labels.
    Returns:
        [D, K] float64 mutual information in nats.
    """
    b, b_values = _dense_labels(np.asarray(codes_discrete))
    y, y_values = _dense_labels(np.asarray(factors))
    n, d = b.shape
    num_bins = int(b.max()) + 1
    mi = np.zeros((d, y.shape[1]))
    for k in range(y.shape[1]):
        n_y = int(y[:, k].max()) + 1
        step = max(1, _MAX_CELLS // (num_bins * n_y))
        for lo in range(0, d, step):
            dims = np.arange(lo, min(d, lo + step))
            index = ((dims - lo) * num_bins + b[:, dims]) * n_y + y[:, k : k + 1]
            counts = np.bincount(index.ravel(), minlength=len(dims) * num_bins * n_y)
            mi[dims, k] = _mi_from_counts(counts.reshape(len(dims), num_bins, n_y).astype(np.float64), n)
    mi[b_values == 1, :] = 0.0
    mi[:, y_values == 1] = 0.0
    return mi


def _mi_from_counts(counts: np.ndarray, n: int) -> np.ndarray:
    """MI in nats from contingency counts [G, B, Y] of G tables over the same n rows -> [G]."""
    c_b = counts.sum(axis=2, keepdims=True)
    c_y = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = counts * (np.log(counts) - np.log(c_b) - np.log(c_y) + np.log(n))
    terms[counts == 0] = 0.0
    return np.clip(terms.sum(axis=(1, 2)) / n, 0.0, None)


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of every column of factors [N, K] -> [K]; equals ``I(y; y)`` of sklearn."""
    y, _ = _dense_labels(np.asarray(factors))
    n = y.shape[0]
    h = np.zeros(y.shape[1])
    for k in range(y.shape[1]):
        p = np.bincount(y[:, k]) / n
        p = p[p > 0]
        h[k] = max(0.0, float(-(p * np.log(p)).sum()))
    return h


def shuffle_split(
    codes: np.ndarray, factors: np.ndarray, seed: int, train_fraction: float = 2 / 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle rows with ``RandomState(seed)`` and split them into train/test (2:1 by default).

    Used when arrays are given directly to DCI (metrics.md §0, "Arrays given directly").

    Returns:
        codes_train, factors_train, codes_test, factors_test.
    """
    perm = np.random.RandomState(seed).permutation(len(codes))
    n_train = int(round(train_fraction * len(codes)))
    tr, te = perm[:n_train], perm[n_train:]
    return codes[tr], factors[tr], codes[te], factors[te]
