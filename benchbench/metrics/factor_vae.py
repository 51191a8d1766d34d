"""FactorVAE score: majority-vote accuracy of "which code dim varies least when factor k is fixed".

Reference: Kim and Mnih, "Disentangling by Factorising", ICML 2018, https://arxiv.org/abs/1802.05983
(Sec. 4), as implemented by google-research/disentanglement_lib (``evaluation/metrics/factor_vae.py``)
with the unsupervised_study_v1 settings (metrics.md §1).

One vote: draw k uniformly, draw a batch of factor vectors with factor k held at one value, encode,
and take ``argmin_j Var_batch(z_j) / Var_global(z_j)`` over the active dims (std >= threshold). A
majority-vote classifier (dim -> factor) is read off the training votes; the score is its accuracy on
fresh evaluation votes.

Reference quirks kept on purpose: the vote column is the position *within* the active dims; ties in
the majority vote go to the lowest factor; a column without training votes predicts factor 0; the
reference reports ``num_active_dims = D`` (kept as ``reference_num_active_dims`` beside the true count).

Fast exact path: the random draws stay in one numpy ``RandomState`` in the reference order, but the
batches of many votes are encoded by one ``represent`` call and their variances and argmins are
computed together (float64, ddof=1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchbench.errors import ConfigError
from benchbench.metrics.base import FactorSource, MetricResult
from benchbench.metrics.settings import FactorVAESettings
from benchbench.metrics.utils import as_random_state, represent_codes
from benchbench.registry import register_metric

# Code values (rows x dims) encoded per ``represent`` call while voting; bounds memory, not results.
_VOTE_BLOCK_VALUES = 1 << 22


def majority_classifier(votes: np.ndarray) -> np.ndarray:
    """Factor predicted for every vote column: argmax over factors, ties -> lowest k; [K, D] -> [D]."""
    return np.argmax(votes, axis=0)


def vote_accuracy(votes: np.ndarray, classifier: np.ndarray) -> float:
    """Share of votes [K, D] that land on the classifier's factor for their column."""
    total = votes.sum()
    return float(votes[classifier, np.arange(votes.shape[1])].sum() / total) if total else 0.0


def _draw_votes(
    source: FactorSource, rs: np.random.RandomState, num_votes: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Held-fixed factors [V] and factor batches [V * batch_size, K], in the reference draw order."""
    num_factors = len(source.factor_sizes)
    held = np.empty(num_votes, dtype=np.int64)
    batches = []
    for v in range(num_votes):
        k = rs.randint(num_factors)
        f = np.array(source.sample_factors(batch_size, rs), dtype=np.int64)
        f[:, k] = f[0, k]
        held[v] = k
        batches.append(f)
    return held, np.concatenate(batches)


def _votes(
    source: FactorSource,
    rs: np.random.RandomState,
    num_votes: int,
    batch_size: int,
    global_var: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """Vote matrix [K, D]; column = position of the winning dim within the active dims (reference)."""
    num_factors, dim = len(source.factor_sizes), len(global_var)
    votes = np.zeros((num_factors, dim), dtype=np.int64)
    block = max(1, _VOTE_BLOCK_VALUES // (batch_size * dim))
    for start in range(0, num_votes, block):
        held, factors = _draw_votes(source, rs, min(block, num_votes - start), batch_size)
        codes = represent_codes(source, factors).reshape(len(held), batch_size, dim)
        local_var = np.var(codes, axis=1, ddof=1)  # [V, D]
        with np.errstate(divide="ignore", invalid="ignore"):  # threshold 0 keeps dead dims: 0/0 as reference
            winner = np.argmin(local_var[:, active] / global_var[active], axis=1)
        np.add.at(votes, (held, winner), 1)
    return votes


def factor_vae_score(
    source: FactorSource,
    random_state: int | np.random.RandomState = 0,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> dict[str, Any]:
    """FactorVAE score of ``source.represent`` (metrics.md §1), bit-compatible with the reference.

    Draw order on ``rs``: ``sample_factors(num_variance_estimate)``; then per training vote and then
    per evaluation vote: ``k = rs.randint(K)``, ``sample_factors(batch_size)``.

    Args:
        source: ground-truth sampler plus representation function.
        random_state: seed or ``np.random.RandomState``.
        batch_size: factor vectors per vote (>= 2).
        num_train: training votes (fit the majority-vote classifier).
        num_eval: evaluation votes (the score).
        num_variance_estimate: points for the global per-dim variance (>= 2).
        prune_threshold: dims with global std below this absolute value never vote.
    Returns:
        dict with eval_accuracy (the score), train_accuracy, num_active_dims (true count),
        reference_num_active_dims (D, as the reference reports it), active_dims [A] (vote column j is
        code dim ``active_dims[j]``), train_votes and eval_votes [K, D].
    """
    if batch_size < 2 or num_variance_estimate < 2 or num_train < 1 or num_eval < 1:
        raise ConfigError(
            "FactorVAE: needs batch_size >= 2, num_variance_estimate >= 2, num_train >= 1 and num_eval >= 1; "
            f"got {batch_size}, {num_variance_estimate}, {num_train}, {num_eval}"
        )
    rs = as_random_state(random_state)
    codes = represent_codes(source, np.asarray(source.sample_factors(num_variance_estimate, rs)))
    global_var = np.var(codes, axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    num_factors, dim = len(source.factor_sizes), codes.shape[1]
    if not active.any():
        empty = np.zeros((num_factors, dim), dtype=np.int64)
        return {
            "eval_accuracy": 0.0,
            "train_accuracy": 0.0,
            "num_active_dims": 0,
            "reference_num_active_dims": 0,
            "active_dims": np.flatnonzero(active),
            "train_votes": empty,
            "eval_votes": empty.copy(),
        }
    train_votes = _votes(source, rs, num_train, batch_size, global_var, active)
    classifier = majority_classifier(train_votes)
    eval_votes = _votes(source, rs, num_eval, batch_size, global_var, active)
    return {
        "eval_accuracy": vote_accuracy(eval_votes, classifier),
        "train_accuracy": vote_accuracy(train_votes, classifier),
        "num_active_dims": int(active.sum()),
        "reference_num_active_dims": dim,
        "active_dims": np.flatnonzero(active),
        "train_votes": train_votes,
        "eval_votes": eval_votes,
    }


@register_metric(
    "factorvae",
    higher_is_better=True,
    needs="codes+factors",
    sampling=True,
    settings_key="factorvae",
    label="FactorVAE",
    note="the FactorVAE score; the FactorVAE method is factor-vae",
)
def factorvae_metric(source: FactorSource, settings: FactorVAESettings, seed: int) -> MetricResult:
    """FactorVAE score with ``RandomState(seed)``.

    Returns:
        value = eval accuracy; extras: train_accuracy, num_active_dims, reference_num_active_dims.
    """
    out = factor_vae_score(
        source,
        np.random.RandomState(seed),
        batch_size=settings.batch_size,
        num_train=settings.num_train,
        num_eval=settings.num_eval,
        num_variance_estimate=settings.num_variance_estimate,
        prune_threshold=settings.prune_threshold,
    )
    extras = {key: out[key] for key in ("train_accuracy", "num_active_dims", "reference_num_active_dims")}
    return MetricResult(float(out["eval_accuracy"]), extras)
