"""PDAE (methods.md §5) and its shared DPM stage: weighting, shift coefficient, frozen parts, samplers, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchbench import ddim
from benchbench.config import resolve
from benchbench.datasets.base import DataSpec
from benchbench.diffusion import Schedule
from benchbench.methods.dpm import DPM, ddpm_request
from benchbench.methods.pdae import PDAE, PRESETS, PDAEConfig, PDAEEncoder, loss_weights
from benchbench.registry import methods
from benchbench.stages import Artifact

SPEC = DataSpec("shapes3d-synth", 3, 16, "synthetic")
CFG: PDAEConfig = PRESETS["smoke"].model


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter (zero-initialised ones included) so the network computes something non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """A ``ddpm`` artifact of the smoke DPM with random (non-zero) weights, so eps_theta is not trivially 0."""
    dpm = DPM(CFG.dpm, SPEC)
    _randomise(dpm, 0)
    buf = io.BytesIO()
    torch.save(dpm.state_dict(), buf)
    path = tmp_path_factory.mktemp("stage") / "artifact.pt"
    path.write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    return Artifact("ddpm", path, sha, "test", sha)


@pytest.fixture
def model(artifact: Artifact) -> PDAE:
    torch.manual_seed(0)
    return PDAE(CFG, SPEC, {"dpm": artifact}).eval()


def _x(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_loss_weight_both_forms_and_hand_values() -> None:
    s = Schedule.linear(1000)
    lam = loss_weights(s, 0.1)
    assert torch.allclose(lam, s.snr**0.1 / (1 + s.snr), rtol=1e-12, atol=0)
    # t = 0: alpha_bar = 1 - 1e-4, SNR = 9999; t = 999: SNR = 4.03599e-5 (cumulative product of the linear betas).
    assert float(lam[0]) == pytest.approx(9999**0.1 / 10_000, rel=1e-9)
    assert float(lam[999]) == pytest.approx(0.36356118385849895, rel=1e-9)
    assert float(loss_weights(s, 0.0)[500]) == pytest.approx(1 / (1 + float(s.snr[500])), rel=1e-12)


def test_shift_coefficient_hand_values() -> None:
    coef = Schedule.linear(1000).pdae_shift_coef  # sqrt(alpha_t)(1 - ab_{t-1}) / sqrt(1 - ab_t)
    a0, a1 = 1 - 1e-4, 1 - (1e-4 + 0.0199 / 999)
    assert float(coef[0]) == 0.0  # ab_{-1} = 1
    assert float(coef[1]) == pytest.approx(math.sqrt(a1) * (1 - a0) / math.sqrt(1 - a0 * a1), rel=1e-12)
    assert float(coef[1]) == pytest.approx(0.006743005515863494, rel=1e-9)


def test_encoder_layout_follows_the_resolution() -> None:
    paper = PDAEEncoder(3, 64, (64, 128, 128, 128), 512, (16,), 4)
    convs = [m for m in paper.net if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 128, 128] and paper.net[-1].in_features == 2048
    assert paper(torch.zeros(2, 3, 64, 64)).shape == (2, 512)
    assert PDAEEncoder(3, 32, (8, 16), 5, ())(torch.zeros(1, 3, 32, 32)).shape == (1, 5)  # widths 8, 16, 16


def test_zero_g_leaves_eps_theta_and_a_nonzero_g_shifts_it(model: PDAE) -> None:
    x, t = _x(), torch.tensor([0, 3, 500, 999])
    z = model.encode(x)
    pair = model._pair(x, t, z)
    assert pair.eps.abs().max() > 0 and torch.equal(pair.eps_hat, pair.eps)  # G_psi's last conv is zero at init
    _randomise(model.shift, 2)
    with torch.no_grad():
        h, skips, emb = model.dpm.unet.encoder(x, t)
        g = model.shift(h, skips, emb, model.label_emb(z))
    coef = model.schedule.gather(model.schedule.pdae_shift_coef, t, g)
    shifted = model._pair(x, t, z)
    assert torch.allclose(shifted.eps_hat, pair.eps - coef * g, atol=1e-6) and torch.equal(shifted.eps, pair.eps)


def test_only_encoder_and_g_are_trained(model: PDAE) -> None:
    _randomise(model.shift, 3)  # so z reaches the output and E_phi gets a gradient on the first step
    model.train()
    assert not model.dpm.training and model.encoder.training and model.shift.training
    frozen = {id(p) for p in model.dpm.parameters()}
    params = model.trainable_parameters()
    assert params and not frozen & {id(p) for p in params}
    before = {k: v.clone() for k, v in model.dpm.state_dict().items()}
    enc_before = [p.clone() for p in model.encoder.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    terms = model.loss(_x(8))
    terms["loss"].backward()
    assert all(p.grad is None for p in model.dpm.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (*model.encoder.parameters(),
                                                                      *model.label_emb.parameters()))
    opt.step()
    assert all(torch.equal(v, model.dpm.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(a, b) for a, b in zip(enc_before, model.encoder.parameters()))
    assert int(model.code_moments.count) == 1 and {"loss", "mse", "mse_pretrained"} <= set(terms)


def test_reconstruct_at_init_is_the_dpm_round_trip(model: PDAE) -> None:
    x = _x(3)
    steps = CFG.sample_steps
    x_T = ddim.invert(model.dpm.eps, x, ddim.pdae_grid(model.schedule, steps, invert=True), clip=True)
    expected = ddim.sample(model.dpm.eps, x_T, ddim.pdae_grid(model.schedule, steps), clip=True).clamp(-1, 1)
    assert torch.allclose(model.reconstruct(x), expected, atol=1e-6)
    frames = model.traverse(x[:2], 1, torch.tensor([-1.0, 0.0, 2.0]))
    assert frames.shape == (3, 2, 3, 16, 16) and torch.allclose(frames[0], frames[2], atol=1e-6)  # G = 0: z unused
    samples = model.sample(2, torch.Generator().manual_seed(0))
    assert samples.shape == (2, 3, 16, 16)
    assert torch.equal(samples, model.sample(2, torch.Generator().manual_seed(0)))


def test_pmg_predictions_at_init(model: PDAE) -> None:
    predict, schedule = model.pmg_model()
    x0 = _x(4)
    t = torch.tensor([0, 10, 100, 999])
    x_t = schedule.q_sample(x0, t, torch.randn_like(x0))
    eps, eps_hat = predict(x_t, t, x0)
    assert eps.shape == eps_hat.shape == x0.shape and torch.equal(eps, eps_hat)
    assert schedule.num_steps == CFG.dpm.num_steps


def test_the_dpm_stage_is_shared() -> None:
    stages = methods.get("pdae").meta["stages"]
    base = resolve("pdae", "shapes3d-synth", "smoke", 0)
    other = resolve("pdae", "shapes3d-synth", "smoke", 3,
                    ["model.z_dim=4", "model.gamma=0.2", "model.sample_steps=2", "train.lr=1e-2"])
    assert stages(base)["dpm"].hash() == stages(other)["dpm"].hash()
    assert stages(base)["dpm"] == ddpm_request("shapes3d-synth", base.data, base.model.dpm, 0)
    changed = resolve("pdae", "shapes3d-synth", "smoke", 0, ["model.dpm.train.steps=11"])
    reseeded = resolve("pdae", "shapes3d-synth", "smoke", 0, ["model.dpm_seed=1"])
    assert len({stages(c)["dpm"].hash() for c in (base, changed)}) == 2
    assert stages(reseeded)["dpm"].dir(Path("r")) != stages(base)["dpm"].dir(Path("r"))


def test_cli_builds_the_stage_once_and_reuses_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchbench", "run", "--method", "pdae", "--dataset", "shapes3d-synth", "--preset",
         "smoke", "--seeds", "2", "--no-progress", "--metrics", "mig,pmg", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("building stage ddpm/") == 1 and proc.stderr.count("reusing cached stage ddpm/") == 1
    (stage,) = (out / "stages" / "ddpm" / "shapes3d-synth").iterdir()
    sha = json.loads((stage / "artifact.json").read_text())["sha256"]
    results = sorted(out.rglob("result.json"))
    assert len(results) == 2
    for path in results:
        record = json.loads(path.read_text())
        assert record["stages"]["dpm"]["sha256"] == sha
        assert {"mig", "pmg"} <= set(record["metrics"])
        assert (path.parent / "pmg.csv").exists() and (path.parent / "pmg.png").exists()
        assert (path.parent / "reconstructions.png").exists() and (path.parent / "traversals.png").exists()
