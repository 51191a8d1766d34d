"""The ``random`` floor: the β-VAE encoder/decoder at its seeded random initialisation, never trained.

benchbench's chance level (methods.md §2): the representation is the mean head of the untrained
disentanglement_lib conv encoder (Locatello et al., ICML 2019, https://arxiv.org/abs/1811.12359),
10-d on ground-truth sets and 32-d on CelebA; samples and traversals go through the equally untrained
decoder. Every preset has ``steps=0``, so the shared train loop takes no optimiser step and the
weights are exactly the Glorot-uniform initialisation drawn from the run seed.

Standardised codes (benchbench's choice, issue 17.3): the untrained mean head's outputs have a spread far
below FactorVAE's absolute prune threshold (std < 0.05), so on raw codes every dimension is pruned, the score
is the 0.000 fallback for every seed, and the regularised BetaVAE-score classifier sees near-zero inputs and
predicts one class. A floor pinned at a fallback says nothing about chance. The factor metrics therefore see
the codes z-normalised with dataset statistics (:func:`~benchbench.method.standardize_codes`, as Diff-AE and
InfoDiffusion get), which leaves MIG, DCI, SAP and modularity unchanged (they are invariant to per-dimension
affine maps) and makes FactorVAE and the BetaVAE score measure an untrained encoder's chance accuracy.
``--set model.standardize_codes=False`` restores the raw codes (the report then flags FactorVAE's degenerate
value). TAD and ``benchbench score`` see raw ``encode`` output either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchbench.baselines.beta_vae import BetaVAE, BetaVAEConfig
from benchbench.config import Preset, TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.method import standardize_codes
from benchbench.registry import register_method


@dataclass(frozen=True)
class RandomFloorConfig(BetaVAEConfig):
    """β-VAE settings (never trained, so ``beta`` has no effect) plus the code post-processing switch.

    Attributes:
        standardize_codes: z-normalise codes before the factor metrics (see the module docstring).
    """

    standardize_codes: bool = True


_NEVER_TRAINED = TrainConfig(steps=0, batch_size=64)

PRESETS = {
    "smoke": Preset(model=RandomFloorConfig(latent_dim=4), train=TrainConfig(steps=0, batch_size=8)),
    "quick": Preset(model=RandomFloorConfig(), train=_NEVER_TRAINED),
    "paper": {
        "default": Preset(RandomFloorConfig(), _NEVER_TRAINED),
        "celeba": Preset(RandomFloorConfig(latent_dim=32), _NEVER_TRAINED),
    },
}


@register_method(
    "random", config=RandomFloorConfig, presets=PRESETS, reference=True,
    description="untrained β-VAE encoder: the chance floor (a reference row, never ranked)",
)
class RandomFloor(BetaVAE):
    """A :class:`BetaVAE` that is only ever used at initialisation (all presets train for 0 steps)."""

    code_rule = "standardized"  # benchbench.method.CODE_RULES; "raw" for an instance with standardize_codes=False

    def __init__(self, cfg: BetaVAEConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        if not getattr(cfg, "standardize_codes", True):
            self.code_rule = "raw"

    def code_postprocess(self, codes: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """codes [M, D] -> transform for codes [N, D]: z-normalisation, or the identity when switched off."""
        if getattr(self.cfg, "standardize_codes", True):
            return standardize_codes(codes)
        return lambda z: z

    def protocol(self) -> dict[str, str]:
        """The β-VAE's parts, untrained."""
        codes = "z-normalised" if getattr(self.cfg, "standardize_codes", True) else "raw"
        return {**super().protocol(), "training": "none: the seeded Glorot-uniform initialisation (0 steps)",
                "factor-metric codes": f"{codes} mean-head outputs"}

    def deviations(self) -> list[str]:
        """No paper has this row: it is benchbench's chance floor."""
        return ["benchbench's chance floor (never trained); no published counterpart"]
