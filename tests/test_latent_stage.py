"""The runner side of the latent stage: codes of a trained run -> latent DPM -> the method's code generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchbench import runner
from benchbench.config import resolve
from benchbench.errors import BenchbenchError, ConfigError
from benchbench.latent_stage import ensure_latent
from benchbench.registry import methods

TINY = ["model.code_prior=latent", "model.latent.hidden=16", "model.latent.num_layers=2", "model.latent.num_codes=24",
        "model.latent.encode_batch=8", "model.latent.train.steps=6", "model.latent.train.batch_size=8",
        "model.latent.train.log_every=3", "model.latent.train.ckpt_every=3", "model.latent.sample_steps=2"]


@pytest.mark.parametrize("method", ["diffae", "pdae", "disdiff", "infodiffusion"])
def test_sample_draws_codes_from_the_attached_latent_model(method: str, tmp_path: Path) -> None:
    cfg = resolve(method, "shapes3d-synth", "smoke", 0, TINY)
    data = runner.build_data(cfg, None)
    entry = methods.get(method)
    requests = entry.meta["stages"](cfg) if entry.meta.get("stages") else {}
    from benchbench import stages

    arts = {n: stages.ensure(r, lambda _: data, torch.device("cpu"), tmp_path, lambda s: None, False)
            for n, r in requests.items()}
    model = entry.obj(cfg.model, data.spec, stages=arts) if requests else entry.obj(cfg.model, data.spec)
    model.eval()
    with pytest.raises(BenchbenchError, match="code_prior=gaussian"):
        model.sample(2, torch.Generator().manual_seed(0))
    logs: list[str] = []
    art = ensure_latent(cfg, "cafe0001", model, data, torch.device("cpu"), tmp_path, logs.append, progress=False)
    assert art is not None and (art.path.parent / "codes.npy").exists()
    steps = "DDPM 1000 steps" if method == "infodiffusion" else "DDIM 2 steps"  # InfoDiffusion: ancestral, all T
    assert model.code_generator().startswith(f"latent {steps} (MLPSkipNet 2x16")
    x = model.sample(3, torch.Generator().manual_seed(0))
    assert x.shape == (3, data.spec.channels, data.spec.resolution, data.spec.resolution) and torch.isfinite(x).all()
    assert torch.equal(x, model.sample(3, torch.Generator().manual_seed(0)))  # seeded: same samples
    codes = model.sample_codes(4, torch.Generator().manual_seed(1))
    assert torch.equal(codes, model.__dict__["_code_model"].sample(4, torch.Generator().manual_seed(1)))
    again = ensure_latent(cfg, "cafe0001", model, data, torch.device("cpu"), tmp_path, logs.append, progress=False)
    assert again.sha256 == art.sha256 and any("reusing cached stage latent" in s for s in logs)


def test_gaussian_option_and_bad_values(tmp_path: Path) -> None:
    cfg = resolve("diffae", "shapes3d-synth", "smoke", 0, ["model.code_prior=gaussian"])
    data = runner.build_data(cfg, None)
    model = methods.get("diffae").obj(cfg.model, data.spec).eval()
    assert ensure_latent(cfg, "h", model, data, torch.device("cpu"), tmp_path, print) is None
    assert model.code_generator().startswith("gaussian: ")
    assert model.sample(2, torch.Generator().manual_seed(0)).shape[0] == 2
    with pytest.raises(ConfigError, match="model.code_prior"):
        runner.plan("diffae", "shapes3d-synth", "smoke", [0], ["model.code_prior=normal"], tmp_path)


def test_run_records_the_generator_and_the_latent_stage(tmp_path: Path) -> None:
    runner.run("infodiffusion", "shapes3d-synth", 1, "smoke", [*TINY, "eval.metrics=('mig',)"], tmp_path,
               device="cpu", progress=False, log=lambda s: None)
    (result,) = tmp_path.glob("runs/shapes3d-synth/infodiffusion/smoke-*/seed0/result.json")
    record = json.loads(result.read_text())
    assert record["generator"].startswith("latent DDPM 1000 steps") and record["stages"]["latent"]["kind"] == "latent"
    (stage,) = tmp_path.glob("stages/latent/shapes3d-synth/*/config.json")
    assert json.loads(stage.read_text())["source"].startswith("infodiffusion/")


def test_describe_lists_the_generator_and_the_fid_protocol(tmp_path: Path) -> None:
    from benchbench.describe import describe

    weights = tmp_path / "inception-2015-12-05.pt"
    weights.write_bytes(b"stand-in: describe only checks that the file exists")
    info = describe("diffae", "celeba", "paper", ("eval.fid.protocol=infodiffusion",
                                                  f"eval.fid.cleanfid_weights={weights}", "eval.metrics=('fid',)"))
    gen = info["protocol"]["method.generator"]
    assert gen.startswith("z_sem: latent DDIM 10 steps (MLPSkipNet 10x2048, const beta 0.008, l1)") and "K=10" in gen
    fid = info["protocol"]["metric.fid"]
    assert fid.startswith("protocol=infodiffusion: clean-fid") and "10000 samples" in fid
    assert "the whole training split" in fid
    assert not any("Gaussian" in d for d in info["deviations"])
    gauss = describe("pdae", "celeba", "paper", ("model.code_prior=gaussian",))
    assert gauss["protocol"]["method.generator"].startswith("z: gaussian: N(mean, cov)")
    assert any("model.code_prior=gaussian" in d for d in gauss["deviations"])
