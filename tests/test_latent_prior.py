"""MLPSkipNet against Diff-AE's official class, and the latent stage learning a non-Gaussian code distribution."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from benchbench import stages
from benchbench.config import TrainConfig
from benchbench.datasets.base import DataConfig
from benchbench.errors import BenchbenchError
from benchbench.methods.latent_prior import (
    DIFFAE_LATENT,
    INFODIFFUSION_LATENT,
    PDAE_LATENT,
    CodeData,
    LatentConfig,
    LatentPrior,
    load_prior,
)
from benchbench.nets.mlp_skip import MLPSkipNet


def test_mlp_skip_net_matches_diffae_official() -> None:
    """Pinned against phizaz/diffae ``model/latentnet.py`` (commit 00c57d3f626f28bf9ed8aff58d90baab25de3af4),
    ``MLPSkipNetConfig`` of ``latent_mlp_2048_norm_10layers`` with num_channels 512 (CelebA-64), built outside the
    repo: 54,109,696 parameters, the same state-dict keys; and a tiny config (4 channels, width 8, 3 layers, time
    embedding 8) built after ``torch.manual_seed(0)`` gives the official outputs below."""
    net = MLPSkipNet(512)
    assert sum(p.numel() for p in net.parameters()) == 54_109_696
    assert len(net.layers) == 10 and net.skip_layers == tuple(range(1, 10))
    assert list(net.state_dict())[:6] == ["time_embed.0.weight", "time_embed.0.bias", "time_embed.2.weight",
                                          "time_embed.2.bias", "layers.0.linear.weight", "layers.0.linear.bias"]
    # InfoDiffusion's LatentUNet (a_dim 32: width 128, dropout 0.1) has the same parameter count as the official
    # class with those settings: 217,696.
    assert sum(p.numel() for p in MLPSkipNet(32, hidden=128, dropout=0.1).parameters()) == 217_696
    torch.manual_seed(0)
    tiny = MLPSkipNet(4, hidden=8, num_layers=3, time_emb_dim=8).eval()
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    out = tiny(z, torch.tensor([0, 17, 999]))
    official = torch.tensor([
        [-0.07870344072580338, -0.07344333827495575, 0.34385305643081665, -0.17379292845726013],
        [0.9077146649360657, -0.16530519723892212, 0.48980090022087097, -0.6229175329208374],
        [0.939622700214386, -0.06414653360843658, 0.21852515637874603, -0.5170084834098816]])
    torch.testing.assert_close(out, official, rtol=1e-5, atol=1e-6)


def test_paper_latent_configs() -> None:
    for cfg in (DIFFAE_LATENT, PDAE_LATENT):
        assert cfg.loss == "l1" and cfg.znormalize and cfg.sampler == "ddim"
        betas = cfg.betas().betas
        assert betas.shape == (1000,) and torch.all(betas == 0.008)
        assert cfg.train.weight_decay == 0.01 and cfg.train.ema_decay == 0.9999
    assert (DIFFAE_LATENT.sample_steps, DIFFAE_LATENT.clip_noise, DIFFAE_LATENT.clip_x0) == (10, False, False)
    assert (PDAE_LATENT.sample_steps, PDAE_LATENT.clip_noise, PDAE_LATENT.clip_x0) == (100, True, True)
    assert (DIFFAE_LATENT.train.lr, DIFFAE_LATENT.train.batch_size) == (1e-4, 512)
    assert (PDAE_LATENT.train.lr, PDAE_LATENT.train.batch_size) == (1e-3, 128)
    s = INFODIFFUSION_LATENT.betas()
    assert float(s.betas[0]) == pytest.approx(1e-5) and float(s.betas[-1]) == pytest.approx(1e-2)
    assert INFODIFFUSION_LATENT.loss == "mse" and not INFODIFFUSION_LATENT.znormalize
    with pytest.raises(BenchbenchError, match="latent.loss"):
        LatentConfig(loss="l3")


def _mixture(n: int, seed: int) -> np.ndarray:
    """A two-mode 2-d mixture: modes at +-(3, 2), std 0.4 (far from any Gaussian)."""
    rng = np.random.default_rng(seed)
    s = rng.choice([-1.0, 1.0], n)
    return np.stack([3 * s + 0.4 * rng.standard_normal(n), 2 * s + 0.4 * rng.standard_normal(n)], 1).astype(np.float32)


def _energy(a: np.ndarray, b: np.ndarray) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (zero iff the distributions agree)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def test_latent_stage_learns_a_two_mode_mixture_far_better_than_the_gaussian(tmp_path: Path) -> None:
    codes = _mixture(4000, 0)
    cfg = replace(DIFFAE_LATENT, hidden=64, num_layers=4, train=TrainConfig(
        steps=800, batch_size=256, lr=1e-3, weight_decay=0.01, ema_decay=0.99, grad_clip=1.0, amp=False,
        log_every=400, ckpt_every=400))
    req = stages.StageRequest("latent", "mixture", DataConfig(), cfg, source="test/run0")
    built: list[int] = []

    def data_for(r: stages.StageRequest) -> CodeData:
        built.append(1)
        return CodeData(codes)

    art = stages.ensure(req, data_for, torch.device("cpu"), tmp_path, lambda s: None, progress=False)
    again = stages.ensure(req, data_for, torch.device("cpu"), tmp_path, lambda s: None, progress=False)
    assert built == [1] and again.sha256 == art.sha256  # built once even when asked twice
    prior = load_prior(cfg, art)
    torch.testing.assert_close(prior.mean, torch.tensor(codes.mean(0)), rtol=1e-4, atol=1e-4)
    latent = prior.sample(2000, torch.Generator().manual_seed(1)).numpy()
    gauss = np.random.default_rng(2).multivariate_normal(codes.mean(0), np.cov(codes.T), 2000)
    untrained = LatentPrior(cfg, CodeData(codes).spec).eval().sample(2000, torch.Generator().manual_seed(1)).numpy()
    ref = _mixture(2000, 5)
    d_latent, d_gauss, d_untrained = _energy(latent, ref), _energy(gauss, ref), _energy(untrained, ref)
    assert d_latent < 0.25 * d_gauss, (d_latent, d_gauss)
    assert d_latent < 0.25 * d_untrained, (d_latent, d_untrained)
    # The gap between the modes stays empty under the latent model (the Gaussian puts ~1/3 of its mass there).
    assert (np.abs(latent[:, 0]) < 1.5).mean() < 0.1 < (np.abs(gauss[:, 0]) < 1.5).mean()


def test_stage_identity_keys_on_the_source_run_only_when_given() -> None:
    base = stages.StageRequest("latent", "d", DataConfig(), DIFFAE_LATENT)
    assert "source" not in base.identity()
    a, b = replace(base, source="diffae/abc/seed0/weights-1"), replace(base, source="diffae/abc/seed1/weights-2")
    assert len({base.hash(), a.hash(), b.hash()}) == 3


def test_pdae_latent_sampling_clips_as_its_code() -> None:
    """PDAE's ``latent_diffusion_sample``: z_T clamped to [-1, 1], DDIM on its timestep map with z_0 clamped, so the
    normalised codes stay near [-1, 1] (its last step ends at ab_0, not 1, so slightly beyond); Diff-AE's latent DDIM
    does neither, and a net predicting eps = 5 everywhere sends its codes hundreds of stds away."""
    codes = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 4)).astype(np.float32)
    spec = CodeData(codes).spec
    small = {"hidden": 16, "num_layers": 2, "sample_steps": 5}
    torch.manual_seed(0)
    pdae = LatentPrior(replace(PDAE_LATENT, **small), spec).eval()
    torch.manual_seed(0)
    diffae = LatentPrior(replace(DIFFAE_LATENT, **small), spec).eval()
    with torch.no_grad():  # an untrained net predicts large z_0: only the clamp keeps them in range
        for layer in (pdae, diffae):
            layer.net.layers[-1].linear.bias.fill_(5.0)
    zp = (pdae.sample(256, torch.Generator().manual_seed(0)) - pdae.mean) / pdae.std
    zd = (diffae.sample(256, torch.Generator().manual_seed(0)) - diffae.mean) / diffae.std
    assert float(zp.abs().max()) < 2.0 < 50.0 < float(zd.abs().max())
