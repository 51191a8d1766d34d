"""TAD protocols (metrics.md §8, datasets.md §4): InfoDiffusion's 5-fold protocol pinned against the official
``TADMetric``, DisDiff's raw-code grid protocol, the evaluation rows each protocol picks, and the CLI path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from benchbench.cli import cli
from benchbench.errors import ConfigError
from benchbench.metrics.settings import TADSettings
from benchbench.metrics.tad import tad, tad_from_arrays
from benchbench.metrics.tad_protocols import evaluation_rows, kfold_tad, resolve_settings

# Official per-fold values: isjakewong/InfoDiffusion eval_disentanglement.py (branch main, commit 75c7b31):
# KFold(n_splits=5, shuffle=True, random_state=0), StandardScaler fit on each training fold,
# TADMetric(y_dim, names).evaluate(tr_a, tr_y) on it, run outside the repo on synthetic_case() below
# (np.int aliased to int for NumPy >= 1.24; nothing else changed). The official code works in float32 torch.
OFFICIAL_TAD = [0.7960805892944336, 0.7656128406524658, 0.7715907692909241, 0.7986440658569336, 0.7823184132575989]
OFFICIAL_ATTRS = [3, 3, 3, 3, 3]
OFFICIAL_MEAN, OFFICIAL_STD = 0.7828493356704712, 0.013028227278963533


def synthetic_case() -> tuple[np.ndarray, np.ndarray]:
    """2,000 float32 codes [N, 6] with per-dim scales and offsets, and 6 attributes: two captured by one dim each,
    one entangled, one redundant copy of the first (filtered with it), one random, one rare."""
    rng = np.random.default_rng(11)
    n, d = 2000, 6
    z = rng.standard_normal((n, d))
    noise = rng.standard_normal((n, 6))
    a0 = z[:, 0] + 0.5 * noise[:, 0] > 0
    a1 = z[:, 1] + 0.8 * noise[:, 1] > 0.3
    a2 = z[:, 0] + z[:, 1] + 0.3 * noise[:, 2] > 0
    a3 = np.where(rng.random(n) < 0.05, ~a0, a0)
    a4 = rng.random(n) < 0.4
    a5 = z[:, 2] + 0.3 * noise[:, 5] > 1.0
    attrs = np.stack([a0, a1, a2, a3, a4, a5], 1).astype(np.int64)
    scales = np.array([3.0, 0.2, 1.0, 5.0, 0.05, 1.5])
    return (z * scales + np.arange(d)).astype(np.float32), attrs


def test_infodiffusion_folds_match_official_tadmetric() -> None:
    codes, attrs = synthetic_case()
    settings = resolve_settings(TADSettings(protocol="infodiffusion"))
    out = kfold_tad(codes, attrs, settings, [f"attr{i}" for i in range(6)])
    assert [f["tad"] for f in out["folds"]] == pytest.approx(OFFICIAL_TAD, abs=1e-6)  # float32 in the official
    assert [f["attrs"] for f in out["folds"]] == OFFICIAL_ATTRS
    assert out["tad"] == pytest.approx(OFFICIAL_MEAN, abs=1e-6)
    assert out["tad_std"] == pytest.approx(OFFICIAL_STD, abs=1e-6)
    assert [f["rows"] for f in out["folds"]] == [1600] * 5
    assert out["folds"][0]["kept"] == ["attr1", "attr2", "attr5"]  # attr0/attr3 redundant, attr4 random


def test_infodiffusion_protocol_fixes_exact_auroc_and_takes_first_rows() -> None:
    codes, attrs = synthetic_case()
    settings = TADSettings(protocol="infodiffusion", variant="nashae", num_images=1000)
    res = tad_from_arrays(codes, attrs, settings, 0)
    assert res.extras["variant"] == "exact" and res.extras["rows"] == 1000
    direct = kfold_tad(codes[:1000], attrs[:1000], resolve_settings(settings), [f"attr{i}" for i in range(6)])
    assert res.value == pytest.approx(direct["tad"])
    assert len(res.extras["folds"]) == 5


def test_disdiff_protocol_is_grid_auroc_on_raw_codes() -> None:
    codes, attrs = synthetic_case()
    res = tad_from_arrays(codes, attrs, TADSettings(protocol="disdiff"), 0)
    assert res.extras["variant"] == "disdiff" and res.extras["rows"] == len(codes)
    assert res.value == pytest.approx(tad(codes, attrs, variant="disdiff")["tad"])
    assert "tad_std" not in res.extras


def test_benchbench_protocol_is_unchanged() -> None:
    codes, attrs = synthetic_case()
    res = tad_from_arrays(codes, attrs, TADSettings(), 0)
    assert res.value == pytest.approx(tad(codes, attrs)["tad"]) and res.extras["protocol"] == "benchbench"


def test_evaluation_rows_per_protocol() -> None:
    splits = {"train": np.arange(0, 50), "test": np.arange(80, 100)}
    rows = evaluation_rows(TADSettings(num_images=10), splits.__getitem__, 100)
    assert rows.tolist() == list(range(80, 90))
    rows = evaluation_rows(TADSettings(protocol="infodiffusion", num_images=10), splits.__getitem__, 100)
    assert rows.tolist() == list(range(10))
    drawn = evaluation_rows(TADSettings(protocol="disdiff", num_images=10), splits.__getitem__, 100)
    again = evaluation_rows(TADSettings(protocol="disdiff", num_images=10), splits.__getitem__, 100)
    assert drawn.tolist() == again.tolist() == sorted(drawn.tolist()) and len(set(drawn.tolist())) == 10


def test_unknown_protocol_is_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown protocol 'infodifusion'; did you mean 'infodiffusion'"):
        resolve_settings(TADSettings(protocol="infodifusion"))


def test_score_cli_prints_folds(tmp_path) -> None:
    codes, attrs = synthetic_case()
    np.save(tmp_path / "c.npy", codes)
    np.save(tmp_path / "a.npy", attrs)
    args = ["score", "--codes", str(tmp_path / "c.npy"), "--attributes", str(tmp_path / "a.npy"), "--metrics", "tad",
            "--set", "tad.protocol=infodiffusion"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    tad_out = json.loads(result.output)["tad"]
    assert [f["tad"] for f in tad_out["extras"]["folds"]] == pytest.approx(OFFICIAL_TAD, abs=1e-6)
    assert tad_out["value"] == pytest.approx(OFFICIAL_MEAN, abs=1e-6)
    assert tad_out["settings"]["protocol"] == "infodiffusion" and tad_out["settings"]["variant"] == "exact"
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0 and "fold 4" in text.output


def test_evaluator_scores_the_protocol_rows() -> None:
    """The evaluator takes the rows from the protocol: infodiffusion = first train-split images, 5 folds."""
    import torch

    from benchbench.datasets.base import DataConfig, to_model_input
    from benchbench.datasets.celeba_synth import CelebASynth
    from benchbench.evaluate import evaluate
    from benchbench.metrics.settings import EvalConfig

    class Pixels(torch.nn.Module):
        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, ::7][:, :6]

    data = CelebASynth(DataConfig(resolution=8, size=600))
    cfg = EvalConfig(tad=TADSettings(protocol="infodiffusion", num_images=100))
    out = evaluate(Pixels(), data, cfg, ["tad"], torch.device("cpu"), log=lambda s: None)["tad"]
    assert out["settings"]["protocol"] == "infodiffusion" and out["extras"]["rows"] == 100
    assert [f["rows"] for f in out["extras"]["folds"]] == [80] * 5
    idx = data.split("train")[:100]
    codes = Pixels().encode(to_model_input(data.images(idx))).numpy()
    direct = kfold_tad(codes.astype(np.float64), data.attributes(idx), resolve_settings(cfg.tad),
                       list(data.spec.attr_names))
    assert out["value"] == pytest.approx(direct["tad"], abs=1e-6)


# Official DisDiff value: ThomasMrY/DisDiff (commit c3ba0c7) ae_utils_exp.aurocs (stepsize 0.1, 0.2 range rule;
# ``.cuda()`` removed) per attribute on the raw float32 codes of case40() below, then the TAD block of
# eval_celeba_func.py's main (aurs_diffs, the label mutual information, filt = AUROC >= 0.75 and entropy-reduction
# <= 0.2), run outside the repo. The reference computes in float32 torch.
OFFICIAL_DISDIFF_TAD = 6.733569622039795
OFFICIAL_DISDIFF_KEPT = [4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 25, 26, 28, 29, 30, 31, 32, 33,
                         34, 36, 37, 38, 39]


def case40() -> tuple[np.ndarray, np.ndarray]:
    """1,000 float32 codes [N, 8] (dim 3 has range < 0.2: AUROC 0.5 under the grid rule) and 40 attributes (DisDiff's
    code hard-codes 40), attribute a driven by dim a % 8 with growing noise and shifted thresholds."""
    rng = np.random.default_rng(5)
    n, d = 1000, 8
    z = rng.standard_normal((n, d))
    scales = np.array([2.0, 0.5, 1.0, 0.02, 3.0, 1.0, 0.3, 1.5])
    cols = [z[:, a % d] + (0.3 + 0.05 * a) * rng.standard_normal(n) > 0.1 * (a % 5) for a in range(40)]
    return (z * scales).astype(np.float32), np.stack(cols, 1).astype(np.int64)


def test_disdiff_protocol_matches_official_disdiff_tad() -> None:
    codes, attrs = case40()
    res = tad_from_arrays(codes, attrs, TADSettings(protocol="disdiff"), 0)
    assert res.value == pytest.approx(OFFICIAL_DISDIFF_TAD, abs=1e-5)  # float32 sums in the official
    assert [a["index"] for a in res.extras["attributes"] if a["kept"]] == OFFICIAL_DISDIFF_KEPT
    assert all(a["best_dim"] != 3 for a in res.extras["attributes"])  # the narrow dim never wins
