"""TAD (Total AUROC Difference) and ATTRS on binary attributes (CelebA).

Reference: Yeats, Liu, Womble and Li, "NashAE: Disentangling Representations through Adversarial
Covariance Minimization", ECCV 2022, https://arxiv.org/abs/2209.10677 (TAD, the CelebA experiment). Code:
ericyeats/nashae-beamsynthesis (``ae_utils_exp.py``: ``calculate_auroc``/``aurocs``, the 0.01 threshold
grid; ``celeba_eval.ipynb``: label mutual information and the filters), the same grid at step 0.1 in
ThomasMrY/DisDiff (``ae_utils_exp.py``), and the exact ``sklearn.metrics.roc_auc_score`` version in
isjakewong/InfoDiffusion (``eval_disentanglement.py``). This module re-implements them (metrics.md §8):

    U[a, j]  = AUROC of predicting attribute a from code dim j, best of z_j and -z_j
    gap_a    = max_j U[a, j] - max_{j != j*} U[a, j]                  (j* = first argmax)
    r_a      = max_{b != a} I(a; b) / H(a)                           (label redundancy, nats)
    kept     = {a : max_j U[a, j] >= 0.75 and r_a <= 0.2}
    TAD      = sum_{a in kept} gap_a,    ATTRS = |kept|

AUROC variants: ``exact`` (rank form of the Mann-Whitney statistic, ties count 1/2; equals
``roc_auc_score``), ``nashae`` (101 thresholds, step 0.01) and ``disdiff`` (11 thresholds, step 0.1).
The grid variants are biased upward and give dims whose range is at most 0.2 an AUROC of 0.5, so the
three give different numbers; the grid variants run in float32, as the reference's torch code (pinned against
DisDiff's ``ae_utils_exp.aurocs`` in tests/test_tad_protocols.py). The variant is stored beside every TAD value.
Which rows are scored and how codes are prepared (one pass on test images, InfoDiffusion's 5-fold protocol,
DisDiff's raw codes) is the protocol's business: ``benchbench.metrics.tad_protocols`` (``eval.tad.protocol``),
stored beside every value too.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.stats import rankdata

from benchbench.errors import ConfigError, MetricInputError
from benchbench.metrics.base import MetricResult
from benchbench.metrics.settings import TADSettings
from benchbench.metrics.tad_protocols import evaluation_rows, get_protocol, kfold_tad, resolve_settings
from benchbench.registry import register_metric

# Threshold step of each grid variant (NashAE ``calculate_auroc(stepsize=0.01)``; DisDiff uses 0.1).
GRID_STEPS: dict[str, float] = {"nashae": 0.01, "disdiff": 0.1}
VARIANTS: tuple[str, ...] = ("exact", *GRID_STEPS)
# A grid-variant dim whose range (max - min) is at most this gets AUROC 0.5 (reference ``aurocs``).
MIN_GRID_RANGE = 0.2
# Codes (rows x dims) bucketed per block by the grid variants; bounds memory, not results.
_GRID_BLOCK_CELLS = 1 << 23


def auroc_matrix(codes: np.ndarray, attributes: np.ndarray, variant: str = "exact") -> np.ndarray:
    """AUROC of every (attribute, code dim) pair, taking the better of z and -z.

    Args:
        codes: [N, D] real codes.
        attributes: [N, K] binary labels in {0, 1} (bool, integer or float).
        variant: "exact" (rank-based, equals ``sklearn.metrics.roc_auc_score`` including ties),
            "nashae" (threshold grid, step 0.01) or "disdiff" (threshold grid, step 0.1).
    Returns:
        U [K, D] float64 in [0.5, 1] (the grid variants can leave this range slightly); rows of
        attributes without positives or without negatives are NaN.
    Raises:
        MetricInputError: NaN/inf codes, wrong shapes, mismatched lengths, non-binary attributes.
        ConfigError: unknown variant.

    Example:
        >>> a = np.array([[0], [0], [1], [1]])
        >>> auroc_matrix(np.array([[0.1, 3.0], [0.2, 1.0], [0.3, 2.0], [0.4, 1.0]]), a).tolist()
        [[1.0, 0.625]]
    """
    _check_variant(variant)
    codes, attributes = _check_inputs(codes, attributes, "AUROC: ")
    return _auroc_matrix(codes, attributes, variant)


def _auroc_matrix(codes: np.ndarray, attributes: np.ndarray, variant: str) -> np.ndarray:
    """auroc_matrix on checked float64 codes [N, D] and {0, 1} float64 attributes [N, K]."""
    n = codes.shape[0]
    pos = attributes.sum(axis=0)  # [K]
    neg = n - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        if variant == "exact":
            u = _exact_auroc(codes, attributes, pos, neg)
        else:
            u = _grid_auroc(codes, attributes, pos, neg, GRID_STEPS[variant])
    u[(pos == 0) | (neg == 0)] = np.nan
    return u


def _exact_auroc(codes: np.ndarray, attributes: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney form: AUC = (sum of the positives' average ranks - P(P+1)/2) / (P Q), for all pairs.

    Average ranks make a tie between a positive and a negative count 1/2, as ``roc_auc_score`` does.
    Ranks are half-integers, so the rank sums (one matmul) are exact in float64.
    """
    ranks = rankdata(codes, method="average", axis=0)  # [N, D]
    rank_sums = attributes.T @ ranks  # [K, D]
    auc = (rank_sums - (pos * (pos + 1) / 2)[:, None]) / (pos * neg)[:, None]
    return np.maximum(auc, 1.0 - auc)


def _grid_auroc(
    codes: np.ndarray, attributes: np.ndarray, pos: np.ndarray, neg: np.ndarray, step: float
) -> np.ndarray:
    """NashAE's threshold-grid AUROC for all pairs (metrics.md §8, "grid").

    Per dim with range M - m > 0.2, thresholds theta_t = m + t (M - m), t in arange(0, 1.0001, step),
    which never decrease in t. A code's bucket g = #(theta_t <= z) (one searchsorted per dim) says it
    lies below exactly the thresholds t >= g, so cumulative bucket counts give, at every threshold, the
    codes and the positives with z < theta_t (rule "-"); rule "+" (z >= theta_t) is the complement.
    The bucket counts of all dims and attributes come from one sparse matmul, in exact integers.
    """
    n, d = codes.shape
    k = attributes.shape[1]
    # float32 throughout, as the reference's torch code: its codes, min/max, range test and thresholds
    # thr = t * (max - min) + min are float32 (t from torch.arange, computed in double and rounded), so a threshold
    # can round past the extreme code; float64 here would move such a code across it (up to 1 / P in TPR).
    grid = np.arange(0.0, 1.0001, step).astype(np.float32)  # [T]
    num_t = len(grid)
    codes = codes.astype(np.float32)
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    wide = np.flatnonzero(hi - lo > np.float32(MIN_GRID_RANGE))
    u = np.full((k, d), 0.5)
    weights = np.column_stack([np.ones(n), attributes])  # [N, 1 + K]: every code, then each attribute's
    block = max(1, _GRID_BLOCK_CELLS // n)
    for start in range(0, wide.size, block):
        dims = wide[start : start + block]
        bucket = np.empty((n, dims.size), dtype=np.int64)
        for b, j in enumerate(dims):
            bucket[:, b] = np.searchsorted(grid * (hi[j] - lo[j]) + lo[j], codes[:, j], side="right")
        bucket += (num_t + 1) * np.arange(dims.size)  # row of (dim b, bucket g) in the count matrix
        indicator = sparse.csc_matrix(  # [(T + 1) B, N]: column i has a 1 in each dim's bucket of row i
            (np.ones(bucket.size), bucket.ravel(), np.arange(0, bucket.size + 1, dims.size)),
            shape=((num_t + 1) * dims.size, n),
        )
        counts = (indicator @ weights).reshape(dims.size, num_t + 1, 1 + k)
        below = np.cumsum(counts, axis=1)[:, :num_t].transpose(1, 0, 2)  # [T, B, 1 + K]: z < theta_t
        tp_minus, fp_minus = below[..., 1:], below[..., :1] - below[..., 1:]
        tp_plus, fp_plus = pos - tp_minus, (n - below[..., :1]) - (pos - tp_minus)
        area_plus = _right_endpoint_area(fp_plus / neg, tp_plus / pos)  # [B, K]
        area_minus = _right_endpoint_area(fp_minus / neg, tp_minus / pos)
        u[:, dims] = np.maximum(area_plus, area_minus).T
    return u


def _right_endpoint_area(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """Reference area of an ROC given at T thresholds: FPR and TPR sorted *independently* ascending,
    then sum_{i >= 1} TPR_i (FPR_i - FPR_{i-1}) (no (0, 0) point added). fpr, tpr: [T, ...] -> [...]."""
    fpr, tpr = np.sort(fpr, axis=0), np.sort(tpr, axis=0)
    return (tpr[1:] * np.diff(fpr, axis=0)).sum(axis=0)


def label_redundancy(attributes: np.ndarray) -> np.ndarray:
    """Share of each label's entropy that the most informative other label explains.

    ``I(a; b) = sum_{u, v in {0, 1}} p(u, v) ln(p(u, v) / (p(u) p(v)))`` from empirical frequencies
    (terms with a zero joint dropped, clipped at >= 0), ``H(a) = I(a; a)``; NashAE's
    ``1 - (H - max MI) / H``.

    Args:
        attributes: [N, K] binary labels in {0, 1}.
    Returns:
        r [K] = max_{b != a} I(a; b) / H(a); NaN where H(a) = 0 (a constant label); 0 when K = 1 and
        the label varies (no other label can explain it).

    Example:
        >>> a = np.array([[0, 0, 0], [0, 0, 1], [1, 1, 0], [1, 1, 1]])
        >>> label_redundancy(a).tolist()
        [1.0, 1.0, 0.0]
    """
    attributes = _check_attributes(np.asarray(attributes), "label redundancy: ")
    mi = _label_mutual_info(attributes)
    h = np.diag(mi).copy()
    others = mi.copy()
    np.fill_diagonal(others, 0.0)  # MI >= 0, so a zeroed diagonal leaves the max over b != a
    with np.errstate(divide="ignore", invalid="ignore"):
        return others.max(axis=1) / np.where(h > 0, h, np.nan)


def _label_mutual_info(attributes: np.ndarray) -> np.ndarray:
    """Plug-in MI (nats) between every pair of binary label columns [N, K] -> [K, K] (diagonal = H)."""
    a = attributes.astype(np.float64)
    n = a.shape[0]
    ones = a.sum(axis=0)  # [K]
    n11 = a.T @ a  # counts are integers: exact in float64
    n10 = ones[:, None] - n11
    n01 = ones[None, :] - n11
    n00 = n - n11 - n10 - n01
    zeros = n - ones
    mi = np.zeros_like(n11)
    for joint, row, col in ((n11, ones, ones), (n10, ones, zeros), (n01, zeros, ones), (n00, zeros, zeros)):
        marg = row[:, None] * col[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            term = joint / n * np.log(joint * n / marg)
        mi += np.where(joint > 0, term, 0.0)
    return np.clip(mi, 0.0, None)


def tad(
    codes: np.ndarray,
    attributes: np.ndarray,
    variant: str = "exact",
    auroc_threshold: float = 0.75,
    redundancy_threshold: float = 0.2,
    attr_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """TAD and ATTRS of codes against binary attributes (metrics.md §8).

    Args:
        codes: [N, D] codes, D >= 2 (every row is used; no resampling).
        attributes: [N, K] binary labels in {0, 1}.
        variant: AUROC variant, see :func:`auroc_matrix`.
        auroc_threshold: keep an attribute only if its best AUROC is at least this.
        redundancy_threshold: keep an attribute only if its label redundancy is at most this.
        attr_names: K names used in the per-attribute detail and in warnings (default attr0, attr1, ...).
    Returns:
        dict with ``tad`` (float, sum of the kept gaps), ``attrs`` (int, number kept) and
        ``per_attribute``: K dicts {index, name, best_auroc, second_auroc, gap, best_dim, redundancy,
        kept, skipped_reason}. An attribute without positives or without negatives is skipped: its
        numbers are None, it is not kept, and one warning names all such attributes.
    Raises:
        MetricInputError: D < 2 (we reject it; the reference would mask the best entry to 0 and report
            gap = best), NaN/inf codes, mismatched lengths, non-binary attributes, wrong name count.
        ConfigError: unknown variant.

    Example:
        >>> a = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
        >>> out = tad(a.astype(float), a)
        >>> out["tad"], out["attrs"], out["per_attribute"][0]["gap"]
        (1.0, 2, 0.5)
    """
    _check_variant(variant)
    codes, attributes = _check_inputs(codes, attributes, "TAD: ")
    n, d = codes.shape
    k = attributes.shape[1]
    if d < 2:
        raise MetricInputError(f"TAD: needs at least 2 code dims (the gap compares the best two), got {d}")
    names = tuple(attr_names) if attr_names is not None else tuple(f"attr{i}" for i in range(k))
    if len(names) != k:
        raise MetricInputError(f"TAD: got {len(names)} attribute names for {k} attribute columns")

    u = _auroc_matrix(codes, attributes, variant)  # [K, D]
    redundancy = label_redundancy(attributes)
    pos = attributes.sum(axis=0)
    skipped = (pos == 0) | (pos == n)
    if skipped.any():
        bad = [names[i] for i in np.flatnonzero(skipped)]
        warnings.warn(
            f"TAD: attributes {bad} have no positives or no negatives in the evaluation set; skipped (not kept)",
            stacklevel=2,
        )

    filled = np.where(skipped[:, None], 0.5, u)
    best_dim = np.argmax(filled, axis=1)  # first dim on ties
    rows = np.arange(k)
    best = filled[rows, best_dim]
    others = filled.copy()
    others[rows, best_dim] = -np.inf
    second = others.max(axis=1)
    gap = best - second
    with np.errstate(invalid="ignore"):  # NaN redundancy (constant label) compares False: not kept
        kept = ~skipped & (best >= auroc_threshold) & (redundancy <= redundancy_threshold)

    per_attribute = []
    for i in range(k):
        ok = not skipped[i]
        per_attribute.append(
            {
                "index": i,
                "name": names[i],
                "best_auroc": float(best[i]) if ok else None,
                "second_auroc": float(second[i]) if ok else None,
                "gap": float(gap[i]) if ok else None,
                "best_dim": int(best_dim[i]) if ok else None,
                "redundancy": float(redundancy[i]) if ok else None,
                "kept": bool(kept[i]),
                "skipped_reason": None if ok else ("no positives" if pos[i] == 0 else "no negatives"),
            }
        )
    return {"tad": float(gap[kept].sum()), "attrs": int(kept.sum()), "per_attribute": per_attribute}


def tad_from_arrays(codes: np.ndarray, attributes: np.ndarray, settings: TADSettings, seed: int) -> MetricResult:
    """TAD on arrays given directly (``benchbench score --attributes``); attributes named attr0, attr1, ...

    The rows are the evaluation set as given, except under ``protocol=infodiffusion``, which scores the first
    ``num_images`` rows (the official ``a[:10000]``; give train-split codes in dataset order).

    Returns:
        the same :class:`MetricResult` as :func:`tad_metric`.
    """
    k = np.shape(attributes)[1] if np.ndim(attributes) == 2 else 0
    if get_protocol(settings.protocol).folds:
        codes, attributes = np.asarray(codes)[: settings.num_images], np.asarray(attributes)[: settings.num_images]
    return tad_metric(codes, attributes, tuple(f"attr{i}" for i in range(k)), settings, seed)


@register_metric(
    "tad",
    higher_is_better=True,
    needs="codes+attributes",
    settings_key="tad",
    label="TAD",
    arrays=tad_from_arrays,
    resolve=resolve_settings,
    rows=evaluation_rows,
)
def tad_metric(
    codes: np.ndarray, attributes: np.ndarray, attr_names: tuple[str, ...], settings: TADSettings, seed: int
) -> MetricResult:
    """Registered wrapper: TAD of the evaluation set the evaluator picked, under ``settings.protocol``.

    Args:
        codes: [N, D] codes of the evaluation images (the rows ``tad_protocols.evaluation_rows`` chose).
        attributes: [N, K] binary attributes of the same images.
        attr_names: K attribute names.
        settings: protocol, variant and thresholds (``num_images`` is the evaluator's business).
        seed: unused (TAD draws nothing; the folds have their own fixed seed); accepted for the common signature.
    Returns:
        value = TAD (the mean over folds for a cross-validated protocol); extras: attrs, variant, protocol and
        either ``attributes`` (the per-attribute detail, one pass) or tad_std, attrs_std and ``folds``
        (per-fold TAD, ATTRS and kept attributes).
    """
    del seed
    settings = resolve_settings(settings)
    proto = get_protocol(settings.protocol)
    if proto.folds:
        out = kfold_tad(codes, attributes, settings, attr_names, proto.folds)
        return MetricResult(out.pop("tad"), {**out, "variant": settings.variant, "protocol": proto.name,
                                             "rows": int(np.shape(codes)[0])})
    out = tad(
        codes,
        attributes,
        variant=settings.variant,
        auroc_threshold=settings.auroc_threshold,
        redundancy_threshold=settings.redundancy_threshold,
        attr_names=attr_names,
    )
    return MetricResult(out["tad"], {"attrs": out["attrs"], "variant": settings.variant, "protocol": proto.name,
                                     "rows": int(np.shape(codes)[0]), "attributes": out["per_attribute"]})


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        close = difflib.get_close_matches(variant, VARIANTS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"TAD: unknown AUROC variant {variant!r}; {hint}known: {', '.join(VARIANTS)}")


def _check_inputs(codes: np.ndarray, attributes: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes as float64 [N, D] and attributes as {0, 1} float64 [N, K], or a one-line MetricInputError."""
    codes = np.asarray(codes)
    attributes = np.asarray(attributes)
    if codes.ndim != 2:
        raise MetricInputError(f"{what}codes must be a 2-D array [N, D], got shape {codes.shape}")
    if not (np.issubdtype(codes.dtype, np.number) or codes.dtype == bool):
        raise MetricInputError(f"{what}codes must be numeric, got dtype {codes.dtype}")
    attributes = _check_attributes(attributes, what)
    if codes.shape[0] != attributes.shape[0]:
        raise MetricInputError(f"{what}codes have {codes.shape[0]} rows but attributes have {attributes.shape[0]}")
    if codes.shape[0] < 2 or codes.shape[1] < 1:
        raise MetricInputError(f"{what}needs at least 2 rows and 1 code dim, got codes of shape {codes.shape}")
    codes = codes.astype(np.float64)  # exact for float32 input: ties are kept
    if not np.isfinite(codes).all():
        bad = np.flatnonzero(~np.isfinite(codes).all(axis=0)).tolist()
        raise MetricInputError(f"{what}codes contain NaN or inf (code dims {bad[:5]}); fix the encoder output")
    return codes, attributes


def _check_attributes(attributes: np.ndarray, what: str) -> np.ndarray:
    """Attributes [N, K] with values in {0, 1} as float64, or a one-line MetricInputError."""
    if attributes.ndim != 2 or attributes.shape[1] < 1:
        raise MetricInputError(
            f"{what}attributes must be a 2-D array [N, K] with K >= 1, got shape {attributes.shape} "
            "(use a[:, None] for a single attribute)"
        )
    if not (np.issubdtype(attributes.dtype, np.number) or attributes.dtype == bool):
        raise MetricInputError(f"{what}attributes must be numeric 0/1 labels, got dtype {attributes.dtype}")
    binary = (attributes == 0) | (attributes == 1)
    if not binary.all():
        col = int(np.flatnonzero(~binary.all(axis=0))[0])
        value = attributes[:, col][~binary[:, col]][0]
        raise MetricInputError(
            f"{what}attributes must be 0/1; column {col} holds {value} (map CelebA's -1/1 labels with (a + 1) // 2)"
        )
    return attributes.astype(np.float64)
