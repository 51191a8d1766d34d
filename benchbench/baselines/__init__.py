"""VAE baselines, registered as ``betavae``, ``infovae`` and ``random`` (importing runs the decorators)."""

from benchbench.baselines import beta_vae as beta_vae
from benchbench.baselines import info_vae as info_vae
from benchbench.baselines import random_floor as random_floor
