"""VAE baselines, registered as ``betavae``, ``infovae``, ``random`` and disentanglement_lib's family
(``factor-vae``, ``betatcvae``, ``dipvae1``, ``dipvae2``, ``annealedvae``); importing runs the decorators."""

from benchbench.baselines import annealed_vae as annealed_vae
from benchbench.baselines import beta_tc_vae as beta_tc_vae
from benchbench.baselines import beta_vae as beta_vae
from benchbench.baselines import dip_vae as dip_vae
from benchbench.baselines import factor_vae as factor_vae
from benchbench.baselines import info_vae as info_vae
from benchbench.baselines import random_floor as random_floor
