"""Code-table mode (metrics.md §0): a FactorSource over codes precomputed for every grid point.

DisDiff and disentanglement_lib evaluate this way: encode each image of a ground-truth set once, then the
representation function is a row lookup by flat index ``sum_k f_k * base_k`` (last factor fastest). Use it
to score codes you computed elsewhere with the sampling metrics (FactorVAE, BetaVAE score):

    >>> table = CodeTable((2, 3), np.arange(12.0).reshape(6, 2))
    >>> factor_vae_metric(table, FactorVAESettings(), seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchbench.errors import MetricInputError


class CodeTable:
    """Codes [prod(factor_sizes), D] in flat-index order, served as a FactorSource.

    Attributes:
        calls: how many times ``represent`` was called (tests use it to check batching).
    """

    def __init__(self, factor_sizes: tuple[int, ...], codes: np.ndarray) -> None:
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        self.table = np.asarray(codes, dtype=np.float64)
        if self.table.ndim != 2 or len(self.table) != int(np.prod(self.factor_sizes)):
            raise MetricInputError(
                f"code table must be [{int(np.prod(self.factor_sizes))}, D] for factor sizes {self.factor_sizes}, "
                f"got {self.table.shape}"
            )
        self.calls = 0

    @classmethod
    def from_function(cls, factor_sizes: tuple[int, ...], code_fn: Callable[[np.ndarray], np.ndarray]) -> CodeTable:
        """A table whose row for factor vector f [K] is ``code_fn(F)`` evaluated on the whole grid F [N, K]."""
        grid = np.stack(np.unravel_index(np.arange(int(np.prod(factor_sizes))), factor_sizes), axis=1)
        return cls(factor_sizes, code_fn(grid))

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """[n, K] factor indices, drawn factor by factor (disentanglement_lib's order)."""
        return np.stack([random_state.randint(s, size=n) for s in self.factor_sizes], axis=1)

    def represent(self, factors: np.ndarray) -> np.ndarray:
        """Codes [n, D] of the factor vectors [n, K]."""
        self.calls += 1
        return self.table[np.ravel_multi_index(tuple(np.asarray(factors).T), self.factor_sizes)]
