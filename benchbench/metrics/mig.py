"""Mutual Information Gap (MIG).

Reference: Chen, Li, Grosse and Duvenaud, "Isolating Sources of Disentanglement in Variational
Autoencoders", NeurIPS 2018, https://arxiv.org/abs/1802.04942 (Sec. 4.1), in the histogram variant of
google-research/disentanglement_lib (``evaluation/metrics/mig.py``): every code dim is cut into 20
equal-width bins on the scored sample and MI is the plug-in estimate in nats (metrics.md §2).

    MIG = mean_k (I(z_j1; y_k) - I(z_j2; y_k)) / H(y_k)

where j1, j2 are the code dims with the largest and second-largest MI with factor k.
"""

from __future__ import annotations

import numpy as np

from benchbench.errors import MetricInputError
from benchbench.metrics.base import FactorSource, MetricResult
from benchbench.metrics.settings import MIGSettings
from benchbench.metrics.utils import (
    check_codes_factors,
    discrete_entropy,
    discrete_mutual_info,
    generate_batch_factor_code,
    histogram_discretize,
)
from benchbench.registry import register_metric


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> tuple[float, np.ndarray]:
    """Mean over factors of the entropy-normalised gap between the two most informative code dims.

    Args:
        codes: [N, D] codes, D >= 2; discretised per dim on this very sample (input dtype kept).
        factors: [N, K] integer class indices; every factor must take at least two values.
        num_bins: equal-width bins per code dim.
    Returns:
        (score, per_factor_gaps [K]); score in [0, 1], 1 when each factor is captured by one dim alone.
    Raises:
        MetricInputError: D < 2, a single-valued factor, NaN codes, mismatched lengths.

    Example:
        >>> y = np.repeat(np.arange(4), 25)[:, None]
        >>> round(mig(np.hstack([y, np.zeros_like(y)]).astype(float), y)[0], 6)
        1.0
    """
    codes, factors = check_codes_factors(codes, factors, what="MIG: ")
    if codes.shape[1] < 2:
        raise MetricInputError(f"MIG: needs at least 2 code dims (the gap compares two), got {codes.shape[1]}")
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)  # [D, K] nats
    top2 = -np.sort(-mi, axis=0)[:2]  # [2, K], largest first
    gaps = (top2[0] - top2[1]) / discrete_entropy(factors)  # I(y; y) = H(y) > 0, checked above
    return float(np.mean(gaps)), gaps


def mig_arrays(codes: np.ndarray, factors: np.ndarray, settings: MIGSettings, seed: int) -> MetricResult:
    """MIG of user-supplied arrays: every row is used as given (no resampling; metrics.md §0)."""
    del seed  # deterministic
    score, gaps = mig(codes, factors, settings.num_bins)
    return MetricResult(score, {"per_factor_gaps": [float(g) for g in gaps], "num_points": len(codes)})


@register_metric(
    "mig", higher_is_better=True, needs="codes+factors", sampling=False, settings_key="mig", label="MIG",
    arrays=mig_arrays,
)
def mig_metric(source: FactorSource, settings: MIGSettings, seed: int) -> MetricResult:
    """MIG on ``settings.num_train`` points drawn with ``RandomState(seed)`` in chunks of 16.

    Returns:
        value = MIG; extras: per_factor_gaps (list of K floats).
    """
    codes, factors = generate_batch_factor_code(
        source, settings.num_train, np.random.RandomState(seed), settings.batch_size
    )
    score, gaps = mig(codes, factors, settings.num_bins)
    return MetricResult(score, {"per_factor_gaps": [float(g) for g in gaps]})
