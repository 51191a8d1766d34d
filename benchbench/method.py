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

    # Unconditional generation of methods with a code z (Diff-AE, PDAE, DisDiff, InfoDiffusion): ``sample`` draws z
    # from ``sample_codes``, i.e. the papers' latent DPM (the ``latent`` stage, attached by the runner after
    # training) when one is attached, else, with ``model.code_prior=gaussian``, from the method's ``gaussian_codes``.

    def attach_code_model(self, prior: nn.Module, label: str) -> None:
        """Use ``prior.sample(n, generator) -> [n, D]`` for the codes of ``sample`` (kept out of the state dict)."""
        object.__setattr__(self, "_code_model", prior.to(self.device).eval())
        object.__setattr__(self, "_code_model_label", label)

    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes [n, D] for unconditional generation: the attached latent DPM, else the Gaussian option.

        Raises:
            BenchbenchError: ``model.code_prior`` is "latent" and no latent stage is attached.
        """
        prior = self.__dict__.get("_code_model")
        if prior is not None:
            return prior.sample(n, generator).to(self.device)
        if getattr(self.cfg, "code_prior", "gaussian") == "latent":
            from benchbench.errors import BenchbenchError

            raise BenchbenchError(
                f"{type(self).__name__}.sample: model.code_prior=latent but no latent stage is attached (benchbench "
                "run builds it after training); or --set model.code_prior=gaussian")
        return self.gaussian_codes(n, generator)

    def gaussian_codes(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes [n, D] from the method's Gaussian code prior (``model.code_prior=gaussian``)."""
        raise NotImplementedError

    def code_generator(self) -> str:
        """Which generator ``sample_codes`` uses, in words (recorded with every sample-based result)."""
        label = self.__dict__.get("_code_model_label")
        return label if label is not None else f"gaussian: {self.gaussian_label()}"

    def gaussian_label(self) -> str:
        """What ``gaussian_codes`` draws from, in words."""
        return "N(mean, cov) of the training codes"

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (frozen pre-trained parts excluded)."""
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class CodeMoments(nn.Module):
    """Running mean and second moment E[z z^T] of training codes, and the Gaussian N(mean, cov) they define.

    PDAE and DisDiff generate with a latent DPM on their codes in the papers; until that exists, their ``sample``
    draws codes from this Gaussian. The average is uniform over the first 1 / (1 - momentum) batches, then
    exponential, so codes of an early, poorly trained encoder are forgotten. Buffers: ``mean`` [D], ``sq`` [D, D],
    ``count`` (batches seen); they are saved with checkpoints and copied into the EMA model.
    """

    mean: Tensor
    sq: Tensor
    count: Tensor

    def __init__(self, dim: int, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("sq", torch.eye(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, z: Tensor) -> None:
        """Fold in a batch of codes z [B, D]."""
        z = z.detach().float()
        self.count += 1
        rate = self.count.reciprocal().clamp_min(1.0 - self.momentum)  # on the device: no sync in the training step
        self.mean.lerp_(z.mean(0), rate)
        self.sq.lerp_(z.T @ z / len(z), rate)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes [n, D] from N(mean, cov), the noise drawn on the CPU from ``generator`` (eigh: PSD-safe)."""
        cov = (self.sq - torch.outer(self.mean, self.mean)).double().cpu()
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
        lower = (evecs * evals.clamp_min(0).sqrt()).float().to(self.mean.device)
        return self.mean + randn((n, len(self.mean)), generator, device=self.mean.device) @ lower.T


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
