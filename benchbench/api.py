"""The public surface for writing a method: everything a plugin imports, from one place.

``from benchbench.api import Method, Preset, TrainConfig, DataSpec, register_method`` is all a minimal plugin
needs (README, "Writing a method"). These names stay stable across releases; anything else in benchbench is
internal and may move.

* :class:`Method`: the base class (``__init__(cfg, spec)``, ``loss``, ``encode``, optional ``sample``,
  ``reconstruct``, ``traverse``, ``code_postprocess``).
* :class:`GaussianVAE` with :func:`gaussian_kl` and :func:`bernoulli_nll`: the conv VAE the β-VAE and InfoVAE
  baselines subclass; override ``regularizer(mu, logvar, z) -> {"reg": ..., **terms}`` to get a new VAE.
* :class:`Preset` (``Preset(model=<your config>, train=TrainConfig(...))``) and :class:`TrainConfig` (the shared
  training loop's settings: steps, batch size, lr, EMA, ...).
* :class:`DataSpec`: what the dataset tells a method (channels, resolution, factor names, ...).
* :func:`register_method`: the decorator; it rejects a method without ``smoke``, ``quick`` and ``paper`` presets.
* :func:`randn`, :func:`standardize_codes`: CPU-seeded noise for ``sample``; per-dimension code standardisation.
"""

from __future__ import annotations

from benchbench.baselines.vae import GaussianVAE, bernoulli_nll, gaussian_kl
from benchbench.config import Preset, TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.method import Method, randn, standardize_codes
from benchbench.registry import register_method

__all__ = ["DataSpec", "GaussianVAE", "Method", "Preset", "TrainConfig", "bernoulli_nll", "gaussian_kl", "randn",
           "register_method", "standardize_codes"]
