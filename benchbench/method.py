"""The method protocol: what every registered method implements and nothing more.

The shared training loop (train.py) owns optimiser, EMA, AMP, checkpoints and logging; a method
only builds itself from ``(cfg, spec)`` and implements ``loss``, ``encode``, ``sample`` and,
optionally, ``reconstruct`` and ``traverse``. Images are float tensors in [-1, 1], [N, C, H, W].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from benchbench.datasets.base import DataSpec


@dataclass(frozen=True)
class ExtraObjective:
    """A second objective with its own parameters and optimiser, stepped by the shared loop beside the main one.

    Adversarial parts such as FactorVAE's total-correlation discriminator (Kim & Mnih 2018) minimise their own loss
    over their own parameters. Each step the loop takes the gradient of ``terms["loss"]`` with respect to the main
    parameters (``Method.trainable_parameters``, which must exclude ``params``) and of ``terms[loss_key]`` with
    respect to ``params`` only, from the same forward pass, then steps both optimisers: one simultaneous update, as
    disentanglement_lib's ``tf.group(train_op_vae, train_op_discr)``.

    Attributes:
        name: key of the optimiser state in checkpoints (e.g. "discriminator").
        loss_key: which returned term this objective minimises (logged like every other term).
        params: the parameters it updates (and no other objective does).
        make_optimizer: params -> optimiser (its learning rate stays constant; the loop's schedule is the main one's).
    """

    name: str
    loss_key: str
    params: list[nn.Parameter]
    make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer]


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
    # ``code_rule`` says in words what the factor metrics see; it is recorded with every number (CODE_RULES).
    code_rule: ClassVar[str] = "raw"

    def protocol(self) -> dict[str, str]:
        """How this method's numbers are produced beyond its config, one short description per part (e.g.
        ``{"sampler": ..., "inversion": ..., "generator": ...}``); recorded in ``result.json`` and shown by
        ``benchbench describe``. Metric protocols come from the eval config, not from here."""
        return {}

    def deviations(self) -> list[str]:
        """The deviations from the paper setting that remain in this configuration, one short line each."""
        return []

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (frozen pre-trained parts and extra objectives' parameters excluded)."""
        extra = {id(p) for e in self.extra_objectives() for p in e.params}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in extra]

    def extra_objectives(self) -> list[ExtraObjective]:
        """Objectives with their own optimiser besides ``terms["loss"]`` (none by default); see ExtraObjective."""
        return []

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


def config_differences(ours: Any, paper: Any) -> str | None:
    """One line naming the fields where the model config ``ours`` differs from ``paper`` (same dataclass), e.g.
    "z_dim 16 (paper 512), sample_steps 10 (paper 20), unet (9 fields)"; None when they are equal."""
    if ours == paper:
        return None
    parts = []
    for f in fields(ours):
        a, b = getattr(ours, f.name), getattr(paper, f.name)
        if a == b:
            continue
        if is_dataclass(a) and is_dataclass(b) and type(a) is type(b):
            n = sum(1 for g in fields(a) if getattr(a, g.name) != getattr(b, g.name))
            parts.append(f"{f.name} ({n} field{'s' if n != 1 else ''})")
        else:
            parts.append(f"{f.name} {a!r} (paper {b!r})")
    return "model config differs from the paper preset: " + ", ".join(parts)


def paper_differences(presets: dict[str, Any], cfg: Any, family: str, method: str) -> list[str]:
    """``config_differences`` of ``cfg`` against ``presets["paper"]`` for ``family`` ([] if equal or none)."""
    from benchbench.config import select_preset
    from benchbench.errors import ConfigError

    try:
        paper = select_preset(presets, "paper", family, method).model
    except ConfigError:
        return []
    line = config_differences(cfg, paper) if type(paper) is type(cfg) else None
    return [line] if line else []


def randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor | None = None,
          device: torch.device | None = None) -> Tensor:
    """Standard normal noise drawn on the CPU from ``generator`` (same numbers on any device)."""
    noise = torch.randn(shape, generator=generator)
    target = like.device if like is not None else device
    return noise.to(target) if target is not None else noise


# What the factor metrics (FactorVAE, MIG, DCI, SAP, modularity, BetaVAE score) see, per kind of method. One rule for
# all diffusion methods: their codes are z-normalised per dim with dataset statistics (after the method's own published
# reduction, DisDiff's per-factor PCA). Why: FactorVAE's 0.05 prune threshold is absolute and the BetaVAE score's
# logistic regression is L2-regularised, so both depend on a code's scale; a diffusion encoder has no prior that pins
# that scale (a VAE's KL pins it near N(0, I)), so raw codes would be pruned or regularised by an arbitrary encoder
# scale. The other factor metrics are invariant to a per-dim affine map (MIG and modularity bin each dim over its
# own range; DCI's trees and SAP's thresholds are order-based), and TAD's exact AUROC is too. VAEs keep
# disentanglement_lib's raw posterior means (its ``mean`` representation), as every published VAE number was computed.
CODE_RULES = {
    "raw": "raw encode() output (VAEs: the posterior mean, disentanglement_lib's 'mean' representation)",
    "standardized": "z-normalised per dim with the mean/std of eval.postprocess_fit dataset codes (diffusion rule)",
    "pca+standardized": "per-factor PCA(1) scores (DisDiff's evaluation), then z-normalised per dim with the "
                        "statistics of eval.postprocess_fit dataset codes (diffusion rule)",
}


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


def then_standardize(transform: Callable[[np.ndarray], np.ndarray], codes: np.ndarray
                     ) -> Callable[[np.ndarray], np.ndarray]:
    """``transform`` (a method's own reduction, fitted already) followed by ``standardize_codes`` fitted on
    ``transform(codes)``: the diffusion code rule after a reduction (DisDiff's per-factor PCA)."""
    scale = standardize_codes(transform(codes))
    return lambda z: scale(transform(z))
