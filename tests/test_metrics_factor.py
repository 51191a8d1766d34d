"""FactorVAE, MIG and DCI: sanity triads, hand-computed cases, reference parity and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from benchbench.errors import BenchbenchError
from benchbench.metrics.base import MetricResult
from benchbench.metrics.dci import dci, dci_from_importance
from benchbench.metrics.factor_vae import factor_vae_score, majority_classifier, vote_accuracy
from benchbench.metrics.mig import mig
from benchbench.metrics.settings import eval_preset
from benchbench.metrics.table import CodeTable
from benchbench.metrics.utils import (
    discrete_entropy,
    discrete_mutual_info,
    generate_batch_factor_code,
    histogram_discretize,
    shuffle_split,
)
from benchbench.registry import metrics

SIZES = (4, 5, 3)


TableSource = CodeTable.from_function  # a FactorSource over a code table built from a function


def noisy(f: np.ndarray, scale: float = 0.01) -> np.ndarray:
    """Factor values as floats plus small fixed noise per table row."""
    return f + scale * np.random.default_rng(1).normal(size=f.shape)


def rotated(f: np.ndarray) -> np.ndarray:
    """45-degree rotation of the first two dims of the ideal code."""
    z = noisy(f)
    z[:, 0], z[:, 1] = (z[:, 0] + z[:, 1]) / np.sqrt(2), (z[:, 0] - z[:, 1]) / np.sqrt(2)
    return z


SCALE = np.array([3.7, -0.25, -12.0])


@pytest.fixture(scope="module")
def draws() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """codes, factors (2,000 rows) for the ideal, constant and rotated codes on the same factor draw."""
    ideal = TableSource(SIZES, noisy)
    codes, factors = generate_batch_factor_code(ideal, 2000, 0)
    return {
        "ideal": (codes, factors),
        "constant": (np.zeros_like(codes), factors),
        "rotated": (TableSource(SIZES, rotated).represent(factors), factors),
        "scaled": (codes * SCALE, factors),
        "duplicated": (np.hstack([codes, codes[:, :1]]), factors),
    }


# Shared helpers.


def test_generate_batch_factor_code_matches_chunked_reference_loop() -> None:
    source = TableSource(SIZES, noisy)
    codes, factors = generate_batch_factor_code(source, 50, np.random.RandomState(3), batch_size=16)
    rs = np.random.RandomState(3)
    ref_f = [source.sample_factors(n, rs) for n in (16, 16, 16, 2)]
    ref_z = [source.represent(f) for f in ref_f]
    np.testing.assert_array_equal(factors, np.concatenate(ref_f))
    np.testing.assert_array_equal(codes, np.concatenate(ref_z))
    assert codes.dtype == np.float64 and factors.dtype == np.int64


def test_histogram_discretize_edges_and_constant_dim() -> None:
    z = np.array([[0.0, 5.0], [0.5, 5.0], [1.0, 5.0]])
    labels = histogram_discretize(z, 20)
    # edges 0, 0.05, ..., 1: 0 -> bin 1, 0.5 -> bin 11, the maximum -> bin 20; a constant dim -> one label
    np.testing.assert_array_equal(labels[:, 0], [1, 11, 20])
    assert len(np.unique(labels[:, 1])) == 1


def test_discrete_mutual_info_equals_sklearn() -> None:
    rng = np.random.default_rng(0)
    b = histogram_discretize(rng.normal(size=(500, 6)).round(1), 20)  # rounding creates ties
    b[:, 2] = 7  # constant dim
    y = np.stack([rng.integers(0, 2, 500), rng.integers(0, 9, 500), rng.choice([3, 70, 10**9], 500)], 1)
    y = np.hstack([y, b[:, :1] % 3])  # a factor that depends on a code dim
    expected = np.array([[mutual_info_score(y[:, k], b[:, i]) for k in range(4)] for i in range(6)])
    np.testing.assert_allclose(discrete_mutual_info(b, y), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        discrete_entropy(y), [mutual_info_score(c, c) for c in y.T], rtol=0, atol=1e-10
    )
    assert (discrete_mutual_info(b, y)[2] == 0).all()
    np.testing.assert_allclose(discrete_mutual_info(b * 0.5, y), expected, rtol=0, atol=1e-10)  # float labels


# MIG.


def test_mig_hand_table() -> None:
    # y0 = [0,0,1,1], y1 = [0,1,0,1]; z0 -> bins [1,20,20,20], z1 -> bins [20,20,1,1] (= y0).
    # I(y0; z0) = I(y1; z0) = ln2 - 3/4 (ln3 - 2/3 ln2) = 3/4 ln(4/3)  (bin 20 holds 1:2 of the classes)
    # I(y0; z1) = ln2, I(y1; z1) = 0, H(y0) = H(y1) = ln2.
    # gap0 = (ln2 - 3/4 ln(4/3)) / ln2 = 3/4 log2(3) - 1/2; gap1 = 3/4 ln(4/3) / ln2 = 3/2 - 3/4 log2(3).
    codes = np.array([[0.0, 5.0], [1.0, 5.0], [1.0, -3.0], [1.0, -3.0]])
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    score, gaps = mig(codes, factors)
    np.testing.assert_allclose(gaps, [0.75 * np.log2(3) - 0.5, 1.5 - 0.75 * np.log2(3)], atol=1e-12)
    assert score == pytest.approx(0.5, abs=1e-12)


def test_mig_triad(draws) -> None:
    assert mig(*draws["ideal"])[0] > 0.95
    assert mig(*draws["constant"])[0] == 0.0
    rotated_score, rotated_gaps = mig(*draws["rotated"])
    assert rotated_score < 0.8 and rotated_gaps[2] > 0.95  # factor 2 is untouched by the rotation
    dup_gaps = mig(*draws["duplicated"])[1]
    assert dup_gaps[0] == pytest.approx(0.0, abs=1e-12)  # factor 0 is coded twice: no gap


def test_mig_scale_and_sign_invariant(draws) -> None:
    assert mig(*draws["scaled"])[0] == pytest.approx(mig(*draws["ideal"])[0], abs=1e-12)


def test_mig_loop_over_sklearn_parity(draws) -> None:
    codes, factors = draws["rotated"]
    b = histogram_discretize(codes)
    m = np.array([[mutual_info_score(factors[:, k], b[:, i]) for k in range(3)] for i in range(3)])
    s = np.sort(m, axis=0)[::-1]
    h = np.array([mutual_info_score(f, f) for f in factors.T])
    assert mig(codes, factors)[0] == pytest.approx(np.mean((s[0] - s[1]) / h), abs=1e-12)


# FactorVAE.


def reference_factor_vae(source, seed, batch_size, num_train, num_eval, num_var, threshold):
    """The reference algorithm written plainly: one represent call per batch."""
    rs = np.random.RandomState(seed)
    num_factors = len(source.factor_sizes)
    gv = np.var(source.represent(source.sample_factors(num_var, rs)), axis=0, ddof=1)
    active = np.sqrt(gv) >= threshold
    if not active.any():
        return 0.0, 0.0

    def votes(n):
        v = np.zeros((num_factors, len(gv)), dtype=np.int64)
        for _ in range(n):
            k = rs.randint(num_factors)
            f = source.sample_factors(batch_size, rs)
            f[:, k] = f[0, k]
            lv = np.var(source.represent(f), axis=0, ddof=1)
            v[k, np.argmin(lv[active] / gv[active])] += 1
        return v

    train = votes(num_train)
    c = np.argmax(train, axis=0)
    cols = np.arange(train.shape[1])
    ev = votes(num_eval)
    return np.sum(train[c, cols]) / np.sum(train), np.sum(ev[c, cols]) / np.sum(ev)


FV = {"batch_size": 32, "num_train": 300, "num_eval": 200, "num_variance_estimate": 1000}


def test_factor_vae_parity_with_reference_loop() -> None:
    mix = np.random.default_rng(2).normal(size=(3, 5))

    def messy(f: np.ndarray) -> np.ndarray:
        z = np.tanh(noisy(f, 0.3) @ mix / 3)
        z[:, 4] *= 1e-3  # std below the 0.05 prune threshold: a dead dim
        return z

    source = TableSource(SIZES, messy)
    out = factor_vae_score(source, 7, prune_threshold=0.05, **FV)
    calls = source.calls
    ref_train, ref_eval = reference_factor_vae(source, 7, 32, 300, 200, 1000, 0.05)
    assert out["eval_accuracy"] == pytest.approx(ref_eval, abs=1e-12)
    assert out["train_accuracy"] == pytest.approx(ref_train, abs=1e-12)
    assert 0.2 < out["eval_accuracy"] < 1.0
    assert out["num_active_dims"] == 4 and out["reference_num_active_dims"] == 5
    np.testing.assert_array_equal(out["active_dims"], [0, 1, 2, 3])
    assert calls < 10  # votes are encoded in blocks, not one call per batch


def test_factor_vae_triad_and_invariance() -> None:
    ideal = factor_vae_score(TableSource(SIZES, noisy), 0, **FV)
    assert ideal["eval_accuracy"] == 1.0 and ideal["train_accuracy"] == 1.0
    constant = factor_vae_score(TableSource(SIZES, lambda f: np.zeros((len(f), 3))), 0, **FV)
    assert constant["eval_accuracy"] == 0.0 and constant["num_active_dims"] == 0
    assert factor_vae_score(TableSource(SIZES, rotated), 0, **FV)["eval_accuracy"] < 0.9
    scaled = factor_vae_score(TableSource(SIZES, lambda f: noisy(f) * SCALE), 0, **FV)
    assert scaled["eval_accuracy"] == ideal["eval_accuracy"]


def test_factor_vae_vote_accuracy_by_hand() -> None:
    train = np.array([[3, 0, 0], [3, 1, 0]])
    c = majority_classifier(train)
    np.testing.assert_array_equal(c, [0, 1, 0])  # tie in column 0 -> lowest k; empty column -> 0
    assert vote_accuracy(train, c) == pytest.approx(4 / 7)
    assert vote_accuracy(np.array([[1, 0, 2], [2, 2, 1]]), c) == pytest.approx(5 / 8)  # (1 + 2 + 2) / 8


def test_factor_vae_unrepresented_factor() -> None:
    # Code = (f0, f1); f2 is not represented. Votes with k = 0 or 1 always find their dim (local variance
    # exactly 0); votes with k = 2 land on column 0 or 1 whose majority is factor 0 or 1. So the score is
    # exactly 1 - (share of eval votes with k = 2). Count those by replaying the documented draw order.
    source = TableSource(SIZES, lambda f: f[:, :2].astype(float))
    out = factor_vae_score(source, 5, **FV)
    rs = np.random.RandomState(5)
    source.sample_factors(FV["num_variance_estimate"], rs)
    held = []
    for _ in range(FV["num_train"] + FV["num_eval"]):
        held.append(rs.randint(3))
        source.sample_factors(FV["batch_size"], rs)
    held_eval = np.array(held[FV["num_train"] :])
    assert out["eval_accuracy"] == pytest.approx(1 - np.mean(held_eval == 2), abs=1e-15)
    assert out["eval_votes"].sum() == FV["num_eval"] and out["eval_votes"][2].sum() == np.sum(held_eval == 2)


# DCI.


def test_dci_from_importance_by_hand() -> None:
    d, c = dci_from_importance(np.eye(3))
    assert d == pytest.approx(1.0, abs=1e-8) and c == pytest.approx(1.0, abs=1e-8)
    assert dci_from_importance(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert dci_from_importance(np.zeros((3, 2))) == pytest.approx((0.0, 0.0), abs=1e-12)  # uniform fallback
    # Code 0 serves factor 0 only, code 1 is dead (zero row, weight 0): D = C = 1.
    assert dci_from_importance(np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx((1.0, 1.0), abs=1e-8)
    # Each code splits 3:1 between the two factors: D_i = C_k = 1 - H2(3/4), H2(3/4) = 2 - 3/4 log2(3).
    expected = 0.75 * np.log2(3) - 1.0
    got = dci_from_importance(np.array([[0.75, 0.25], [0.25, 0.75]]))
    assert got == pytest.approx((expected, expected), abs=1e-9)
    # One code split evenly between two factors: D = 0; each factor is complete (one code): C = 1.
    assert dci_from_importance(np.array([[0.5, 0.5], [0.0, 0.0]])) == pytest.approx((0.0, 1.0), abs=1e-8)


@pytest.fixture(scope="module")
def dci_ideal(draws) -> dict:
    codes, factors = draws["ideal"]
    return dci(codes[:500], factors[:500], codes[1700:], factors[1700:], n_jobs=1)


def test_dci_triad(draws, dci_ideal) -> None:
    assert dci_ideal["disentanglement"] > 0.9 and dci_ideal["completeness"] > 0.9
    assert dci_ideal["informativeness_test"] > 0.95
    assert dci_ideal["importance"].shape == (3, 3)
    codes, factors = draws["constant"]
    const = dci(codes[:500], factors[:500], codes[1700:], factors[1700:])
    assert const["disentanglement"] == pytest.approx(0.0, abs=1e-9)
    assert const["completeness"] == pytest.approx(0.0, abs=1e-9)
    codes, factors = draws["rotated"]
    rot = dci(codes[:500], factors[:500], codes[1700:], factors[1700:])
    assert rot["disentanglement"] < dci_ideal["disentanglement"] - 0.2


def test_dci_parallel_equals_serial_and_scale_invariance(draws, dci_ideal) -> None:
    codes, factors = draws["ideal"]
    par = dci(codes[:500], factors[:500], codes[1700:], factors[1700:], n_jobs=2)
    np.testing.assert_array_equal(par["importance"], dci_ideal["importance"])
    assert par["informativeness_test"] == dci_ideal["informativeness_test"]
    codes, factors = draws["scaled"]
    scaled = dci(codes[:500], factors[:500], codes[1700:], factors[1700:], n_jobs=1)
    assert scaled["disentanglement"] == pytest.approx(dci_ideal["disentanglement"], abs=1e-3)
    assert scaled["completeness"] == pytest.approx(dci_ideal["completeness"], abs=1e-3)


# Registered wrappers.


@pytest.mark.parametrize("name", ["factorvae", "mig", "dci"])
def test_registered_wrappers(name: str) -> None:
    entry = metrics.get(name)
    assert entry.higher_is_better and entry.needs == "codes+factors"
    settings = getattr(eval_preset("smoke"), entry.settings_key)
    result = entry.obj(TableSource(SIZES, noisy), settings, 0)
    assert isinstance(result, MetricResult) and 0.9 <= result.value <= 1.0
    expected_extras = {
        "factorvae": {"train_accuracy", "num_active_dims", "reference_num_active_dims"},
        "mig": {"per_factor_gaps"},
        "dci": {"completeness", "informativeness_train", "informativeness_test", "mode"},
    }[name]
    assert expected_extras <= set(result.extras)


def test_shuffle_split_two_to_one() -> None:
    z, y = np.arange(30.0)[:, None], np.arange(30)[:, None]
    z_tr, y_tr, z_te, y_te = shuffle_split(z, y, 0)
    assert len(z_tr) == 20 and len(z_te) == 10
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_te])[:, 0]), np.arange(30))
    np.testing.assert_array_equal(z_tr[:, 0], y_tr[:, 0])


# Errors: one-line messages, BenchbenchError subclasses.


def _fit4() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 3)), rng.integers(0, 3, size=(40, 2))


ERROR_CASES = {
    "nan codes (MIG)": lambda z, y: mig(np.where(z > 1.5, np.nan, z), y),
    "inf codes (DCI)": lambda z, y: dci(np.where(z > 1.5, np.inf, z), y, z, y),
    "single-valued factor": lambda z, y: mig(z, np.hstack([y, np.full((40, 1), 2)])),
    "length mismatch": lambda z, y: mig(z[:30], y),
    "non-integer factors": lambda z, y: mig(z, y + 0.5),
    "MIG with D=1": lambda z, y: mig(z[:, :1], y),
    "DCI with K=1": lambda z, y: dci(z, y[:, :1], z, y[:, :1]),
    "too few samples": lambda z, y: mig(z[:1], y[:1]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line(case: str) -> None:
    with pytest.raises(BenchbenchError) as info:
        ERROR_CASES[case](*_fit4())
    assert "\n" not in str(info.value) and str(info.value)


def test_error_names_the_constant_factor() -> None:
    z, y = _fit4()
    with pytest.raises(BenchbenchError, match="factor column 2 has a single value"):
        mig(z, np.hstack([y, np.full((40, 1), 2)]))
