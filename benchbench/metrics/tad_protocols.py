"""TAD evaluation protocols: which rows are scored, how codes are prepared, how folds are aggregated.

TAD itself (``benchbench.metrics.tad``) is one formula (Yeats et al., ECCV 2022, https://arxiv.org/abs/2209.10677);
the papers that report it differ in the evaluation set, the code preparation and the AUROC (metrics.md §8,
datasets.md §4). A published TAD is only comparable with ours computed under its own protocol:

* ``benchbench`` (default, our choice): the first ``num_images`` images of the test split, one pass, raw codes,
  the AUROC ``variant`` of the settings (exact by default). No paper uses it.
* ``infodiffusion`` (isjakewong/InfoDiffusion ``eval_disentanglement.py``, commit 75c7b31): the first
  ``num_images`` (10,000) codes of the train split; ``KFold(n_splits=5, shuffle=True, random_state=0)``; per fold
  a ``StandardScaler`` fitted on the fold's train part standardises it, the codes are cast to float32 (the
  official ``torch.FloatTensor(a)``), and TAD / ATTRS are computed on that train part (8,000 rows) with the exact
  AUROC (``roc_auc_score``). Reported: mean ± std over the 5 folds, std with ddof=0 (``np.std``); per-fold values
  are stored. The official loader flips the train images at random while saving latents; we never flip.
* ``disdiff`` (ThomasMrY/DisDiff ``eval_celeba_func.py`` + ``ae_utils_exp.py``, commit c3ba0c7): raw codes (no
  standardisation, no PCA), grid AUROC with 11 thresholds (step 0.1) and the 0.2 range rule, one pass. DisDiff
  scores a pre-saved ``test_celeba.npz`` that is not published (its commented-out loader is NashAE's: split
  'all', one shuffled batch of 1,000, seed 30); we draw ``num_images`` images of the whole set with
  ``np.random.default_rng(30)``. The AUROC and code handling are reproduced; the image set is not.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from benchbench.errors import ConfigError, MetricInputError
from benchbench.metrics.settings import TADSettings

# InfoDiffusion's cross-validation (eval_disentanglement.py): KFold(n_splits=5, shuffle=True, random_state=0).
INFODIFFUSION_FOLDS = 5
INFODIFFUSION_FOLD_SEED = 0
# NashAE's (and DisDiff's commented-out) evaluation batch seed: "FIXED AT 30 FOR ALL EXPERIMENTS".
DISDIFF_DRAW_SEED = 30


@dataclass(frozen=True)
class Protocol:
    """One TAD protocol: the evaluation rows (``split``), the AUROC it fixes (None: the settings'), the folds."""

    name: str
    split: str  # "test" | "train" (first num_images rows) | "all" (num_images drawn with DISDIFF_DRAW_SEED)
    variant: str | None
    folds: int  # 0: one pass on the rows; k: k-fold, TAD on each standardised training fold
    description: str
    reproduces: str  # what of the paper's evaluation this protocol matches (shown in reports)


PROTOCOLS: dict[str, Protocol] = {
    "benchbench": Protocol(
        "benchbench", "test", None, 0,
        "first num_images test-split images, one pass, raw codes, AUROC variant as set (benchbench's choice)",
        "no paper: benchbench's own protocol"),
    "infodiffusion": Protocol(
        "infodiffusion", "train", "exact", INFODIFFUSION_FOLDS,
        "first num_images train-split codes, KFold(5, shuffle=True, random_state=0), StandardScaler fit per "
        "training fold, exact AUROC on each training fold, mean ± std (ddof=0) over folds (InfoDiffusion)",
        "exactly (InfoDiffusion eval_disentanglement.py), except that our codes come from unflipped images"),
    "disdiff": Protocol(
        "disdiff", "all", "disdiff", 0,
        "num_images images of the whole set drawn with seed 30, raw codes, grid AUROC step 0.1 (DisDiff)",
        "approximately: DisDiff's AUROC and raw codes, but its evaluation file test_celeba.npz is unpublished, "
        "so the images differ"),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``, or a one-line ConfigError with the known names."""
    if name not in PROTOCOLS:
        close = difflib.get_close_matches(name, PROTOCOLS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"TAD: unknown protocol {name!r}; {hint}known: {', '.join(PROTOCOLS)} "
                          "(set eval.tad.protocol=...)")
    return PROTOCOLS[name]


def resolve_settings(settings: TADSettings) -> TADSettings:
    """The effective settings: a protocol that fixes the AUROC variant sets it (recorded with the number)."""
    proto = get_protocol(settings.protocol)
    return settings if proto.variant is None else replace(settings, variant=proto.variant)


def evaluation_rows(settings: TADSettings, split: Any, size: int) -> np.ndarray:
    """Dataset indices the protocol scores.

    Args:
        settings: TAD settings (protocol, num_images).
        split: ``split(name) -> sorted indices`` of the dataset's official splits.
        size: number of images in the dataset (for the "all" draw).
    Returns:
        indices [M]: the first ``num_images`` of the test / train split, or ``num_images`` drawn without
        replacement from every image with ``np.random.default_rng(30)`` (sorted).
    """
    proto = get_protocol(settings.protocol)
    if proto.split == "all":
        n = min(settings.num_images, size)
        return np.sort(np.random.default_rng(DISDIFF_DRAW_SEED).choice(size, size=n, replace=False))
    return np.asarray(split(proto.split))[: settings.num_images]


def kfold_tad(
    codes: np.ndarray,
    attributes: np.ndarray,
    settings: TADSettings,
    attr_names: Sequence[str],
    folds: int = INFODIFFUSION_FOLDS,
) -> dict[str, Any]:
    """InfoDiffusion's cross-validated TAD: per training fold, standardise, TAD and ATTRS (exact AUROC).

    Args:
        codes: [N, D] codes in dataset order (the first 10,000 train-split codes in the paper setting).
        attributes: [N, K] binary attributes of the same rows.
        settings: thresholds (the variant is taken as given; ``resolve_settings`` makes it "exact").
        attr_names: K attribute names.
        folds: number of KFold splits (5).
    Returns:
        {"tad": mean over folds, "tad_std": std (ddof=0), "attrs": mean ATTRS, "attrs_std",
        "folds": [{"fold", "rows", "tad", "attrs", "kept"}]} with ``kept`` the names of the kept attributes.
    """
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    from benchbench.metrics.tad import tad

    codes = np.asarray(codes)
    if codes.ndim != 2 or len(codes) < 2 * folds:
        raise MetricInputError(f"TAD ({settings.protocol}): needs [N, D] codes with N >= {2 * folds} for "
                               f"{folds}-fold cross-validation, got shape {codes.shape}")
    per_fold = []
    kfold = KFold(n_splits=folds, shuffle=True, random_state=INFODIFFUSION_FOLD_SEED)
    for k, (train_idx, _) in enumerate(kfold.split(codes)):
        part = StandardScaler().fit_transform(codes[train_idx])  # in the codes' own dtype, as the official
        part = part.astype(np.float32)  # the official torch.FloatTensor(a): ties as in float32
        out = tad(part, np.asarray(attributes)[train_idx], variant=settings.variant,
                  auroc_threshold=settings.auroc_threshold, redundancy_threshold=settings.redundancy_threshold,
                  attr_names=attr_names)
        kept = [a["name"] for a in out["per_attribute"] if a["kept"]]
        per_fold.append({"fold": k, "rows": len(train_idx), "tad": out["tad"], "attrs": out["attrs"], "kept": kept})
    tads = np.array([f["tad"] for f in per_fold])
    attrs = np.array([f["attrs"] for f in per_fold], dtype=np.float64)
    return {"tad": float(tads.mean()), "tad_std": float(tads.std()), "attrs": float(attrs.mean()),
            "attrs_std": float(attrs.std()), "folds": per_fold}


def describe(settings: TADSettings) -> str:
    """One line: the protocol and the effective settings, for protocol records and reports."""
    eff = resolve_settings(settings)
    return f"{eff.protocol}: {get_protocol(eff.protocol).description}; num_images={eff.num_images}, " \
           f"variant={eff.variant}"
