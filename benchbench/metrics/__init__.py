"""Built-in metrics: one module per metric; importing a module runs its ``@register_metric``.

Import the pure functions from their modules, e.g. ``from benchbench.metrics.mig import mig``.
"""

from benchbench.metrics import dci, factor_vae, fid, mig  # noqa: F401  (registers each metric)
from benchbench.metrics.base import FactorSource, MetricResult

__all__ = ["FactorSource", "MetricResult"]
