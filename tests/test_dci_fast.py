"""DCI mode "fast" (LightGBM) against mode "exact" (sklearn GBT): the sanity cases of metrics.md §3."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from benchbench.errors import ConfigError
from benchbench.metrics.dci import _tied_dims, dci
from benchbench.metrics.settings import eval_preset
from benchbench.metrics.utils import generate_batch_factor_code
from benchbench.registry import metrics

SIZES = (10, 10, 10, 8, 4, 15)  # Shapes3D's factor sizes
NUM_TRAIN, NUM_TEST = 2000, 1000
TOL = 0.02  # metrics.md §3: fast D and C within 0.02 of exact

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
    # The copy of dim 0 shares factor 0's importance equally, as sklearn's random tie-breaking does on average.
    imp = fast["duplicated"]["importance"]
    assert imp[0, 0] == imp[6, 0] == pytest.approx(0.5, abs=1e-3)
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


def test_tied_dims_groups_copies_and_monotone_transforms() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    codes = np.stack([a, b, 3 * a + 1, -np.exp(a), b.round(1), np.zeros(50)], axis=1)
    assert sorted(g.tolist() for g in _tied_dims(codes)) == [[0, 2, 3]]


def test_registered_wrapper_records_fast_mode() -> None:
    entry = metrics.get("dci")
    settings = dataclasses.replace(eval_preset("smoke").dci, mode="fast")
    result = entry.obj(TableSource(ideal), settings, 0)
    assert result.extras["mode"] == "fast" and "lightgbm_version" in result.extras
    assert 0.9 <= result.value <= 1.0


def test_unknown_mode_is_a_config_error() -> None:
    z, y, zt, yt = _small()
    with pytest.raises(ConfigError, match="unknown DCI mode"):
        dci(z, y, zt, yt, mode="approximate")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_exact_reference(fast, name: str) -> None:
    """Recompute the stored exact values (about 80 s for all cases) and compare fast with them live."""
    exact = dci(*draw(name))
    assert (exact["disentanglement"], exact["completeness"]) == pytest.approx(EXACT[name], abs=1e-4)
    assert fast[name]["disentanglement"] == pytest.approx(exact["disentanglement"], abs=TOL)
    assert fast[name]["completeness"] == pytest.approx(exact["completeness"], abs=TOL)
