"""Fault cases (issue 14, point 4): the catalogue of bad config and eval values.

Each exits non-zero with one line naming the key, the value and what is allowed, and leaves the results folder
byte-identical (nothing is written before every value is checked).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from benchbench.config import _parse, resolve
from benchbench.errors import ConfigError

SMOKE = ["--dataset", "shapes3d-synth", "--preset", "smoke", "--no-progress"]

# --set value -> text the one-line error must contain (besides the key itself).
BAD_VALUES = {
    "train.steps=-1": ">= 0",
    "train.batch_size=0": ">= 1",
    "train.batch_size=-4": ">= 1",
    "train.log_every=0": ">= 1",
    "train.ckpt_every=-5": ">= 1",
    "train.warmup_steps=-1": ">= 0",
    "train.lr=0": "> 0",
    "train.lr=-0.001": "> 0",
    "train.lr=1e999": "finite",
    "train.eps=0": "> 0",
    "train.weight_decay=-1": ">= 0",
    "train.grad_clip=-1": ">= 0",
    "train.ema_decay=1.0": "[0, 1)",
    "train.ema_decay=-0.1": "[0, 1)",
    "train.betas=(0.9,1.5)": "[0, 1)",
    "model.latent_dim=0": ">= 1",
    "model.latent_dim=-3": ">= 1",
    "model.beta=-1": ">= 0",
    "data.resolution=0": ">= 1",
    "data.resolution=48": "cannot be built for data.resolution=48",
    "data.size=0": ">= 1",
    "data.crop=foo": "'d2c', 'center'",
    "data.variant=huge": "'toy', 'realistic', 'real'",
    "eval.dci.mode=bogus": "'exact', 'fast'",
    "eval.tad.variant=roc": "'exact', 'nashae', 'disdiff'",
    "eval.pmg.grid=sparse": "'default', 'full'",
    "eval.pmg.noise=pink": "'gaussian', 'uniform'",
    "eval.mig.num_bins=0": ">= 2",
    "eval.modularity.num_bins=1": ">= 2",
    "eval.mig.num_train=0": ">= 1",
    "eval.dci.num_test=-1": ">= 1",
    "eval.factorvae.batch_size=0": ">= 1",
    "eval.encode_batch=0": ">= 1",
    "eval.postprocess_fit=0": ">= 1",
    "eval.seed=-1": "[0, 4294967295]",
    "eval.tad.auroc_threshold=1.5": "[0, 1]",
    "eval.factorvae.prune_threshold=nan": "a number",  # a bare word: the type check names it
}

OTHER = {
    "seed": (["run", "--method", "betavae", *SMOKE, "--set", "seed=3"], ["--seeds"]),
    "misspelt key": (["run", "--method", "betavae", *SMOKE, "--set", "train.lrr=1"], ["train.lrr", "train.lr"]),
    "empty sweep methods": (["sweep", "--methods", ",", "--datasets", "shapes3d-synth", "--preset", "smoke",
                             "--launcher", "debug"], ["--methods lists no method"]),
    "empty sweep datasets": (["sweep", "--methods", "betavae", "--datasets", " ", "--preset", "smoke",
                              "--launcher", "debug"], ["--datasets lists no dataset"]),
    "sweep bad value": (["sweep", "--methods", "betavae", "--datasets", "shapes3d-synth", "--preset", "smoke",
                         "--launcher", "debug", "--set", "eval.dci.mode=bogus"], ["eval.dci.mode", "bogus"]),
    "stage resolution": (["run", "--method", "pdae", *SMOKE, "--set", "data.resolution=24"], ["resolution", "24"]),
    "stage train steps": (["run", "--method", "pdae", *SMOKE, "--set", "model.dpm.train.steps=-1"],
                          ["model.dpm.train.steps=-1", ">= 0"]),
}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder holding something (one stored record), so "byte-identical" means something."""
    from benchbench.store import atomic_write_json

    out = tmp_path_factory.mktemp("results")
    atomic_write_json(out / "runs" / "shapes3d-synth" / "betavae" / "smoke-00000000" / "seed0" / "config.json",
                      {"config": {}})
    return out


def _one_line_error(invoke, args: list[str], out: Path) -> str:
    before = snapshot(out)
    code, _, err = invoke([*args, "--out", str(out)])
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert snapshot(out) == before
    return lines[0]


@pytest.mark.parametrize("setting", list(BAD_VALUES))
def test_bad_value_is_one_line_naming_key_value_and_allowed(setting: str, results: Path, invoke) -> None:
    line = _one_line_error(invoke, ["run", "--method", "betavae", *SMOKE, "--set", setting], results)
    key, _, value = setting.partition("=")
    assert key in line and BAD_VALUES[setting] in line, line
    assert repr(_parse(value)) in line, line


@pytest.mark.parametrize("case", list(OTHER))
def test_other_bad_input_is_one_line(case: str, results: Path, invoke) -> None:
    args, expected = OTHER[case]
    line = _one_line_error(invoke, args, results)
    assert all(e in line for e in expected), line


def test_negative_steps_never_yield_a_complete_record(tmp_path: Path) -> None:
    from benchbench.validate import check_config

    cfg = resolve("betavae", "shapes3d-synth", "smoke", 0, ["train.steps=-1"])
    with pytest.raises(ConfigError, match="train.steps=-1"):
        check_config(cfg)
    assert not tmp_path.joinpath("runs").exists()


def test_every_preset_of_every_method_passes_the_table() -> None:
    from benchbench.registry import methods
    from benchbench.validate import check_config

    for m in methods:
        for preset in m.presets:
            for dataset in ("shapes3d-synth", "celeba-synth", "mpi3d-synth"):
                check_config(resolve(m.name, dataset, preset, 0))


def test_the_table_covers_nested_stage_configs() -> None:
    from benchbench.validate import RULES, problem

    assert problem("model.ldm.autoencoder.train.lr", -1.0)
    assert problem("model.dpm.train.ema_decay", 1.0)
    assert not problem("model.dpm.train.ema_decay", 0.9999)
    assert all(patterns for patterns, _ in RULES)


@pytest.mark.parametrize(("setting", "expected"), [("dci.mode=bogus", "'exact', 'fast'"),
                                                   ("mig.num_bins=0", ">= 2")])
def test_score_checks_its_settings_too(setting: str, expected: str, tmp_path: Path, invoke) -> None:
    import numpy as np

    np.save(tmp_path / "z.npy", np.random.default_rng(0).normal(size=(50, 3)))
    np.save(tmp_path / "f.npy", np.random.default_rng(1).integers(0, 3, size=(50, 2)))
    code, _, err = invoke(["score", "--codes", str(tmp_path / "z.npy"), "--factors", str(tmp_path / "f.npy"),
                           "--metrics", "mig,dci", "--set", setting])
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and setting.split("=")[0] in lines[0] and expected in lines[0], err
