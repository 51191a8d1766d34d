"""The method protocol: what every registered method implements and nothing more.

The shared training loop (train.py) owns optimiser, EMA, AMP, checkpoints and logging; a method
only builds itself from ``(cfg, spec)`` and implements ``loss``, ``encode``, ``sample`` and,
optionally, ``reconstruct`` and ``traverse``. Images are float tensors in [-1, 1], [N, C, H, W].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from benchbench.datasets.base import DataSpec


class Method(nn.Module):
    """Base class of registered methods (a plain nn.Module with a fixed set of entry points)."""

    def __init__(self, cfg: Any, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Training objective on a batch x [N, C, H, W]; returns {"loss": scalar, **logged terms}."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        """Deterministic representation [N, D] fed to the metrics."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n unconditional samples [n, C, H, W] in [-1, 1]; noise drawn on the CPU from ``generator``."""
        raise NotImplementedError

    def reconstruct(self, x: Tensor) -> Tensor:
        """Reconstruction [N, C, H, W] of x (optional)."""
        raise NotImplementedError

    def traverse(self, x: Tensor, dim: int, values: Tensor) -> Tensor:
        """Decode x's code with dimension ``dim`` set to each of ``values`` [V]: [V, N, C, H, W]."""
        raise NotImplementedError

    # Optional: ``code_postprocess(codes [M, D]) -> transform`` (a staticmethod or a method), fitted by the evaluator on
    # codes of a seeded dataset sample; ``transform(codes [N, D]) -> [N, D']`` is applied to every code the
    # factor metrics see (TAD and ``benchbench score`` see raw ``encode`` output). See ``standardize_codes``.

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (frozen pre-trained parts excluded)."""
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor | None = None,
          device: torch.device | None = None) -> Tensor:
    """Standard normal noise drawn on the CPU from ``generator`` (same numbers on any device)."""
    noise = torch.randn(shape, generator=generator)
    target = like.device if like is not None else device
    return noise.to(target) if target is not None else noise


def standardize_codes(codes: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Fit per-dim z-normalisation on codes [M, D]; the transform maps codes [N, D] to (z - mean) / std.

    Diff-AE standardises z_sem with dataset statistics before its attribute classifiers
    (``manipulate_znormalize``; methods.md §4); doing the same before the factor metrics keeps FactorVAE's
    absolute 0.05 prune threshold from discarding every dimension of an unnormalised code. Constant dims
    keep std 1 so they stay constant (and are pruned).
    """
    mean = codes.mean(axis=0)
    std = codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return lambda z: (z - mean) / std
