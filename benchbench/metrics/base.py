"""The interface between the evaluator and the metrics: a source of factor-labelled codes, and a result.

Metrics never import methods: they see a :class:`FactorSource` whose ``represent`` maps factor
indices to codes (the evaluator builds it from a dataset and an encoder, or from a code table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class FactorSource(Protocol):
    """Ground-truth sampling plus a representation function (disentanglement_lib semantics)."""

    factor_sizes: tuple[int, ...]

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """[n, K] integer factor indices, drawn factor by factor with ``random_state.randint``."""
        ...

    def represent(self, factors: np.ndarray) -> np.ndarray:
        """Codes [n, D] (float64) of the images showing ``factors`` [n, K]."""
        ...


@dataclass
class MetricResult:
    """A metric's headline value plus the numbers stored beside it.

    Attributes:
        value: the headline number (e.g. FactorVAE eval accuracy, DCI disentanglement).
        extras: other named numbers (e.g. completeness, informativeness, num_active_dims).
    """

    value: float
    extras: dict[str, Any] = field(default_factory=dict)
