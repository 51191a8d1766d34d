"""TAD / ATTRS (metrics.md §8, §12): AUROC parity with sklearn and with a plain loop of the reference
grid rule, label redundancy, the filters, hand-computed scores, edge cases and input errors."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score, roc_auc_score

from benchbench.errors import ConfigError, MetricInputError
from benchbench.metrics.base import MetricResult
from benchbench.metrics.settings import TADSettings
from benchbench.metrics.tad import auroc_matrix, label_redundancy, tad, tad_from_arrays, tad_metric
from benchbench.registry import metrics


def grid_auroc_loop(z: np.ndarray, a: np.ndarray, step: float) -> float:
    """The reference grid rule, one threshold at a time (NashAE ``calculate_auroc`` semantics), in the reference's
    float32 torch arithmetic: float32 codes, min/max and thresholds t * (max - min) + min."""
    z = z.astype(np.float32)
    m, big_m = z.min(), z.max()
    if big_m - m <= np.float32(0.2):
        return 0.5
    p, q = a.sum(), len(a) - a.sum()
    plus, minus = [], []
    for t in np.arange(0, 1.0001, step).astype(np.float32):
        theta = t * (big_m - m) + m
        for points, pred in ((plus, z >= theta), (minus, z < theta)):
            tp = np.sum(pred & (a == 1))
            fp = np.sum(pred & (a == 0))
            points.append((fp / q, tp / p))
    areas = []
    for points in (plus, minus):
        fpr = sorted(x for x, _ in points)
        tpr = sorted(y for _, y in points)
        areas.append(sum(tpr[i] * (fpr[i] - fpr[i - 1]) for i in range(1, len(points))))
    return max(areas)


@pytest.fixture
def mixed() -> tuple[np.ndarray, np.ndarray]:
    """Codes with heavy ties, continuous dims, a narrow dim (range < 0.2); attributes of varied rates."""
    rng = np.random.default_rng(0)
    n = 400
    attrs = (rng.random((n, 5)) < np.array([0.5, 0.2, 0.05, 0.8, 0.01])).astype(np.int64)
    attrs[0, 4] = 1  # at least one positive in the rare column
    codes = np.column_stack(
        [
            rng.integers(0, 4, n) + attrs[:, 0],  # integer codes: many ties, also at grid thresholds
            np.round(rng.normal(size=n) + 1.5 * attrs[:, 1], 1),  # rounded: ties
            rng.normal(size=n) * 3 - attrs[:, 3],  # continuous, negative association
            0.05 * rng.random(n),  # range <= 0.2: the grid variants give 0.5
            10.0 * (attrs[:, 2] | attrs[:, 4]) + rng.integers(0, 2, n),
        ]
    ).astype(np.float64)
    return codes, attrs


# AUROC matrix.


def test_exact_auroc_equals_sklearn_with_ties(mixed):
    codes, attrs = mixed
    u = auroc_matrix(codes, attrs, "exact")
    assert u.shape == (attrs.shape[1], codes.shape[1])
    for a in range(attrs.shape[1]):
        for j in range(codes.shape[1]):
            auc = roc_auc_score(attrs[:, a], codes[:, j])
            expected = max(auc, roc_auc_score(attrs[:, a], -codes[:, j]))
            assert abs(u[a, j] - expected) <= 1e-12, (a, j)


@pytest.mark.parametrize("variant, step", [("nashae", 0.01), ("disdiff", 0.1)])
def test_grid_auroc_equals_plain_loop(mixed, variant, step):
    codes, attrs = mixed
    u = auroc_matrix(codes, attrs, variant)
    for a in range(attrs.shape[1]):
        for j in range(codes.shape[1]):
            assert abs(u[a, j] - grid_auroc_loop(codes[:, j], attrs[:, a], step)) <= 1e-12, (a, j)
    assert np.all(u[:, 3] == 0.5)  # narrow dim


def test_grid_auroc_equals_plain_loop_over_blocks(monkeypatch):
    """Several dim blocks (forced small) give the same numbers as the loop."""
    import benchbench.metrics.tad as tad_module

    monkeypatch.setattr(tad_module, "_GRID_BLOCK_CELLS", 1)
    rng = np.random.default_rng(1)
    attrs = rng.integers(0, 2, size=(120, 2))
    codes = rng.normal(size=(120, 4)) + attrs[:, :1]
    u = auroc_matrix(codes, attrs, "disdiff")
    loop = [[grid_auroc_loop(codes[:, j], attrs[:, a], 0.1) for j in range(4)] for a in range(2)]
    np.testing.assert_allclose(u, loop, rtol=0, atol=1e-12)


def test_grid_variants_are_biased_upward_on_gaussians():
    """metrics.md §8: step 0.1 sits clearly above exact; step 0.01 slightly above."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, size=(1000, 1))
    z = np.column_stack([d * a[:, 0] + rng.normal(size=1000) for d in (0.1, 0.5, 1.0, 2.0)])
    exact, fine, coarse = (auroc_matrix(z, a, v)[0] for v in ("exact", "nashae", "disdiff"))
    assert np.all(fine >= exact - 1e-3) and np.all(fine - exact < 0.03)
    assert np.all(coarse - exact > 0.02)
    assert np.all(coarse >= fine)


def test_exact_is_invariant_to_scale_shift_and_sign(mixed):
    codes, attrs = mixed
    transformed = codes * np.array([2.0, -0.5, 7.0, -1.0, 1e3]) + np.array([1.0, -3.0, 0.0, 5.0, 2.0])
    np.testing.assert_allclose(
        auroc_matrix(transformed, attrs), auroc_matrix(codes, attrs), rtol=0, atol=1e-12
    )


def test_float32_codes_match_float64(mixed):
    codes, attrs = mixed
    c32 = codes.astype(np.float32)
    np.testing.assert_array_equal(auroc_matrix(c32, attrs), auroc_matrix(c32.astype(np.float64), attrs))


def test_auroc_matrix_rows_without_both_classes_are_nan():
    codes = np.random.default_rng(0).normal(size=(20, 3))
    attrs = np.zeros((20, 3), dtype=int)
    attrs[:10, 0] = 1
    attrs[:, 2] = 1
    for variant in ("exact", "nashae", "disdiff"):
        u = auroc_matrix(codes, attrs, variant)
        assert np.isfinite(u[0]).all() and np.isnan(u[1:]).all()


# Label redundancy.


def test_label_redundancy_hand_cases():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, size=(20_000, 2))
    attrs = np.column_stack([a[:, 0], a[:, 0], a[:, 1], np.zeros(20_000, dtype=int)])
    r = label_redundancy(attrs)
    assert r[0] == 1.0 and r[1] == 1.0  # identical labels explain each other fully
    assert 0.0 <= r[2] < 1e-3  # independent, balanced
    assert math.isnan(r[3])  # H = 0


def test_label_mutual_info_equals_sklearn():
    from benchbench.metrics.tad import _label_mutual_info

    rng = np.random.default_rng(3)
    base = rng.random((500, 1))
    attrs = (rng.random((500, 4)) < base * np.array([0.3, 0.9, 1.2, 0.6])).astype(int)
    mi = _label_mutual_info(attrs)
    for i in range(4):
        for j in range(4):
            assert abs(mi[i, j] - mutual_info_score(attrs[:, i], attrs[:, j])) <= 1e-12


def test_label_redundancy_small_closed_form():
    # a = [0,0,1,1], b = [0,1,1,1]: I(a;b) = 0.5 ln(4/3) ... computed from the 2x2 table by hand.
    attrs = np.array([[0, 0], [0, 1], [1, 1], [1, 1]])
    i_ab = 0.25 * math.log(0.25 / (0.5 * 0.25)) + 0.25 * math.log(0.25 / (0.5 * 0.75)) + 0.5 * math.log(
        0.5 / (0.5 * 0.75)
    )
    h_a, h_b = math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    np.testing.assert_allclose(label_redundancy(attrs), [i_ab / h_a, i_ab / h_b], rtol=1e-12)


def test_single_label_has_zero_redundancy():
    assert label_redundancy(np.array([[0], [1], [1]])).tolist() == [0.0]


# TAD and ATTRS.


@pytest.fixture
def factorial() -> tuple[np.ndarray, np.ndarray]:
    """The 8 rows of a 2^3 design (a0, a1, a2 pairwise independent, balanced) plus a3 = a0 xor a1."""
    bits = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)])
    a0, a1, a2 = bits.T
    attrs = np.column_stack([a0, a1, a2, a0 ^ a1])
    codes = np.column_stack([4 * a0 + 2 * a1 + a2, a1, 4 * a2 + 2 * a0 + a1]).astype(float)
    return codes, attrs


def test_tad_hand_computed(factorial):
    """AUROCs by counting pairs: U = [[1, .5, .75], [.75, 1, .625], [.625, .5, 1], [.5, .5, .5]]."""
    codes, attrs = factorial
    expected_u = np.array([[1, 0.5, 0.75], [0.75, 1, 0.625], [0.625, 0.5, 1], [0.5, 0.5, 0.5]])
    np.testing.assert_allclose(auroc_matrix(codes, attrs), expected_u, rtol=0, atol=1e-15)
    out = tad(codes, attrs)
    assert out["tad"] == 0.25 + 0.25 + 0.375 and out["attrs"] == 3
    detail = out["per_attribute"]
    assert [d["best_dim"] for d in detail] == [0, 1, 2, 0]  # a3: three-way tie, first dim wins
    assert [d["gap"] for d in detail] == [0.25, 0.25, 0.375, 0.0]
    assert [d["second_auroc"] for d in detail] == [0.75, 0.75, 0.625, 0.5]
    assert [d["redundancy"] for d in detail] == [0.0, 0.0, 0.0, 0.0]  # pairwise independent
    assert [d["kept"] for d in detail] == [True, True, True, False]  # a3: best AUROC 0.5 < 0.75
    assert all(d["skipped_reason"] is None for d in detail)


def test_tad_thresholds_are_parameters(factorial):
    codes, attrs = factorial
    assert tad(codes, attrs, auroc_threshold=0.5)["attrs"] == 4
    assert tad(codes, attrs, auroc_threshold=1.01)["attrs"] == 0
    assert tad(codes, attrs, redundancy_threshold=-1.0)["tad"] == 0.0


def test_redundant_attribute_pair_is_excluded(factorial):
    codes, attrs = factorial
    out = tad(codes, np.column_stack([attrs[:, :3], attrs[:, 0]]))
    assert [d["redundancy"] for d in out["per_attribute"]] == [1.0, 0.0, 0.0, 1.0]
    assert [d["kept"] for d in out["per_attribute"]] == [False, True, True, False]
    assert out["tad"] == 0.25 + 0.375 and out["attrs"] == 2


def test_duplicated_latent_gives_zero_gap():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, size=(500, 1))
    z = a[:, 0] + 0.3 * rng.normal(size=500)
    for variant in ("exact", "nashae", "disdiff"):
        out = tad(np.column_stack([z, rng.normal(size=500), z]), a, variant=variant)
        d = out["per_attribute"][0]
        assert d["best_auroc"] > 0.9 and d["gap"] == 0.0 and d["kept"] and out["tad"] == 0.0


def test_ideal_code_scores_one_per_attribute():
    rng = np.random.default_rng(0)
    attrs = rng.integers(0, 2, size=(2000, 3))
    codes = np.column_stack([attrs + 0.1 * rng.normal(size=attrs.shape), rng.normal(size=(2000, 2))])
    out = tad(codes, attrs)
    assert out["attrs"] == 3 and out["tad"] == pytest.approx(1.5, abs=0.1)


def test_constant_attributes_are_skipped_with_one_warning(factorial):
    codes, attrs = factorial
    attrs = np.column_stack([attrs[:, :3], np.zeros(8, int), np.ones(8, int)])
    with pytest.warns(UserWarning, match=r"\['none', 'all'\]") as record:
        out = tad(codes, attrs, attr_names=["a0", "a1", "a2", "none", "all"])
    assert len(record) == 1
    assert out["tad"] == 0.875 and out["attrs"] == 3
    none, every = out["per_attribute"][3:]
    assert none["skipped_reason"] == "no positives" and every["skipped_reason"] == "no negatives"
    assert not none["kept"] and none["best_auroc"] is None and none["redundancy"] is None


def test_no_warning_without_skipped_attributes(factorial):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tad(*factorial)


# Errors.


@pytest.mark.parametrize(
    "codes, attrs, match",
    [
        (np.array([[0.0], [1.0]]), np.array([[0], [1]]), "at least 2 code dims"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), np.array([[0], [1]]), "NaN or inf"),
        (np.array([[0.0, np.inf], [1.0, 0.0]]), np.array([[0], [1]]), "NaN or inf"),
        (np.zeros((3, 2)), np.array([[0], [1]]), "3 rows but attributes have 2"),
        (np.zeros((2, 2)), np.array([[0], [2]]), "must be 0/1; column 0 holds 2"),
        (np.zeros((2, 2)), np.array([[-1], [1]]), "must be 0/1"),
        (np.zeros((2, 2)), np.array([0, 1]), "2-D array"),
        (np.zeros(2), np.array([[0], [1]]), "2-D array"),
    ],
)
def test_bad_inputs_raise_one_line_errors(codes, attrs, match):
    with pytest.raises(MetricInputError, match=match) as info:
        tad(codes, attrs)
    assert "\n" not in str(info.value)


def test_unknown_variant_and_name_count(factorial):
    with pytest.raises(ConfigError, match="did you mean 'exact'"):
        tad(*factorial, variant="exakt")
    with pytest.raises(MetricInputError, match="2 attribute names for 4"):
        tad(*factorial, attr_names=["x", "y"])


# Registered wrapper.


def test_registered_wrapper(factorial):
    entry = metrics.get("tad")
    assert entry.obj is tad_metric and entry.higher_is_better and entry.needs == "codes+attributes"
    assert entry.settings_key == "tad" and entry.arrays is tad_from_arrays
    codes, attrs = factorial
    names = ("Bald", "Bangs", "Smiling", "XOR")
    result = tad_metric(codes, attrs, names, TADSettings(variant="exact"), seed=0)
    assert isinstance(result, MetricResult) and result.value == 0.875
    assert result.extras["attrs"] == 3 and result.extras["variant"] == "exact"
    assert [d["name"] for d in result.extras["attributes"]] == list(names)
    json.dumps(result.extras, allow_nan=False)
    plain = tad_from_arrays(codes, attrs, TADSettings(variant="disdiff"), seed=0)
    assert plain.extras["variant"] == "disdiff"
    assert [d["name"] for d in plain.extras["attributes"]] == ["attr0", "attr1", "attr2", "attr3"]
