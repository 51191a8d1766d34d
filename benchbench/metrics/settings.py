"""Metric settings (the reference defaults of metrics.md) and their per-preset sample sizes.

Every number a metric produces is stored with the settings it was computed with; the report never
averages or ranks numbers computed with different settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class FactorVAESettings:
    """FactorVAE score (metrics.md §1); defaults = disentanglement_lib unsupervised_study_v1 gin."""

    batch_size: int = 64
    num_train: int = 10_000
    num_eval: int = 5_000
    num_variance_estimate: int = 10_000
    prune_threshold: float = 0.05


@dataclass(frozen=True)
class MIGSettings:
    """MIG (metrics.md §2): points drawn in chunks of ``batch_size``, 20-bin histogram discretiser."""

    num_train: int = 10_000
    batch_size: int = 16
    num_bins: int = 20


@dataclass(frozen=True)
class DCISettings:
    """DCI (metrics.md §3): ``mode`` exact = sklearn GradientBoostingClassifier (the reference)."""

    num_train: int = 10_000
    num_test: int = 5_000
    batch_size: int = 16
    mode: str = "exact"
    random_state: int = 0


@dataclass(frozen=True)
class FIDSettings:
    """FID through torch-fidelity (metrics.md §9): generated samples vs the dataset's reference set.

    Attributes:
        num_gen: generated samples.
        num_real: reference images (drawn without replacement with seed 0, never flipped).
        batch_size: Inception batch size.
        weights: path of ``weights-inception-2015-12-05-6726825d.pth``; empty: $BENCHBENCH_FID_WEIGHTS,
            else torch.hub's cache.
    """

    num_gen: int = 10_000
    num_real: int = 10_000
    batch_size: int = 64
    weights: str = ""


@dataclass(frozen=True)
class EvalConfig:
    """Which metrics to compute and with what settings.

    Attributes:
        metrics: metric names to compute; empty = every metric that applies to the dataset.
        seed: seed of each metric's ``np.random.RandomState`` (the reference uses 0 for every model,
            independent of the training seed).
        encode_batch: images per encoder call during evaluation.
    """

    metrics: tuple[str, ...] = ()
    seed: int = 0
    encode_batch: int = 256
    factorvae: FactorVAESettings = field(default_factory=FactorVAESettings)
    mig: MIGSettings = field(default_factory=MIGSettings)
    dci: DCISettings = field(default_factory=DCISettings)
    fid: FIDSettings = field(default_factory=FIDSettings)


def eval_preset(preset: str) -> EvalConfig:
    """Sample sizes per preset: ``paper`` = reference sizes; ``quick``/``smoke`` scaled down."""
    base = EvalConfig()
    if preset == "paper":
        return base
    if preset == "quick":
        return replace(
            base,
            factorvae=FactorVAESettings(num_train=1_000, num_eval=500, num_variance_estimate=5_000),
            mig=MIGSettings(num_train=5_000),
            dci=DCISettings(num_train=1_000, num_test=500),
            fid=FIDSettings(num_gen=128, num_real=128),
        )
    return replace(  # smoke and anything unknown: seconds
        base,
        encode_batch=128,
        factorvae=FactorVAESettings(batch_size=16, num_train=100, num_eval=50, num_variance_estimate=200),
        mig=MIGSettings(num_train=300),
        dci=DCISettings(num_train=200, num_test=100),
        fid=FIDSettings(num_gen=16, num_real=16, batch_size=16),
    )
