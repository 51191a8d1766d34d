"""SAP, modularity/explicitness and BetaVAE score: sanity triads, hand cases, reference parity, arrays, errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from benchbench.errors import BenchbenchError, MetricInputError
from benchbench.metrics import betavae_score as betavae_module
from benchbench.metrics.base import MetricResult
from benchbench.metrics.betavae_score import betavae_score
from benchbench.metrics.modularity import (
    explicitness,
    modularity,
    modularity_arrays,
    modularity_from_mi,
    standardize,
)
from benchbench.metrics.sap import sap, sap_arrays, sap_from_matrix
from benchbench.metrics.settings import ModularitySettings, SAPSettings, eval_preset
from benchbench.metrics.utils import generate_batch_factor_code, histogram_discretize, shuffle_split
from benchbench.registry import metrics
from tests.test_metrics_factor import TableSource, noisy, rotated

SIZES = (4, 5, 3)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")




def messy(f: np.ndarray) -> np.ndarray:
    """A partly mixed, noisy, non-linear 4-d code: nothing is exactly 0 or 1."""
    mix = np.random.default_rng(2).normal(size=(3, 4))
    return np.tanh(noisy(f, 0.4) @ mix / 3)


CODES = {"ideal": noisy, "rotated": rotated, "messy": messy}


@pytest.fixture(scope="module")
def draws() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """codes_train, factors_train, codes_test, factors_test (600 / 300 rows) for several codes."""
    rs = np.random.RandomState(0)
    z, y = generate_batch_factor_code(TableSource(SIZES, noisy), 600, rs)
    zt, yt = generate_batch_factor_code(TableSource(SIZES, noisy), 300, rs)
    out = {
        name: (TableSource(SIZES, fn).represent(y), y, TableSource(SIZES, fn).represent(yt), yt)
        for name, fn in CODES.items()
    }
    out["constant"] = (np.zeros_like(z), y, np.zeros_like(zt), yt)
    out["duplicated"] = (np.hstack([z, z[:, :1]]), y, np.hstack([zt, zt[:, :1]]), yt)
    out["dropped"] = (z[:, :2], y, zt[:, :2], yt)  # factor 2 is not coded
    return out


# SAP.


def reference_sap(z, y, zt, yt, continuous):
    """The reference algorithm written plainly: one np.cov or one LinearSVC per (dim, factor) pair."""
    s = np.zeros((z.shape[1], y.shape[1]))
    for i in range(z.shape[1]):
        for k in range(y.shape[1]):
            if continuous:
                c = np.cov(z[:, i], y[:, k], ddof=1)
                s[i, k] = c[0, 1] ** 2 / (c[0, 0] * c[1, 1]) if c[0, 0] > 1e-12 else 0.0
            else:
                clf = LinearSVC(C=0.01, class_weight="balanced").fit(z[:, i : i + 1], y[:, k])
                s[i, k] = np.mean(clf.predict(zt[:, i : i + 1]) == yt[:, k])
    top = np.sort(s, axis=0)
    return float(np.mean(top[-1] - top[-2])), s


def test_sap_from_matrix_by_hand() -> None:
    score, gaps = sap_from_matrix(np.array([[0.9, 0.2], [0.4, 0.6], [0.1, 0.5]]))
    np.testing.assert_allclose(gaps, [0.5, 0.1], atol=1e-15)
    assert score == pytest.approx(0.3, abs=1e-15)
    assert sap_from_matrix(np.array([[0.7, 0.1], [0.7, 0.0]]))[1].tolist() == [0.0, 0.1]  # a tie at the top


def test_sap_hand_cases() -> None:
    # Continuous: y = 0..3; z0 = y (r^2 = 1), z1 = [0,1,0,1] (cov 1/3, var 1/3 and 5/3: r^2 = 0.2), z2 constant.
    y = np.arange(4.0)[:, None]
    z = np.stack([y[:, 0], [0.0, 1, 0, 1], [7.0] * 4], axis=1)
    score, matrix = sap(z, y, z, y, continuous_factors=True)
    np.testing.assert_allclose(matrix[:, 0], [1.0, 0.2, 0.0], atol=1e-14)
    assert score == pytest.approx(0.8, abs=1e-14)
    # Discrete: a balanced binary factor, one dim separating it, one constant dim (predicts one class: 1/2).
    y = np.repeat([0, 1], 20)[:, None]
    z = np.stack([np.where(y[:, 0] == 1, 10.0, -10.0), np.ones(40)], axis=1)
    score, matrix = sap(z, y, z, y)
    np.testing.assert_array_equal(matrix[:, 0], [1.0, 0.5])
    assert score == 0.5


def test_sap_triad(draws) -> None:
    ideal, ideal_matrix = sap(*draws["ideal"])
    # 1-d one-vs-rest linear SVMs cannot pick out the middle classes, so even the ideal code stays below 1.
    assert ideal > 0.4 and np.all(np.argmax(ideal_matrix, axis=0) == [0, 1, 2])
    assert sap(*draws["ideal"], continuous_factors=True)[0] > 0.99
    assert sap(*draws["constant"])[0] == 0.0 and sap(*draws["constant"], continuous_factors=True)[0] == 0.0
    assert sap(*draws["rotated"])[0] < ideal - 0.2
    dup_matrix = sap(*draws["duplicated"])[1]
    assert sap_from_matrix(dup_matrix)[1][0] == 0.0  # factor 0 coded twice: no gap
    assert sap(*draws["duplicated"], continuous_factors=True)[0] == pytest.approx(2 / 3, abs=0.01)


@pytest.mark.parametrize("continuous", [False, True])
def test_sap_parity_with_reference_loop(draws, continuous: bool) -> None:
    z, y, zt, yt = draws["messy"]
    score, matrix = sap(z, y, zt, yt, continuous_factors=continuous)
    ref_score, ref_matrix = reference_sap(z, y, zt, yt, continuous)
    if continuous:
        np.testing.assert_allclose(matrix, ref_matrix, rtol=0, atol=1e-12)
        assert score == pytest.approx(ref_score, abs=1e-12)
    else:
        np.testing.assert_array_equal(matrix, ref_matrix)
        assert score == ref_score
        np.testing.assert_array_equal(sap(z, y, zt, yt, n_jobs=1)[1], matrix)  # threads change nothing


def test_sap_continuous_accepts_real_valued_factors(draws) -> None:
    z, y, zt, yt = draws["messy"]
    values = np.exp(y / 3.0)  # not class indices
    score, matrix = sap(z, values, zt, np.exp(yt / 3.0), continuous_factors=True)
    assert score == pytest.approx(reference_sap(z, values, zt, None, True)[0], abs=1e-12)


# Modularity and explicitness.


def reference_modularity(z, y):
    """Reference: histogram discretiser, sklearn MI per pair, modularity formula code by code."""
    b = histogram_discretize(z)
    m = np.array([[mutual_info_score(y[:, k], b[:, i]) for k in range(y.shape[1])] for i in range(z.shape[1])])
    per_code = []
    for row in m:
        sq = row**2
        per_code.append(0.0 if sq.max() == 0 else 1 - (sq.sum() - sq.max()) / (sq.max() * (len(row) - 1)))
    return float(np.mean(per_code))


def reference_explicitness(z, y, zt, yt):
    """Reference: z-score with train mean/std, LogisticRegression(), macro ROC-AUC of one-hot labels."""
    mean, std = z.mean(axis=0), z.std(axis=0)
    x, xt = (z - mean) / std, (zt - mean) / std
    train, test = [], []
    for k in range(y.shape[1]):
        clf = LogisticRegression().fit(x, y[:, k])
        mlb = MultiLabelBinarizer()
        train.append(roc_auc_score(mlb.fit_transform(y[:, k : k + 1]), clf.predict_proba(x)))
        test.append(roc_auc_score(mlb.fit_transform(yt[:, k : k + 1]), clf.predict_proba(xt)))
    return float(np.mean(train)), float(np.mean(test))


def test_modularity_from_mi_by_hand() -> None:
    # K = 2: [2, 1] -> delta = (4 + 1 - 4) / (4 * 1) = 1/4; [1, 1] -> delta 1; [0, 0] dead -> 0; [3, 0] -> 1.
    score, per_code = modularity_from_mi(np.array([[2.0, 1.0], [1.0, 1.0], [0.0, 0.0], [3.0, 0.0]]))
    np.testing.assert_allclose(per_code, [0.75, 0.0, 0.0, 1.0], atol=1e-15)
    assert score == pytest.approx(1.75 / 4, abs=1e-15)
    # K = 3: [2, 1, 0] -> delta = 1 / (4 * 2) = 1/8; [1, 1, 1] -> delta = 2 / (1 * 2) = 1.
    np.testing.assert_allclose(modularity_from_mi(np.array([[2.0, 1, 0], [1, 1, 1]]))[1], [0.875, 0.0], atol=1e-15)


def test_modularity_triad(draws) -> None:
    ideal = modularity(*draws["ideal"][:2])[0]
    assert ideal > 0.99
    assert modularity(*draws["constant"][:2]) == (0.0, pytest.approx([0.0, 0.0, 0.0]))
    assert modularity(*draws["rotated"][:2])[0] < ideal - 0.05
    assert modularity(*draws["duplicated"][:2])[0] > 0.99  # modularity does not penalise a duplicated code


def test_explicitness_triad(draws) -> None:
    ideal = explicitness(*draws["ideal"])
    assert ideal["explicitness_train"] > 0.99 and ideal["explicitness_test"] > 0.99
    const = explicitness(*draws["constant"])  # every dim dead: constant probabilities, AUC 1/2
    assert const["explicitness_train"] == 0.5 and const["explicitness_test"] == 0.5
    dropped = explicitness(*draws["dropped"])
    assert dropped["explicitness_test"] < 0.9 and dropped["per_factor"][2, 1] < 0.6
    assert dropped["per_factor"].shape == (3, 2)


def test_modularity_and_explicitness_parity_with_reference(draws) -> None:
    for name in ("messy", "rotated"):
        z, y, zt, yt = draws[name]
        assert modularity(z, y)[0] == pytest.approx(reference_modularity(z, y), abs=1e-12)
        out = explicitness(z, y, zt, yt)
        ref_train, ref_test = reference_explicitness(z, y, zt, yt)
        assert out["explicitness_train"] == pytest.approx(ref_train, abs=1e-12)
        assert out["explicitness_test"] == pytest.approx(ref_test, abs=1e-12)


def test_explicitness_dead_dim_is_zeroed_and_carries_nothing(draws) -> None:
    z, y, zt, yt = draws["messy"]
    with_dead = np.hstack([z, np.full((len(z), 1), 3.0)]), y, np.hstack([zt, np.full((len(zt), 1), -1.0)]), yt
    x, xt = standardize(with_dead[0], with_dead[2])
    assert np.all(x[:, -1] == 0) and np.all(xt[:, -1] == 0)  # the reference would give NaN (0/0)
    out, ref = explicitness(*with_dead), explicitness(z, y, zt, yt)
    assert out["explicitness_test"] == pytest.approx(ref["explicitness_test"], abs=1e-6)


def test_explicitness_class_absent_from_test(draws) -> None:
    # Factor 1 has 5 classes; drop class 3 from the test part (the reference raises on the width mismatch).
    z, y, zt, yt = draws["messy"]
    keep = yt[:, 1] != 3
    out = explicitness(z, y, zt[keep], yt[keep])
    mean, std = z.mean(axis=0), z.std(axis=0)
    clf = LogisticRegression().fit((z - mean) / std, y[:, 1])
    proba = clf.predict_proba((zt[keep] - mean) / std)
    present = [c for c in range(5) if c != 3]
    expected = np.mean([roc_auc_score(yt[keep, 1] == c, proba[:, c]) for c in present])
    assert out["per_factor"][1, 1] == pytest.approx(expected, abs=1e-12)
    assert out["per_factor"][0, 1] == pytest.approx(explicitness(z, y, zt, yt)["per_factor"][0, 1], abs=0.05)


# BetaVAE score.


def reference_betavae(source, seed, batch_size, num_train, num_eval):
    """The reference algorithm written plainly: two represent calls per point; returns the RandomState too."""
    rs = np.random.RandomState(seed)

    def points(n):
        x, labels = [], []
        for _ in range(n):
            k = rs.randint(len(source.factor_sizes))
            f1 = source.sample_factors(batch_size, rs)
            f2 = source.sample_factors(batch_size, rs)
            f2[:, k] = f1[:, k]
            x.append(np.mean(np.abs(source.represent(f1) - source.represent(f2)), axis=0))
            labels.append(k)
        return np.array(x), np.array(labels)

    x, labels = points(num_train)
    model = LogisticRegression(random_state=rs).fit(x, labels)
    train_acc = np.mean(model.predict(x) == labels)
    xe, le = points(num_eval)
    return {"train": train_acc, "eval": model.score(xe, le), "x": x, "xe": xe, "rs": rs}


BV = {"batch_size": 16, "num_train": 300, "num_eval": 150}


def test_betavae_batched_equals_per_point_loop(monkeypatch) -> None:
    # 16 * batch 16 * 4 dims bytes per point: blocks of 7 points after the first one-point block
    monkeypatch.setattr(betavae_module, "_BLOCK_BYTES", 16 * 16 * 4 * 7)
    source = TableSource(SIZES, messy)
    rs = np.random.RandomState(3)
    out = betavae_score(source, rs, **BV)
    calls = source.calls
    ref = reference_betavae(source, 3, **BV)
    np.testing.assert_array_equal(out["train_features"], ref["x"])
    np.testing.assert_array_equal(out["eval_features"], ref["xe"])
    assert out["train_accuracy"] == ref["train"] and out["eval_accuracy"] == ref["eval"]
    assert 0.3 < out["eval_accuracy"] < 1.0
    assert rs.randint(1 << 30) == ref["rs"].randint(1 << 30)  # same number of draws consumed
    assert calls == 1 + -(-299 // 7) + 1 + -(-149 // 7)


def test_betavae_triad() -> None:
    ideal = betavae_score(TableSource(SIZES, noisy), 0, **BV)
    assert ideal["eval_accuracy"] == 1.0 and ideal["train_accuracy"] == 1.0
    # Constant code: all features 0, so the classifier predicts the most frequent training label.
    const = betavae_score(TableSource(SIZES, lambda f: np.zeros((len(f), 3))), 0, **BV)
    majority = np.bincount(const["train_labels"]).argmax()
    assert const["eval_accuracy"] == np.mean(const["eval_labels"] == majority)
    assert betavae_score(TableSource(SIZES, rotated), 0, **BV)["eval_accuracy"] < 0.95


# Arrays given directly and the registered wrappers.


def test_arrays_path_split_and_seed(draws) -> None:
    z, y = np.vstack(draws["messy"][::2]), np.vstack(draws["messy"][1::2])  # 900 rows
    result = sap_arrays(z, y, SAPSettings(), seed=4)
    z_tr, y_tr, z_te, y_te = shuffle_split(z, y, 4)
    assert len(z_tr) == 600 and len(z_te) == 300
    assert result.value == sap(z_tr, y_tr, z_te, y_te)[0] and result.extras["num_points"] == 900
    assert sap_arrays(z, y, SAPSettings(), seed=4).value == result.value
    assert sap_arrays(z, y, SAPSettings(), seed=5).value != result.value
    mod = modularity_arrays(z, y, ModularitySettings(), seed=4)
    assert mod.value == modularity(z, y)[0]  # modularity uses every row
    assert mod.extras["explicitness_test"] == explicitness(z_tr, y_tr, z_te, y_te)["explicitness_test"]
    assert modularity_arrays(z, y, ModularitySettings(), seed=5).value == mod.value
    assert all(isinstance(mod.extras[k], float) for k in ("explicitness_train", "explicitness_test"))


def test_source_path_draws_train_then_test() -> None:
    source = TableSource(SIZES, messy)
    settings = SAPSettings(num_train=200, num_test=100)
    rs = np.random.RandomState(2)
    z, y = generate_batch_factor_code(source, 200, rs)
    zt, yt = generate_batch_factor_code(source, 100, rs)
    assert metrics.get("sap").obj(source, settings, 2).value == sap(z, y, zt, yt)[0]
    mod = metrics.get("modularity").obj(source, ModularitySettings(num_train=200, num_test=100), 2)
    assert mod.value == modularity(z, y)[0]
    assert mod.extras["explicitness_test"] == explicitness(z, y, zt, yt)["explicitness_test"]


@pytest.mark.parametrize("name", ["sap", "modularity", "betavae_score"])
def test_registered_wrappers(name: str) -> None:
    entry = metrics.get(name)
    assert entry.higher_is_better and entry.needs == "codes+factors"
    assert entry.sampling == (name == "betavae_score") and (entry.meta.get("arrays") is None) == entry.sampling
    assert entry.label == {"sap": "SAP", "modularity": "Modularity", "betavae_score": "BetaVAE"}[name]
    settings = getattr(eval_preset("smoke"), entry.settings_key)
    result = entry.obj(TableSource(SIZES, noisy), settings, 0)
    assert isinstance(result, MetricResult) and isinstance(result.value, float)
    assert result.value > {"sap": 0.35, "modularity": 0.95, "betavae_score": 0.95}[name]
    expected = {
        "sap": {"per_factor_gaps", "sklearn_version"},
        "modularity": {"explicitness_train", "explicitness_test", "sklearn_version"},
        "betavae_score": {"train_accuracy", "sklearn_version"},
    }[name]
    assert expected <= set(result.extras)


# Errors: one-line messages, MetricInputError.


def _fit4() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 3)), rng.integers(0, 3, size=(40, 2))


ERROR_CASES = {
    "SAP with D=1": lambda z, y: sap(z[:, :1], y, z[:, :1], y),
    "SAP matrix with one row": lambda z, y: sap_from_matrix(np.ones((1, 3))),
    "SAP nan codes": lambda z, y: sap(np.where(z > 1.5, np.nan, z), y, z, y),
    "SAP test width": lambda z, y: sap(z, y, z[:, :2], y),
    "SAP non-integer factors": lambda z, y: sap(z, y + 0.5, z, y + 0.5),
    "SAP continuous constant factor": lambda z, y: sap(z, np.hstack([y, np.ones((40, 1))]), z, y, True),
    "SAP continuous inf factor": lambda z, y: sap(z, np.where(y > 1, np.inf, y), z, y, True),
    "modularity K=1": lambda z, y: modularity(z, y[:, :1]),
    "modularity single-valued factor": lambda z, y: modularity(z, np.hstack([y, np.zeros((40, 1), int)])),
    "explicitness one test class": lambda z, y: explicitness(z, y, z[:5], np.zeros((5, 2), int)),
    "explicitness length mismatch": lambda z, y: explicitness(z, y[:30], z, y),
    "BetaVAE one factor": lambda z, y: betavae_score(TableSource((4,), lambda f: f * 1.0), 0, **BV),
    "arrays shape mismatch": lambda z, y: sap_arrays(z[:30], y, SAPSettings(), 0),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line(case: str) -> None:
    with pytest.raises(MetricInputError) as info:
        ERROR_CASES[case](*_fit4())
    assert "\n" not in str(info.value) and str(info.value)
    assert isinstance(info.value, BenchbenchError)
