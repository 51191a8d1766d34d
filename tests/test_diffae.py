"""Diff-AE (``diffae``): the eps-MSE objective, joint encoder training, z conditioning, DDIM round trip, the
Gaussian z prior, presets and an end-to-end CLI smoke run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchbench.config import select_preset
from benchbench.datasets.base import DataSpec
from benchbench.errors import ConfigError
from benchbench.methods.diffae import PRESETS, DiffAE, DiffAEConfig
from benchbench.nets.unet import ResBlock
from benchbench.registry import methods

SMOKE: DiffAEConfig = PRESETS["smoke"].model
SPEC = DataSpec(name="x", channels=3, resolution=16, source="synthetic", factor_names=("a",), factor_sizes=(2,))


def make(scale: float = 0.0, cfg: DiffAEConfig = SMOKE) -> DiffAE:
    """The smoke-sized model; ``scale`` > 0 fills the zero-initialised layers (ResBlock out convs, the output head)
    with N(0, scale^2) weights so that eps_theta, and its dependence on z, are non-zero."""
    torch.manual_seed(0)
    model = DiffAE(cfg, SPEC)
    if scale:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.unet.parameters():
                if p.dim() > 1 and not p.any():
                    p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8


# Objective and training.


def test_loss_is_the_plain_eps_mse(x: torch.Tensor) -> None:
    model = make(0.05)
    torch.manual_seed(3)
    terms = model.loss(x)
    torch.manual_seed(3)  # same draws, same order: t, then eps
    t = torch.randint(0, 1000, (4,))
    eps = torch.randn_like(x)
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t].float().view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x + (1 - ab).sqrt() * eps  # Ho et al. 2020, Eq. 4
    direct = (model.unet(x_t, t, model.encoder(x)) - eps).square().mean()
    assert terms["loss"].item() == pytest.approx(direct.item(), rel=1e-5)
    assert set(terms) == {"loss", "z_std"}


def test_joint_training_reaches_the_encoder_from_a_zero_initialised_unet(x: torch.Tensor) -> None:
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    enc_norms = []
    for _ in range(3):
        opt.zero_grad()
        model.loss(x)["loss"].backward()
        enc_norms.append(sum(float(p.grad.norm()) for p in model.encoder.parameters() if p.grad is not None))
        opt.step()
    # Zero-init head and out convs (ADM): the code path opens on the third backward pass (nets/unet.py doc).
    assert enc_norms[0] == 0.0 and enc_norms[2] > 0.0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_gradients_reach_every_part(x: torch.Tensor) -> None:
    model = make(0.05)
    model.loss(x)["loss"].backward()
    for part in (model.encoder, model.unet):
        assert sum(float(p.grad.norm()) for p in part.parameters() if p.grad is not None) > 0
    blocks = [b for b in model.unet.modules() if isinstance(b, ResBlock)]
    assert blocks and all(float(b.cond_proj.weight.grad.norm()) > 0 for b in blocks)


def test_z_conditioning_changes_eps(x: torch.Tensor) -> None:
    model = make(0.05).eval()
    t = torch.full((4,), 300)
    z = model.encode(x)
    with torch.no_grad():
        same = model.unet(x, t, z.clone())
        other = model.unet(x, t, z + torch.randn_like(z))
    assert torch.equal(model.unet(x, t, z), same)
    assert (other - same).abs().max() > 1e-3


# Inference.


def test_shapes_ranges_and_traversal_consistency(x: torch.Tensor) -> None:
    model = make(0.002, SMOKE).eval()
    with torch.no_grad():
        raw = model.encoder(x)
    model._update_latent_stats(raw)
    z = model.encode(x)
    assert z.shape == (4, SMOKE.z_dim) and torch.equal(z, raw)
    # The factor metrics see codes z-normalised with dataset statistics (the evaluator fits the transform).
    transform = DiffAE.code_postprocess(raw.double().numpy())
    normed = transform(raw.double().numpy())
    assert abs(normed.mean(0)).max() < 1e-9 and abs(normed.std(0) - 1).max() < 1e-9
    rec = model.reconstruct(x)
    assert rec.shape == x.shape and rec.abs().max() <= 1
    values = torch.linspace(-2, 2, 3)
    frames = model.traverse(x[:2], 1, values)
    assert frames.shape == (3, 2, 3, 16, 16) and frames.abs().max() <= 1
    # Setting a dimension to the image's own value (in encode's units) is plain reconstruction.
    own = model.traverse(x[:1], 1, z[0, 1:2])
    assert torch.allclose(own[0], rec[:1], atol=1e-5)
    samples = model.sample(5, torch.Generator().manual_seed(0))
    assert samples.shape == (5, 3, 16, 16) and samples.abs().max() <= 1


def test_inversion_ends_at_alpha_bar_zero_and_reconstruct_decodes_it(x: torch.Tensor) -> None:
    """The official inversion (``ddim_reverse_sample_loop``) ends at ab = 0, so x_T is the last predicted noise: a zero
    predictor maps every image to x_T = 0 (the old extra step from ab = 1 and the stop at t = 990 kept x instead).
    The round trip of a well-posed predictor is covered by tests/test_ddim.py with the Gaussian oracle."""
    model = make()
    z = model.encoder(x)
    assert torch.equal(model.stochastic_code(x, z), torch.zeros_like(x))
    model = make(0.002).eval()
    z = model.encoder(x[:2])
    torch.testing.assert_close(model.reconstruct(x[:2]), model.decode(model.stochastic_code(x[:2], z), z))


def test_sample_is_a_function_of_the_generator() -> None:
    model = make(0.002).eval()
    a = model.sample(3, torch.Generator().manual_seed(7))
    b = model.sample(3, torch.Generator().manual_seed(7))
    c = model.sample(3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# The Gaussian z prior.


def test_running_code_statistics_pool_batches_exactly() -> None:
    model = make(cfg=replace(SMOKE, stats_momentum=0.01))
    g = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(64, 8, generator=g) + 3, 2 * torch.randn(64, 8, generator=g)
    model._update_latent_stats(z1)  # the first batch replaces the N(0, I) start
    assert torch.allclose(model.z_mean, z1.mean(0), atol=1e-5)
    model._update_latent_stats(z2)  # weight 1/2: the pooled statistics of both batches
    both = torch.cat([z1, z2])
    assert torch.allclose(model.z_mean, both.mean(0), atol=1e-5)
    assert torch.allclose(model.z_cov, torch.cov(both.T, correction=0), atol=1e-4)
    mu, lower = model.latent_prior()
    assert torch.allclose(lower @ lower.T, model.z_cov.double(), atol=1e-4)


def test_code_statistics_are_trained_saved_and_restored(x: torch.Tensor) -> None:
    model = make(0.05)
    model.loss(x)
    assert int(model.z_batches) == 1
    with torch.no_grad():
        z = model.encoder(x)
    assert torch.allclose(model.z_mean, z.mean(0), atol=1e-5)
    model.eval().loss(x)  # outside training the statistics stay put
    assert int(model.z_batches) == 1
    state = model.state_dict()
    assert {"z_mean", "z_cov", "z_batches"} <= set(state)
    fresh = make()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.z_cov, model.z_cov) and int(fresh.z_batches) == 1


# Configuration.


@pytest.mark.parametrize(
    "change, match",
    [
        ({"z_dim": 16}, "model.encoder.out_dim"),
        ({"generate_steps": 0}, "generate_steps"),
        ({"sample_steps": 0}, "sample_steps"),
        ({"unet": replace(SMOKE.unet, cond_mode="scale_shift")}, "scale"),
    ],
)
def test_inconsistent_configs_fail_at_build_time(change: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DiffAE(replace(SMOKE, **change), SPEC)


def test_resolution_mismatch_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="data.resolution=16"):
        DiffAE(SMOKE, replace(SPEC, resolution=32))


def test_presets() -> None:
    entry = methods.get("diffae")
    assert entry.obj is DiffAE and entry.presets is PRESETS
    for family in ("shapes3d", "mpi3d", "celeba"):
        paper = select_preset(PRESETS, "paper", family, "diffae")
        m, t = paper.model, paper.train
        assert (m.z_dim, m.unet.base_channels, m.unet.channel_mult, m.unet.num_res_blocks) == (512, 64, (1, 2, 4, 8), 2)
        assert (m.unet.attention_resolutions, m.unet.embed_dim, m.unet.dropout, m.unet.resblock_updown) == (
            (16,), 512, 0.1, True)  # fmt: skip
        enc = m.encoder
        assert (enc.channel_mult, enc.out_dim, enc.attention_resolutions) == ((1, 2, 4, 8, 8), 512, (16,))
        assert (m.num_steps, m.beta_start, m.beta_end, m.unet.cond_mode) == (1000, 1e-4, 0.02, "scale")
        assert (t.lr, t.batch_size, t.grad_clip, t.ema_decay, t.weight_decay) == (1e-4, 128, 1.0, 0.9999, 0.0)
        assert t.steps * t.batch_size == pytest.approx(72e6, rel=1e-3)
        assert paper.data == ((("split", "all"),) if family == "celeba" else ())  # CelebA: Diff-AE's all-image LMDB
    quick = PRESETS["quick"]
    assert dict(quick.data)["resolution"] == quick.model.unet.resolution == quick.model.encoder.resolution == 32
    assert dict(PRESETS["smoke"].data)["resolution"] == 16


# End to end.


def test_cli_smoke_run_writes_results_and_figures(tmp_path: Path) -> None:
    args = ["run", "--method", "diffae", "--dataset", "shapes3d-synth", "--preset", "smoke", "--seeds", "1",
            "--no-progress", "--metrics", "mig", "--out", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as the one_thread fixture, for the child process
    proc = subprocess.run([sys.executable, "-m", "benchbench", *args], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    (result,) = tmp_path.glob("runs/shapes3d-synth/diffae/smoke-*/seed0/result.json")
    record = json.loads(result.read_text())
    assert record["status"] == "complete" and 0 <= record["metrics"]["mig"]["value"] <= 1
    assert set(record["figures"]) == {f"{n}.{e}" for n in ("reconstructions", "traversals", "samples")
                                      for e in ("png", "pdf")}
    assert (result.parent / "reconstructions.png").exists() and (result.parent / "traversals.png").exists()
