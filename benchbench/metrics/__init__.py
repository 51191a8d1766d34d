"""Built-in metrics: one module per metric; importing a module runs its ``@register_metric``.

Import the pure functions from their modules, e.g. ``from benchbench.metrics.mig import mig``.
"""

from benchbench.metrics import (  # noqa: F401  (importing a module registers its metric)
    betavae_score,
    dci,
    factor_vae,
    fid,
    mig,
    modularity,
    pmg,
    sap,
    tad,
)
from benchbench.metrics.base import FactorSource, MetricResult

__all__ = ["FactorSource", "MetricResult"]
