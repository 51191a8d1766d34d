"""The ``random`` floor: the β-VAE encoder/decoder at its seeded random initialisation, never trained.

benchbench's chance level (methods.md §2): the representation is the mean head of the untrained
disentanglement_lib conv encoder (Locatello et al., ICML 2019, https://arxiv.org/abs/1811.12359),
10-d on ground-truth sets and 32-d on CelebA; samples and traversals go through the equally untrained
decoder. Every preset has ``steps=0``, so the shared train loop takes no optimiser step and the
weights are exactly the Glorot-uniform initialisation drawn from the run seed.
"""

from __future__ import annotations

from benchbench.baselines.beta_vae import BetaVAE, BetaVAEConfig
from benchbench.config import Preset, TrainConfig
from benchbench.registry import register_method

_NEVER_TRAINED = TrainConfig(steps=0, batch_size=64)

PRESETS = {
    "smoke": Preset(model=BetaVAEConfig(latent_dim=4), train=TrainConfig(steps=0, batch_size=8)),
    "quick": Preset(model=BetaVAEConfig(), train=_NEVER_TRAINED),
    "paper": {
        "default": Preset(BetaVAEConfig(), _NEVER_TRAINED),
        "celeba": Preset(BetaVAEConfig(latent_dim=32), _NEVER_TRAINED),
    },
}


@register_method(
    "random", config=BetaVAEConfig, presets=PRESETS, description="untrained β-VAE encoder: the chance floor"
)
class RandomFloor(BetaVAE):
    """A :class:`BetaVAE` that is only ever used at initialisation (all presets train for 0 steps)."""

    def protocol(self) -> dict[str, str]:
        """The β-VAE's parts, untrained."""
        return {**super().protocol(), "training": "none: the seeded Glorot-uniform initialisation (0 steps)"}

    def deviations(self) -> list[str]:
        """No paper has this row: it is benchbench's chance floor."""
        return ["benchbench's chance floor (never trained); no published counterpart"]
