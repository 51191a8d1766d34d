"""The ``random`` floor measures chance instead of a fallback (issue 17.3)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from benchbench.baselines.random_floor import RandomFloor, RandomFloorConfig
from benchbench.config import resolve
from benchbench.evaluate import EncoderSource, evaluate
from benchbench.metrics.settings import eval_preset
from benchbench.registry import methods
from benchbench.runner import build_data


@pytest.fixture(scope="module")
def data():
    return build_data(resolve("random", "shapes3d-synth", "smoke", 0), None)


def _floor(data, standardize: bool) -> RandomFloor:
    torch.manual_seed(0)
    return RandomFloor(RandomFloorConfig(standardize_codes=standardize), data.spec)


def test_raw_untrained_codes_fall_under_the_prune_threshold(data) -> None:
    """The premise: every raw code dimension of the untrained encoder has std < FactorVAE's 0.05."""
    source = EncoderSource(data, _floor(data, False).encode, torch.device("cpu"), 64)
    codes = source.represent(data.sample_factors(200, np.random.RandomState(0)))
    assert codes.shape == (200, 10) and codes.std(axis=0).max() < 0.05


@pytest.mark.parametrize("standardize", [True, False])
def test_factorvae_on_the_floor(data, standardize: bool) -> None:
    cfg = replace(eval_preset("smoke"), postprocess_fit=300)  # the standardisation's statistics: 300 images
    res = evaluate(_floor(data, standardize), data, cfg, ["factorvae"], torch.device("cpu"), log=lambda s: None)
    res = res["factorvae"]
    if standardize:  # every dimension is active and the score is a chance accuracy above the 0 fallback
        assert res["extras"]["num_active_dims"] == 10 and res["code_rule"] == "standardized"
        assert 0.0 < res["value"] < 0.9
    else:  # the degenerate fallback the report flags
        assert res["extras"]["num_active_dims"] == 0 and res["value"] == 0.0 and res["code_rule"] == "raw"


def test_floor_is_registered_as_a_reference_with_standardised_codes_by_default() -> None:
    entry = methods.get("random")
    assert entry.meta["reference"] is True and entry.config is RandomFloorConfig
    assert all(p.model.standardize_codes for p in (entry.presets["smoke"], entry.presets["quick"]))
    z = np.random.default_rng(0).normal(3.0, 0.01, (50, 4))
    out = RandomFloor(RandomFloorConfig(latent_dim=4), _spec()).code_postprocess(z)(z)
    assert np.allclose(out.mean(0), 0) and np.allclose(out.std(0), 1)


def _spec():
    from benchbench.datasets.base import DataSpec

    return DataSpec(name="x", channels=3, resolution=64, source="synthetic", factor_names=("a",), factor_sizes=(2,),
                    family="shapes3d")
