"""DCI mode "fast" (dci_trees: sklearn's trees from histograms) against mode "exact" (sklearn GBT).

The sanity cases of metrics.md §3 pin the agreement (D and C within 0.01, as
benchmarks/bench_dci_agreement.py requires on larger codes); the tree tests check that the split
search is exact (brute force over every threshold) and that the boosted trees are sklearn's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from benchbench.errors import ConfigError
from benchbench.metrics import dci as dci_module
from benchbench.metrics import dci_sklearn, dci_trees
from benchbench.metrics.dci import _run_longest_first, dci
from benchbench.metrics.settings import eval_preset
from benchbench.metrics.utils import generate_batch_factor_code
from benchbench.registry import metrics

SIZES = (10, 10, 10, 8, 4, 15)  # Shapes3D's factor sizes
NUM_TRAIN, NUM_TEST = 2000, 1000
TOL = 0.01  # fast D and C within 0.01 of exact (issue 15; metrics.md §3 asks 0.02)

# Exact D and C of the cases below (GradientBoostingClassifier, random_state 0, sklearn 1.9.1). Computing
# them takes about 80 s on 2 cores, so they are stored; test_exact_reference (slow) recomputes them.
EXACT = {
    "ideal": (1.0, 1.0),
    "mixed": (0.702963, 0.703163),
    "duplicated": (1.0, 0.9412),
    "noisy": (0.746643, 0.71786),
}


class TableSource:
    """FactorSource over a code table indexed by the flat factor index."""

    def __init__(self, code_fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.factor_sizes = SIZES
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in SIZES], indexing="ij"), -1).reshape(-1, len(SIZES))
        self.table = code_fn(grid.astype(np.float64))

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        return np.stack([random_state.randint(s, size=n) for s in SIZES], axis=1)

    def represent(self, factors: np.ndarray) -> np.ndarray:
        return self.table[np.ravel_multi_index(tuple(factors.T), SIZES)]


def ideal(grid: np.ndarray) -> np.ndarray:
    """One dim per factor: factor / size plus small noise (classes 6+ sigma apart)."""
    return grid / np.array(SIZES) + 0.01 * np.random.default_rng(1).normal(size=grid.shape)


def mixed(grid: np.ndarray) -> np.ndarray:
    """The ideal code with dims (0, 1) and (2, 3) rotated by 45 degrees."""
    z = ideal(grid)
    z[:, 0], z[:, 1] = (z[:, 0] + z[:, 1]) / np.sqrt(2), (z[:, 0] - z[:, 1]) / np.sqrt(2)
    z[:, 2], z[:, 3] = (z[:, 2] + z[:, 3]) / np.sqrt(2), (z[:, 2] - z[:, 3]) / np.sqrt(2)
    return z


def duplicated(grid: np.ndarray) -> np.ndarray:
    """The ideal code plus an exact copy of dim 0 (7 dims)."""
    z = ideal(grid)
    return np.hstack([z, z[:, :1]])


def noisy(grid: np.ndarray) -> np.ndarray:
    """Heavier noise (classes overlap) plus 4 dims of pure noise (10 dims)."""
    rng = np.random.default_rng(2)
    z = grid / np.array(SIZES) + 0.05 * rng.normal(size=grid.shape)
    return np.hstack([z, rng.normal(size=(len(grid), 4))])


CASES = {"ideal": ideal, "mixed": mixed, "duplicated": duplicated, "noisy": noisy}


def draw(name: str) -> tuple[np.ndarray, ...]:
    """codes_train, factors_train, codes_test, factors_test (2,000 / 1,000 rows) of one case."""
    source = TableSource(CASES[name])
    rs = np.random.RandomState(0)
    return (*generate_batch_factor_code(source, NUM_TRAIN, rs), *generate_batch_factor_code(source, NUM_TEST, rs))


@pytest.fixture(scope="module")
def fast() -> dict[str, dict]:
    return {name: dci(*draw(name), mode="fast") for name in CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_fast_within_tolerance_of_exact(fast, name: str) -> None:
    exact_d, exact_c = EXACT[name]
    assert fast[name]["disentanglement"] == pytest.approx(exact_d, abs=TOL)
    assert fast[name]["completeness"] == pytest.approx(exact_c, abs=TOL)


def test_fast_sanity_ordering(fast) -> None:
    assert fast["ideal"]["disentanglement"] > 0.99 and fast["ideal"]["completeness"] > 0.99
    assert fast["ideal"]["informativeness_test"] > 0.99
    # The copy of dim 0 ties with it at every split; sklearn's splitter takes whichever it draws first, so
    # the two share factor 0's importance unevenly (0.443 / 0.557 here, as in exact mode).
    imp = fast["duplicated"]["importance"]
    assert 0.3 < imp[0, 0] < 0.7 and imp[0, 0] + imp[6, 0] == pytest.approx(1.0, abs=1e-3)
    assert fast["duplicated"]["disentanglement"] > 0.99
    assert fast["duplicated"]["completeness"] < fast["ideal"]["completeness"] - 0.04
    for name in ("mixed", "noisy"):
        assert fast[name]["disentanglement"] < 0.8 and fast[name]["completeness"] < 0.8
    assert fast["noisy"]["importance"][6:].sum() > 0  # the pure-noise dims get some (overfitting) importance


def _small(seed: int = 0) -> tuple[np.ndarray, ...]:
    """600 / 300 rows, factors of sizes (2, 5, 3) (a binary one: one tree per round), 4 dims."""
    rng = np.random.default_rng(seed)
    y = np.stack([rng.integers(0, n, 900) for n in (2, 5, 3)], axis=1)
    z = np.hstack([y + 0.3 * rng.normal(size=y.shape), rng.normal(size=(900, 1))])
    z[:, 1] = z[:, 1] + 0.5 * z[:, 2]
    return z[:600], y[:600], z[600:], y[600:]


def test_fast_tracks_exact_on_a_small_case_with_a_binary_factor() -> None:
    args = _small()
    exact, fast_out = dci(*args, n_jobs=1), dci(*args, mode="fast", n_jobs=1)
    for key in ("disentanglement", "completeness", "informativeness_train", "informativeness_test"):
        assert fast_out[key] == pytest.approx(exact[key], abs=TOL), key
    np.testing.assert_allclose(fast_out["importance"].sum(axis=0), 1.0)


def test_fast_is_deterministic_and_independent_of_n_jobs() -> None:
    args = _small(1)
    serial = dci(*args, mode="fast", n_jobs=1)
    threaded = dci(*args, mode="fast", n_jobs=2)
    np.testing.assert_array_equal(serial["importance"], threaded["importance"])
    assert serial["informativeness_test"] == threaded["informativeness_test"]
    again = dci(*args, mode="fast", n_jobs=1)
    np.testing.assert_array_equal(serial["importance"], again["importance"])


def test_fast_constant_codes_score_zero_like_exact() -> None:
    z, y, zt, yt = _small(2)
    out = dci(np.zeros_like(z), y, np.zeros_like(zt), yt, mode="fast", n_jobs=1)
    assert out["importance"].sum() == 0.0
    assert out["disentanglement"] == pytest.approx(0.0, abs=1e-9)
    assert out["completeness"] == pytest.approx(0.0, abs=1e-9)
    majority = np.mean([np.mean(yt[:, k] == np.bincount(y[:, k]).argmax()) for k in range(y.shape[1])])
    assert out["informativeness_test"] == pytest.approx(majority, abs=1e-12)


def test_registered_wrapper_records_fast_mode() -> None:
    entry = metrics.get("dci")
    settings = dataclasses.replace(eval_preset("smoke").dci, mode="fast")
    result = entry.obj(TableSource(ideal), settings, 0)
    assert result.extras["mode"] == "fast" and "numba_version" in result.extras and "fast_learner" in result.extras
    assert 0.9 <= result.value <= 1.0


def test_unknown_mode_is_a_config_error() -> None:
    z, y, zt, yt = _small()
    with pytest.raises(ConfigError, match="unknown DCI mode"):
        dci(z, y, zt, yt, mode="approximate")


def test_presets_quick_and_smoke_default_to_fast_paper_to_exact() -> None:
    assert eval_preset("quick").dci.mode == "fast" and eval_preset("smoke").dci.mode == "fast"
    assert eval_preset("paper").dci.mode == "exact"


def _brute_force_best(x32: np.ndarray, g: np.ndarray, rows: np.ndarray) -> float:
    """Largest S_l^2/n_l + S_r^2/n_r over every dim and every threshold between distinct values (sklearn's search)."""
    best = -np.inf
    for f in range(x32.shape[1]):
        v = x32[rows, f]
        order = np.argsort(v, kind="stable")
        v, gs = v[order], g[rows][order]
        csum = np.cumsum(gs)[:-1]
        n_l = np.arange(1, len(v))
        valid = v[1:] > v[:-1] + np.float32(1e-7)
        if valid.any():
            s = gs.sum()
            gain = csum**2 / n_l + (s - csum) ** 2 / (len(v) - n_l)
            best = max(best, float(gain[valid].max()))
    return best


@pytest.mark.parametrize("num_bins", [3, 16, 256])
def test_split_search_is_exact_whatever_the_bins(num_bins: int) -> None:
    """Every split chosen equals the brute-force best of its node (bins only decide what is rescanned)."""
    rng = np.random.default_rng(num_bins)
    x = np.hstack([rng.normal(size=(400, 3)), rng.integers(0, 5, size=(400, 1)), rng.normal(size=(400, 1)).round(1)])
    g = np.where(rng.random(400) < 0.05, rng.uniform(-1, 1, 400), 0.01 * rng.normal(size=400))  # a few large
    g[:200] += 0.3 * (x[:200, 0] > 0.5)
    prepared = dci_trees.prepare(x, num_bins)
    tree = dci_trees.grow_tree(prepared, g)
    x32 = x.astype(np.float32)
    checked = 0
    for nid in range(7):
        if tree["start"][nid] < 0:
            continue
        rows = tree["rows"][tree["start"][nid] : tree["end"][nid]]
        if not tree["is_split"][nid]:  # a leaf only when sklearn's would be: < 2 rows, pure, or constant codes
            assert len(rows) < 2 or np.var(g[rows]) <= 1e-15 or _brute_force_best(x32, g, rows) == -np.inf
            continue
        left = tree["rows"][tree["start"][2 * nid + 1] : tree["end"][2 * nid + 1]]
        right = tree["rows"][tree["start"][2 * nid + 2] : tree["end"][2 * nid + 2]]
        ours = g[left].sum() ** 2 / len(left) + g[right].sum() ** 2 / len(right)
        assert ours == pytest.approx(_brute_force_best(x32, g, rows), rel=1e-12, abs=1e-12)
        f, thr = tree["feature"][nid], tree["threshold"][nid]
        assert (x32[left, f] <= thr).all() and (x32[right, f] > thr).all()
        checked += 1
    assert checked >= 5


def test_trees_pick_sklearns_dims_including_ties() -> None:
    """Fed sklearn's gradients, every tree splits on sklearn's dims at sklearn's thresholds: the dim order
    follows sklearn's splitter stream (random_state 0), so exact ties go the same way, and near-ties are
    decided in sklearn's arithmetic (``dci_sklearn``)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    x = np.hstack([y[:, None] / 3 + 0.3 * rng.normal(size=(500, 1)), rng.normal(size=(500, 3))])
    model = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(x, y)
    prepared, seeds = dci_trees.prepare(x), dci_trees.tree_seeds(0, 60)
    raw, same = model._raw_predict_init(x), 0
    for r, stage in enumerate(model.staged_decision_function(x)):
        neg = np.empty_like(raw)
        dci_sklearn.negative_gradients(np.ascontiguousarray(raw), y.astype(np.int64), neg)
        for k in range(3):
            ours = dci_trees.grow_tree(prepared, neg[:, k], int(seeds[3 * r + k]))
            t = model.estimators_[r, k].tree_
            theirs = {}

            def walk(i: int, h: int, t=t, theirs=theirs) -> None:
                if t.children_left[i] != -1:
                    theirs[h] = (int(t.feature[i]), float(t.threshold[i]))
                    walk(t.children_left[i], 2 * h + 1)
                    walk(t.children_right[i], 2 * h + 2)

            walk(0, 0)
            mine = {h: (int(ours["feature"][h]), float(ours["threshold"][h])) for h in range(7) if ours["is_split"][h]}
            same += mine == theirs
        raw = np.asarray(stage)
    assert same == 60


def test_exact_fits_run_longest_first(monkeypatch) -> None:
    """The factor with the most trees per round is submitted first; results come back in factor order."""
    started = []

    def fit(k: int) -> int:
        started.append(k)
        return 10 * k

    assert _run_longest_first(fit, [(0,), (1,), (2,), (3,)], [4, 1, 15, 10], jobs=2) == [0, 10, 20, 30]
    assert started[:2] == [2, 3] or sorted(started[:2]) == [2, 3]
    assert _run_longest_first(fit, [(0,), (1,)], [1, 2], jobs=1) == [0, 10]
    monkeypatch.setattr(dci_module, "thread_count", lambda: 1)
    z, y, zt, yt = _small()
    assert dci(z, y, zt, yt, mode="fast")["importance"].shape == (4, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_exact_reference(fast, name: str) -> None:
    """Recompute the stored exact values (about 80 s for all cases) and compare fast with them live."""
    exact = dci(*draw(name))
    assert (exact["disentanglement"], exact["completeness"]) == pytest.approx(EXACT[name], abs=1e-4)
    assert fast[name]["disentanglement"] == pytest.approx(exact["disentanglement"], abs=TOL)
    assert fast[name]["completeness"] == pytest.approx(exact["completeness"], abs=TOL)


def _pinned_case(kind: str) -> tuple[np.ndarray, ...]:
    """2,000 / 1,000 rows of 64-d codes over Shapes3D's factor sizes: "noise" (N(0, 1), independent of
    the factors) or "disentangled" (dims 0-5 = factor / size + N(0, 0.05^2), the rest N(0, 1))."""
    rng = np.random.default_rng(15)
    y = np.stack([rng.integers(0, n, 3000) for n in SIZES], axis=1)
    z = rng.normal(size=(3000, 64))
    if kind == "disentangled":
        z[:, : len(SIZES)] = y / np.array(SIZES) + 0.05 * rng.normal(size=y.shape)
    return z[:2000], y[:2000], z[2000:], y[2000:]


# Fast-mode results, pinned so that a change of the trees fails here. Per case: D, C, informativeness
# (train, test), then importance.T @ w for w = default_rng(0).normal(size=64) (a fingerprint of the
# whole [64, 6] matrix) and the dim of largest importance per factor. Mode "exact" (sklearn 1.9.1) gives
# the same values: D and C within 3e-16, equal informativeness, importances within 6e-16 (issue 15).
PINNED = {
    "noise": (
        [0.007823850368331713, 0.004364171632699476, 0.9288333333333334, 0.12433333333333334],
        [0.021721760836135938, 0.08530930763869707, 0.026672063750432008, 0.0922754563150683, 0.09934885873442427,
         0.06580731789016081],
        [34, 55, 0, 56, 41, 29],
    ),
    "disentangled": (
        [0.7965353876504682, 0.7029654784815931, 0.9940833333333332, 0.7174999999999999],
        [0.09474667134525996, -0.07434740034367897, 0.5124863413019747, 0.10283160113609001, -0.5320879631925423,
         0.2550070457745482],
        [0, 1, 2, 3, 4, 5],
    ),
}


@pytest.mark.parametrize("kind", list(PINNED))
def test_fast_results_are_pinned(kind: str) -> None:
    out = dci(*_pinned_case(kind), mode="fast", n_jobs=1)
    imp = out["importance"]
    got = [out[k] for k in ("disentanglement", "completeness", "informativeness_train", "informativeness_test")]
    fingerprint = imp.T @ np.random.default_rng(0).normal(size=imp.shape[0])
    scalars, fp, top = PINNED[kind]
    np.testing.assert_allclose(got, scalars, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fingerprint, fp, rtol=0, atol=1e-12)
    assert imp.argmax(axis=0).tolist() == top
