"""disentanglement_lib's VAE family: pinned loss values, the two-optimiser hook, presets and names.

Pinned values come from a numpy transcription of the TF functions in disentanglement_lib
``methods/unsupervised/vae.py`` (commit 86a644d4ed35c771560dc3360756363d35477357: compute_gaussian_kl,
total_correlation, compute_covariance_z_mean, regularize_diag_off_diag_dip, DIPVAE.regularizer, anneal and the
FactorVAE tc/discriminator terms), run on the tensors below.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbench.baselines.annealed_vae import AnnealedVAE, AnnealedVAEConfig
from benchbench.baselines.beta_tc_vae import BetaTCVAE, BetaTCVAEConfig
from benchbench.baselines.dip_vae import DIPVAE1, DIPVAE2, DIPVAEConfig
from benchbench.baselines.factor_vae import FactorVAE, FactorVAEConfig
from benchbench.baselines.vae_losses import (
    annealed_capacity,
    covariance_z_mean,
    dip_covariance,
    dip_penalty,
    discriminator_loss,
    factor_tc,
    kl_mean,
    shuffle_codes,
    total_correlation,
)
from benchbench.config import TrainConfig, select_preset
from benchbench.datasets.base import DataSpec, ImageData
from benchbench.errors import UnknownNameError
from benchbench.registry import methods
from benchbench.train import _extra_gradients, train

MU = torch.tensor([[0.5, -1.0, 0.2], [1.5, 0.3, -0.7], [-0.4, 0.8, 1.1], [0.0, -0.2, 0.6]], dtype=torch.float64)
LV = torch.tensor([[-0.3, 0.1, -1.2], [0.4, -0.5, 0.0], [-0.8, 0.2, 0.3], [0.1, -0.1, -0.6]], dtype=torch.float64)
Z = torch.tensor([[0.9, -0.6, 0.1], [1.2, 0.7, -1.0], [-0.1, 1.3, 0.8], [0.3, -0.4, 0.2]], dtype=torch.float64)
NEW = ("factor-vae", "betatcvae", "dipvae1", "dipvae2", "annealedvae")


def spec(channels: int = 3, resolution: int = 16) -> DataSpec:
    return DataSpec(name="x", channels=channels, resolution=resolution, source="synthetic", factor_names=("a",),
                    factor_sizes=(2,), family="shapes3d")


# Loss values against the reference formulas.


def test_kl_and_total_correlation_match_reference() -> None:
    assert kl_mean(MU, LV).item() == pytest.approx(0.9693686512603127, rel=1e-6)
    assert total_correlation(Z, MU, LV).item() == pytest.approx(-2.529713833474284, rel=1e-5)
    reg = BetaTCVAE(BetaTCVAEConfig(latent_dim=3, beta=6.0), spec()).regularizer(MU, LV, Z)
    assert reg["reg"].item() == pytest.approx(-11.679200516111107, rel=1e-5)


def test_total_correlation_by_hand() -> None:
    # One sample: log q(z) = log q(z|x_1) = sum_l log q(z_l|x_1) exactly, so the estimate is 0.
    assert total_correlation(Z[:1], MU[:1], LV[:1]).item() == pytest.approx(0.0, abs=1e-6)
    # Two samples with unit variances, 1-d codes: TC = 0 for any D = 1 (product = joint).
    assert total_correlation(Z[:2, :1], MU[:2, :1], LV[:2, :1]).item() == pytest.approx(0.0, abs=1e-6)


def test_dip_penalties_match_reference() -> None:
    cov = covariance_z_mean(MU)
    assert cov[0, 0].item() == pytest.approx(0.505)  # by hand: E[x^2] - E[x]^2 = 0.665 - 0.16
    assert cov[0, 1].item() == pytest.approx(-0.0825)
    kl = kl_mean(MU, LV).item()
    one = DIPVAE1(DIPVAEConfig(latent_dim=3, lambda_od=2.0, lambda_d_factor=10.0), spec()).regularizer(MU, LV, Z)
    two = DIPVAE2(DIPVAEConfig(latent_dim=3, lambda_od=2.0, lambda_d_factor=1.0), spec()).regularizer(MU, LV, Z)
    assert one["reg"].item() == pytest.approx(19.421988963760313, rel=1e-6)
    assert two["reg"].item() == pytest.approx(2.7477378884735058, rel=1e-6)
    assert one["dip"].item() == pytest.approx(19.421988963760313 - kl, rel=1e-6)


def test_dip_penalty_by_hand() -> None:
    assert dip_penalty(torch.eye(3), 5.0, 50.0).item() == 0.0
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert dip_penalty(cov, 3.0, 7.0).item() == pytest.approx(3.0 * 2 * 0.25 + 7.0 * 1.0)
    # DIP-VAE-II adds the mean encoder variance to the diagonal only.
    lv = torch.log(torch.tensor([[1.0, 4.0], [3.0, 2.0]]))
    mu = torch.zeros(2, 2)
    assert torch.allclose(dip_covariance(mu, lv, "ii"), torch.diag(torch.tensor([2.0, 3.0])))
    with pytest.raises(ValueError):
        dip_covariance(mu, lv, "iii")


def test_annealed_capacity_matches_reference() -> None:
    kl = torch.tensor(0.9693686512603127, dtype=torch.float64)
    for step, c, penalty in [(0, 0.0, 969.3686512603127), (50, 12.5, 11530.631348739687),
                             (99, 24.75, 23780.631348739687), (100, 25.0, 24030.631348739687),
                             (250, 25.0, 24030.631348739687)]:
        cap = annealed_capacity(25.0, step, 100)
        assert cap.item() == pytest.approx(c)
        assert (1000 * (kl - cap.double()).abs()).item() == pytest.approx(penalty, rel=1e-6)


def test_annealed_vae_counts_training_steps_only() -> None:
    torch.manual_seed(0)
    m = AnnealedVAE(AnnealedVAEConfig(latent_dim=3, c_max=10.0, iteration_threshold=4), spec())
    caps = [m.regularizer(MU.float(), LV.float(), Z.float())["capacity"].item() for _ in range(6)]
    assert caps == [0.0, 2.5, 5.0, 7.5, 10.0, 10.0]
    m.eval()
    m.regularizer(MU.float(), LV.float(), Z.float())
    assert int(m.num_steps) == 6


def test_factor_vae_terms_match_reference() -> None:
    lz = torch.tensor([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.4], [0.0, 0.9]])
    ls = torch.tensor([[0.1, 0.6], [-0.3, -0.9], [0.8, 0.2], [0.5, -0.4]])
    assert factor_tc(lz).item() == pytest.approx(-0.25)
    assert discriminator_loss(lz, ls).item() == pytest.approx(0.9208562410114624, rel=1e-6)
    zero = torch.zeros(5, 2)
    assert discriminator_loss(zero, zero).item() == pytest.approx(math.log(2))


def test_shuffle_codes_permutes_each_dimension() -> None:
    z = torch.arange(40.0).view(10, 4) * torch.tensor([1.0, 100.0, 1e4, 1e6])
    torch.manual_seed(3)
    s = shuffle_codes(z)
    for d in range(4):
        assert sorted(s[:, d].tolist()) == sorted(z[:, d].tolist())
    assert not torch.equal(s, z)
    # The columns move independently: the row pattern is broken.
    assert any(len({int(r[d] / [1, 100, 1e4, 1e6][d]) for d in range(4)}) > 1 for r in s)


# The second optimiser.


def test_each_objective_gets_only_its_own_gradient() -> None:
    torch.manual_seed(0)
    m = FactorVAE(FactorVAEConfig(latent_dim=3, gamma=10.0, discr_width=8, discr_depth=2), spec())
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    main = m.trainable_parameters()
    extra = m.extra_objectives()[0].params
    assert {id(p) for p in main}.isdisjoint({id(p) for p in extra})
    assert len(main) + len(extra) == len(list(m.parameters()))
    torch.manual_seed(1)
    terms = m.loss(x)
    want_main = torch.autograd.grad(terms["loss"], main, retain_graph=True)
    want_extra = torch.autograd.grad(terms["discriminator_loss"], extra, retain_graph=True)
    _extra_gradients(terms["loss"], main, [terms["discriminator_loss"]], [extra])
    assert all(torch.equal(p.grad, g) for p, g in zip(main, want_main))
    assert all(torch.equal(p.grad, g) for p, g in zip(extra, want_extra))
    # The VAE loss does depend on the discriminator (its TC term), but that gradient is not applied to it.
    leak = torch.autograd.grad(m.loss(x)["loss"], extra, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in leak)


class _Data(ImageData):
    """Random uint8 images [40, 16, 16, C]."""

    def __init__(self, channels: int) -> None:
        self.pixels = np.random.default_rng(0).integers(0, 256, size=(40, 16, 16, channels), dtype=np.uint8)
        self.spec = spec(channels)

    def __len__(self) -> int:
        return 40

    def images(self, indices: np.ndarray) -> np.ndarray:
        return self.pixels[indices]


@pytest.mark.parametrize("name", ["factor-vae", "annealedvae"])
def test_resume_is_exact_with_extra_state(tmp_path, name: str, one_thread: None) -> None:  # noqa: ANN001
    entry = methods.get(name)
    model_cfg = select_preset(entry.presets, "smoke", "shapes3d", name).model
    cfg = TrainConfig(steps=4, batch_size=4, lr=1e-3, log_every=2, ckpt_every=2, amp=False)
    data = _Data(1)

    def fresh():  # noqa: ANN202
        torch.manual_seed(0)
        return entry.obj(model_cfg, data.spec)

    full = train(fresh(), data, cfg, tmp_path / "a", 0, "h", torch.device("cpu"), progress=False, log=lambda s: None)
    train(fresh(), data, TrainConfig(**{**cfg.__dict__, "steps": 2}), tmp_path / "b", 0, "h", torch.device("cpu"),
          progress=False, log=lambda s: None)
    resumed = train(fresh(), data, cfg, tmp_path / "b", 0, "h", torch.device("cpu"), progress=False,
                    log=lambda s: None)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    if name == "factor-vae":
        state = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=False)
        assert "discriminator" in state["extra_optimizers"]
    else:
        assert int(full.num_steps) == 4


# Registry, presets, names.


@pytest.mark.parametrize("name", NEW)
def test_smoke_step_on_one_and_three_channels(name: str, one_thread: None) -> None:
    entry = methods.get(name)
    for channels in (1, 3):
        model_cfg = select_preset(entry.presets, "smoke", "dsprites", name).model
        torch.manual_seed(0)
        m = entry.obj(model_cfg, spec(channels, 64))
        x = torch.rand(4, channels, 64, 64) * 2 - 1
        terms = m.loss(x)
        assert torch.isfinite(terms["loss"]) and terms["loss"] > 0
        assert m.encode(x).shape == (4, model_cfg.latent_dim)
        assert m.sample(2, torch.Generator().manual_seed(0)).shape == (2, channels, 64, 64)
    paper = select_preset(entry.presets, "paper", "dsprites", name)
    assert paper.train.steps == 300_000 and paper.train.lr == 1e-4 and paper.train.batch_size == 64
    assert paper.model.latent_dim == 10


def test_method_and_metric_names_do_not_clash() -> None:
    from benchbench.registry import metrics

    assert "factorvae" in metrics and "factorvae" not in methods and "factor-vae" in methods
    with pytest.raises(UnknownNameError, match="'factorvae' is a metric, not a method.*factor-vae"):
        methods.get("factorvae")


def test_list_says_which_is_which(invoke) -> None:  # noqa: ANN001
    code, out, _ = invoke(["list"])
    assert code == 0
    assert "factor-vae" in out and "the FactorVAE method is factor-vae" in out
    for name in NEW:
        assert f"  {name} " in out


def test_paper_grids_match_the_study() -> None:
    from benchbench.baselines import annealed_vae, beta_tc_vae, dip_vae, factor_vae

    assert factor_vae.GRID["model.gamma"] == (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)
    assert beta_tc_vae.GRID["model.beta"] == (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    assert dip_vae.GRID["model.lambda_od"] == (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
    assert annealed_vae.GRID["model.c_max"] == (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)
    assert select_preset(methods.get("dipvae1").presets, "paper", "x", "dipvae1").model.lambda_d_factor == 10.0
    assert select_preset(methods.get("dipvae2").presets, "paper", "x", "dipvae2").model.lambda_d_factor == 1.0
    fv = select_preset(methods.get("factor-vae").presets, "paper", "x", "factor-vae").model
    assert (fv.discr_lr, fv.discr_betas, fv.discr_width, fv.discr_depth) == (1e-4, (0.5, 0.9), 1000, 6)
    an = select_preset(methods.get("annealedvae").presets, "paper", "x", "annealedvae").model
    assert (an.gamma, an.iteration_threshold) == (1000.0, 100_000)
