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
    """DCI (metrics.md §3): ``mode`` exact = sklearn GradientBoostingClassifier (the reference; ``paper``
    preset), fast = the same trees from histograms (``quick`` and ``smoke`` presets; metrics/dci.py)."""

    num_train: int = 10_000
    num_test: int = 5_000
    batch_size: int = 16
    mode: str = "exact"
    random_state: int = 0


@dataclass(frozen=True)
class SAPSettings:
    """SAP score (metrics.md §5)."""

    num_train: int = 10_000
    num_test: int = 5_000
    batch_size: int = 16
    continuous_factors: bool = False


@dataclass(frozen=True)
class ModularitySettings:
    """Modularity and explicitness (metrics.md §6); 20-bin discretiser as MIG."""

    num_train: int = 10_000
    num_test: int = 5_000
    batch_size: int = 16
    num_bins: int = 20


@dataclass(frozen=True)
class BetaVAEScoreSettings:
    """BetaVAE score (metrics.md §4), sklearn LogisticRegression variant."""

    batch_size: int = 64
    num_train: int = 10_000
    num_eval: int = 5_000


@dataclass(frozen=True)
class TADSettings:
    """TAD and ATTRS (metrics.md §8).

    Attributes:
        protocol: evaluation protocol (``benchbench.metrics.tad_protocols``): "benchbench" (default: the first
            ``num_images`` test-split images, one pass, AUROC ``variant``), "infodiffusion" (the first
            ``num_images`` train-split codes, 5-fold KFold, per-fold StandardScaler, exact AUROC on each training
            fold, mean ± std over folds) or "disdiff" (``num_images`` images of the whole set drawn with seed 30,
            raw codes, grid AUROC step 0.1). "infodiffusion" and "disdiff" fix the AUROC variant.
        variant: AUROC: "exact" (rank-based, InfoDiffusion), "nashae" (grid step 0.01), "disdiff" (step 0.1).
        num_images: evaluation images (which ones: see ``protocol``; datasets.md §4).
        auroc_threshold: an attribute is captured when its best AUROC is at least this.
        redundancy_threshold: attributes whose entropy another label reduces by more than this are dropped.
    """

    protocol: str = "benchbench"
    variant: str = "exact"
    num_images: int = 10_000
    auroc_threshold: float = 0.75
    redundancy_threshold: float = 0.2


@dataclass(frozen=True)
class PMGSettings:
    """Posterior mean gap (metrics.md §10).

    Attributes:
        protocol: "benchbench" (the settings below as given) or "pdae" (PDAE's figure, ``sampler/gap_measure.py``:
            all T steps, uniform noise, 1,000 images drawn with replacement; it overrides grid, noise and
            num_images, and the stored settings are the effective ones).
        num_images: images x_0 (drawn with seed ``eval.seed`` from the dataset, without replacement).
        grid: "default" (t = 0..20 and every 10th step) or "full" (all T steps). The scalar is the uniform mean
            over all T steps either way: exact on "full", estimated on "default" by linear interpolation.
        noise: "gaussian" (default) or "uniform" (PDAE's figure quirk: torch.rand_like).
        batch_size: (image, t) pairs per denoiser call.
    """

    protocol: str = "benchbench"
    num_images: int = 256
    grid: str = "default"
    noise: str = "gaussian"
    batch_size: int = 64


@dataclass(frozen=True)
class FIDSettings:
    """FID (metrics.md §9): generated samples vs a reference set, under one paper's protocol.

    Attributes:
        protocol: "benchbench" (torch-fidelity, 10k vs 10k training images), "infodiffusion" (clean-fid, 10k vs
            the whole training split), "diffae" (50k vs 50k) or "disdiff-quirk" (DisDiff's [0, 255]-floats script;
            not comparable); see :mod:`benchbench.metrics.fid_protocols`.
        num_gen: generated samples; 0: the protocol's count.
        num_real: reference images (drawn without replacement with seed 0 from the training split, never flipped);
            0: the whole training split; -1: the protocol's count.
        batch_size: Inception batch size.
        chunk: generated images per resumable chunk (each chunk's noise comes from its own seeded generator).
        gen_batch: images per ``sample`` call (memory); with ``chunk`` it fixes which noise each image gets.
        weights: path of ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity); empty:
            $BENCHBENCH_FID_WEIGHTS, else torch.hub's cache.
        cleanfid_weights: path of clean-fid's ``inception-2015-12-05.pt``; empty: $BENCHBENCH_CLEANFID_WEIGHTS, else
            /tmp/inception-2015-12-05.pt.
    """

    protocol: str = "benchbench"
    num_gen: int = 0
    num_real: int = -1
    batch_size: int = 64
    chunk: int = 500
    gen_batch: int = 100
    weights: str = ""
    cleanfid_weights: str = ""


@dataclass(frozen=True)
class EvalConfig:
    """Which metrics to compute and with what settings.

    Attributes:
        metrics: metric names to compute; empty = every metric that applies to the dataset.
        seed: seed of each metric's ``np.random.RandomState`` (the reference uses 0 for every model,
            independent of the training seed).
        encode_batch: images per encoder call during evaluation.
        figures: write the labelled run figures (reconstructions, traversals, samples, PMG curve; PNG and PDF).
        postprocess_fit: images used to fit a method's code post-processing (``code_postprocess``),
            drawn with ``seed`` from the whole dataset.
    """

    metrics: tuple[str, ...] = ()
    seed: int = 0
    encode_batch: int = 256
    figures: bool = True
    postprocess_fit: int = 10_000
    factorvae: FactorVAESettings = field(default_factory=FactorVAESettings)
    mig: MIGSettings = field(default_factory=MIGSettings)
    dci: DCISettings = field(default_factory=DCISettings)
    fid: FIDSettings = field(default_factory=FIDSettings)
    sap: SAPSettings = field(default_factory=SAPSettings)
    modularity: ModularitySettings = field(default_factory=ModularitySettings)
    betavae_score: BetaVAEScoreSettings = field(default_factory=BetaVAEScoreSettings)
    tad: TADSettings = field(default_factory=TADSettings)
    pmg: PMGSettings = field(default_factory=PMGSettings)


def eval_preset(preset: str) -> EvalConfig:
    """Sample sizes per preset: ``paper`` = reference sizes (DCI exact); ``quick``/``smoke`` scaled down, DCI fast."""
    base = EvalConfig()
    if preset == "paper":
        return base
    if preset == "quick":
        return replace(
            base,
            factorvae=FactorVAESettings(num_train=1_000, num_eval=500, num_variance_estimate=5_000),
            mig=MIGSettings(num_train=5_000),
            dci=DCISettings(num_train=1_000, num_test=500, mode="fast"),
            fid=FIDSettings(num_gen=200, num_real=200, chunk=100, gen_batch=50),
            sap=SAPSettings(num_train=2_000, num_test=1_000),
            modularity=ModularitySettings(num_train=2_000, num_test=1_000),
            betavae_score=BetaVAEScoreSettings(num_train=200, num_eval=100),
            tad=TADSettings(num_images=2_000),
            pmg=PMGSettings(num_images=32, grid="default"),
        )
    return replace(  # smoke and anything unknown: seconds
        base,
        encode_batch=128,
        factorvae=FactorVAESettings(batch_size=16, num_train=100, num_eval=50, num_variance_estimate=200),
        mig=MIGSettings(num_train=300),
        dci=DCISettings(num_train=200, num_test=100, mode="fast"),
        fid=FIDSettings(num_gen=16, num_real=16, batch_size=16, chunk=8, gen_batch=8),
        sap=SAPSettings(num_train=200, num_test=100),
        modularity=ModularitySettings(num_train=200, num_test=100),
        betavae_score=BetaVAEScoreSettings(batch_size=16, num_train=60, num_eval=30),
        tad=TADSettings(num_images=200),
        pmg=PMGSettings(num_images=4, batch_size=32),
    )
