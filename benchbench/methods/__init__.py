"""Diffusion-based methods (diffae, pdae, disdiff, infodiffusion).

Each lands here as one module and one import line below (importing it runs its ``register_method``
decorator); the VAE baselines live in :mod:`benchbench.baselines`.
"""

from benchbench.methods import diffae as diffae
from benchbench.methods import disdiff as disdiff
from benchbench.methods import dpm as dpm
from benchbench.methods import infodiffusion as infodiffusion
from benchbench.methods import latent_prior as latent_prior
from benchbench.methods import ldm as ldm
from benchbench.methods import pdae as pdae
