"""DCI mode "fast" grows sklearn's trees bit for bit (dci_sklearn: sklearn's arithmetic where rounding decides).

Every check compares with the installed scikit-learn itself (GradientBoostingClassifier, its loss and its
init), so a change of sklearn's arithmetic in a later release fails here rather than moving DCI silently.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn.ensemble import GradientBoostingClassifier

from benchbench.metrics import dci_sklearn, dci_trees


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 127, 128, 129, 255, 256, 257, 1000, 4097])
def test_pairwise_sum_is_numpys(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(5):
        a = rng.normal(size=n) * 10.0 ** rng.uniform(-8, 3, size=n)
        assert dci_sklearn.pairwise_sum(a, 0, n) == np.add.reduce(a)
        if n:  # what _update_terminal_regions computes: np.average with unit weights
            assert dci_sklearn.pairwise_sum(a, 0, n) / n == np.average(a, weights=np.ones(n))


@pytest.mark.parametrize("counts", [(30, 70), (1, 99), (10, 20, 30), (5, 1, 1, 40, 3)])
def test_init_raw_is_sklearns(counts: tuple[int, ...]) -> None:
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.random.default_rng(0).normal(size=(len(y), 2))
    model = GradientBoostingClassifier(n_estimators=1, random_state=0).fit(x, y)
    ref = model._raw_predict_init(x[:1])[0]
    np.testing.assert_array_equal(dci_sklearn.init_raw(y, len(counts)), ref)


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_negative_gradients_are_sklearns(classes: int) -> None:
    rng = np.random.default_rng(classes)
    y = rng.integers(0, classes, 500)
    trees = 1 if classes == 2 else classes
    raw = rng.normal(scale=5.0, size=(500, trees))
    raw[:5] = -40.0  # sklearn's other branch of the binomial gradient
    neg = np.empty_like(raw)
    dci_sklearn.negative_gradients(raw, y.astype(np.int64), neg)
    loss = HalfBinomialLoss() if classes == 2 else HalfMultinomialLoss(n_classes=classes)
    ref = -loss.gradient(y_true=y.astype(np.float64), raw_prediction=raw if trees > 1 else raw[:, 0])
    np.testing.assert_array_equal(neg, ref.reshape(500, trees))


def _boost_both(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, rounds: int = 100, num_bins: int = 256):
    classes, yi = np.unique(y, return_inverse=True)
    k = len(classes)
    trees = 1 if k == 2 else k
    yi = yi.astype(np.int64)
    importance, raw, raw_test = dci_trees.boost(
        *dci_trees.prepare(x, num_bins), yi, k, dci_sklearn.init_raw(yi, k), x_test.astype(np.float32), rounds, 0.1,
        dci_trees.tree_seeds(0, rounds * trees),
    )
    model = GradientBoostingClassifier(n_estimators=rounds, random_state=0).fit(x, y)
    ref = model.decision_function(x).reshape(len(x), -1)
    ref_test = model.decision_function(x_test).reshape(len(x_test), -1)
    return (importance / importance.sum(), raw, raw_test), (model.feature_importances_, ref, ref_test)


def test_boosted_trees_equal_sklearns_bit_for_bit() -> None:
    """Continuous codes, three classes and two: the decision values of 100 rounds are sklearn's exactly."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    x = np.hstack([y[:, None] / 3 + 0.3 * rng.normal(size=(500, 1)), rng.normal(size=(500, 3))])
    for labels in (y, (y > 0).astype(np.int64)):
        (imp, raw, raw_test), (ref_imp, ref, ref_test) = _boost_both(x, labels, x[:50])
        np.testing.assert_array_equal(raw, ref)
        np.testing.assert_array_equal(raw_test, ref_test)
        np.testing.assert_allclose(imp, ref_imp, rtol=0, atol=1e-13)


def test_near_separable_duplicated_codes_equal_sklearns() -> None:
    """The case that needs sklearn's arithmetic: 24 distinct 40-d codes (so many rows, dims and splits tie
    to rounding), factors of 4 and 3 values, and a copy of dim 0. Histogram sums broke these ties
    differently (D 0.01-0.03 off at 192 and 512 dims in benchmarks/bench_dci_agreement.py)."""
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(3), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    table = np.hstack([grid / 4 + 0.05 * rng.normal(size=grid.shape), rng.normal(size=(len(grid), 37))])
    table = np.hstack([table, table[:, :1]])
    pick = rng.integers(0, len(grid), 600)
    x, factors = table[pick], grid[pick]
    for k in range(2):
        (imp, raw, raw_test), (ref_imp, ref, ref_test) = _boost_both(x[:400], factors[:400, k], x[400:])
        np.testing.assert_array_equal(raw, ref)
        np.testing.assert_array_equal(raw_test, ref_test)
        np.testing.assert_allclose(imp, ref_imp, rtol=0, atol=1e-13)


def test_a_node_of_equal_gradients_splits_where_sklearns_does() -> None:
    """sklearn splits a node whose gradients are all equal when rounding leaves its impurity above eps;
    every split then ties and the last bits of its running sums pick one. Here sklearn splits seven nodes
    of 283 to 323 rows with impurities of 3e-16 to 5e-14; their 40 x ~300 tied splits overflow the tie list
    (40 dims x 2 bins + 4 x 2,000 rows), so ``rescore`` scores every split of every dim, as sklearn does."""
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(3), [300, 300, 1400])
    x = np.hstack([(y[:, None] == 0) + 0.01 * rng.normal(size=(2000, 1)), rng.normal(size=(2000, 39))])
    (imp, raw, raw_test), (ref_imp, ref, ref_test) = _boost_both(x, y, x[:100], rounds=3, num_bins=2)
    np.testing.assert_array_equal(raw, ref)
    np.testing.assert_allclose(imp, ref_imp, rtol=0, atol=1e-13)
