"""Built-in metrics: one module per metric; importing a module runs its ``@register_metric``.

Import the pure functions from their modules, e.g. ``from benchbench.metrics.mig import mig``.

Which codes the factor metrics see (one rule, recorded as ``code_rule`` with every number; the evaluator applies the
method's ``code_postprocess``, see ``benchbench.method.CODE_RULES``):

* VAEs (betavae, infovae, random): the raw posterior mean, disentanglement_lib's ``mean`` representation, as every
  published VAE number was computed; the KL / MMD prior already pins these codes near unit scale.
* Every diffusion method (diffae, pdae, disdiff, infodiffusion): codes z-normalised per dim with the statistics of
  ``eval.postprocess_fit`` dataset codes, after the method's own published reduction (DisDiff's per-factor PCA).
  Two metrics depend on a code's scale: FactorVAE prunes dims with std < 0.05 (an absolute threshold) and the BetaVAE
  score fits an L2-regularised logistic regression. A diffusion encoder has no prior that fixes its scale, so with raw
  codes these two would prune or regularise by an arbitrary encoder scale, differently per method (Diff-AE's raw
  z_sem of a small model can sit entirely under 0.05). MIG and modularity bin each dim over its own range, DCI's
  trees and SAP's thresholds are order-based, so they are unchanged; TAD sees raw codes (its protocols say how).
  DisDiff's published FactorVAE pruned raw PCA scores; standardising them keeps a PC with std < 0.05 that DisDiff
  would drop, a difference its ``deviations()`` records.
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
