"""VAE baselines (betavae, infovae, random) and the disentanglement_lib conv encoder/decoder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchbench.baselines.beta_vae import BetaVAE, BetaVAEConfig
from benchbench.baselines.info_vae import InfoVAE, InfoVAEConfig, mmd
from benchbench.baselines.random_floor import RandomFloor
from benchbench.baselines.vae import bernoulli_nll, gaussian_kl
from benchbench.config import select_preset
from benchbench.datasets.base import DataSpec
from benchbench.nets.conv_vae import ConvDecoder, ConvEncoder, num_stages
from benchbench.registry import methods


def make_spec(resolution: int = 64) -> DataSpec:
    return DataSpec(
        name="x",
        channels=3,
        resolution=resolution,
        source="synthetic",
        factor_names=("a",),
        factor_sizes=(2,),
        family="shapes3d",
    )


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture(params=[BetaVAE, InfoVAE], ids=["betavae", "infovae"])
def model(request: pytest.FixtureRequest) -> BetaVAE | InfoVAE:
    torch.manual_seed(0)
    cfg = BetaVAEConfig(latent_dim=4) if request.param is BetaVAE else InfoVAEConfig(latent_dim=4)
    return request.param(cfg, make_spec())


# Architecture.


def test_encoder_reaches_64x4x4_and_matches_reference_parameter_count() -> None:
    enc = ConvEncoder(3, 64, 10)
    assert enc.features(torch.zeros(1, 3, 64, 64)).shape == (1, 64 * 4 * 4)
    h, sides = torch.zeros(1, 3, 64, 64), []
    for layer in enc.features:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv2d):
            sides.append(tuple(h.shape[1:]))
    assert sides == [(32, 32, 32), (32, 16, 16), (64, 8, 8), (64, 4, 4)]
    # conv 3->32 k4, 32->32 k4, 32->64 k2, 64->64 k2, FC 1024->256, two heads 256->10 (weights + biases).
    expected = (
        (3 * 32 * 16 + 32)
        + (32 * 32 * 16 + 32)
        + (32 * 64 * 4 + 64)
        + (64 * 64 * 4 + 64)
        + (1024 * 256 + 256)
        + 2 * (256 * 10 + 10)
    )
    assert sum(p.numel() for p in enc.parameters()) == expected == 310_228


def test_decoder_matches_reference_parameter_count() -> None:
    dec = ConvDecoder(10, 3, 64)
    assert dec(torch.zeros(2, 10)).shape == (2, 3, 64, 64)
    # FC 10->256, 256->1024, deconv 64->64, 64->32, 32->32, 32->3 (all k4).
    expected = (
        (10 * 256 + 256)
        + (256 * 1024 + 1024)
        + (64 * 64 * 16 + 64)
        + (64 * 32 * 16 + 32)
        + (32 * 32 * 16 + 32)
        + (32 * 3 * 16 + 3)
    )
    assert sum(p.numel() for p in dec.parameters()) == expected == 382_339


@pytest.mark.parametrize("resolution", [16, 32, 128])
def test_other_power_of_two_resolutions(resolution: int) -> None:
    enc, dec = ConvEncoder(1, resolution, 3), ConvDecoder(3, 1, resolution)
    mu, logvar = enc(torch.zeros(2, 1, resolution, resolution))
    assert mu.shape == logvar.shape == (2, 3)
    assert dec(mu).shape == (2, 1, resolution, resolution)
    assert num_stages(resolution) == int(math.log2(resolution)) - 2


@pytest.mark.parametrize("resolution", [8, 48, 100])
def test_unsupported_resolution_raises(resolution: int) -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        num_stages(resolution)


# Protocol shapes and ranges.


def test_protocol_shapes_and_ranges(model: BetaVAE | InfoVAE, x: torch.Tensor) -> None:
    assert model.encode(x).shape == (2, 4)
    rec = model.reconstruct(x)
    assert rec.shape == x.shape and rec.min() >= -1 and rec.max() <= 1
    s = model.sample(3, torch.Generator().manual_seed(1))
    assert s.shape == (3, 3, 64, 64) and s.min() >= -1 and s.max() <= 1
    t = model.traverse(x, dim=2, values=torch.linspace(-2, 2, 5))
    assert t.shape == (5, 2, 3, 64, 64) and t.min() >= -1 and t.max() <= 1
    out = model.loss(x)
    assert {"loss", "recon", "reg"} <= set(out) and all(v.ndim == 0 for v in out.values())


def test_traverse_sets_only_the_chosen_dimension(model: BetaVAE | InfoVAE, x: torch.Tensor) -> None:
    values = torch.tensor([-1.0, 3.0])
    t = model.traverse(x, dim=1, values=values)
    z = model.encode(x).detach().clone()
    z[:, 1] = 3.0
    torch.testing.assert_close(t[1], model.decode(z))
    with pytest.raises(ValueError):
        model.traverse(x, dim=4, values=values)


def test_sample_is_reproducible_from_the_generator(model: BetaVAE | InfoVAE) -> None:
    a = model.sample(4, torch.Generator().manual_seed(7))
    b = model.sample(4, torch.Generator().manual_seed(7))
    c = model.sample(4, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gradient_reaches_encoder_and_decoder(model: BetaVAE | InfoVAE, x: torch.Tensor) -> None:
    model.loss(x)["loss"].backward()
    for part in (model.encoder, model.decoder):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


# Loss terms against direct computations.


def test_gaussian_kl_known_values() -> None:
    assert gaussian_kl(torch.zeros(3, 5), torch.zeros(3, 5)).tolist() == [0.0, 0.0, 0.0]
    # ½ (mu² + σ² − 1 − log σ²) with mu = 1, log σ² = 0: ½ per dim, 2 dims.
    assert gaussian_kl(torch.ones(1, 2), torch.zeros(1, 2)).item() == pytest.approx(1.0)


def test_bernoulli_nll_uses_targets_in_0_1() -> None:
    logits = torch.zeros(1, 1, 2, 2)  # p = 1/2 everywhere: log 2 per pixel whatever the target
    x = torch.tensor([[[[-1.0, 1.0], [0.0, 1.0]]]])
    assert bernoulli_nll(logits, x).item() == pytest.approx(4 * math.log(2))
    # logit 2 against target x = 1 (pixel value 1): −log σ(2) = softplus(−2), summed over 4 pixels.
    assert bernoulli_nll(torch.full((1, 1, 2, 2), 2.0), torch.ones(1, 1, 2, 2)).item() == pytest.approx(
        4 * F.softplus(torch.tensor(-2.0)).item()
    )


def test_beta_vae_loss_is_recon_plus_beta_kl(x: torch.Tensor) -> None:
    torch.manual_seed(0)
    m = BetaVAE(BetaVAEConfig(latent_dim=4, beta=3.0), make_spec())
    torch.manual_seed(1)
    out = m.loss(x)
    # Same noise again: recompute every term directly.
    torch.manual_seed(1)
    mu, logvar = m.encoder(x)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    target = (x + 1) / 2
    recon = F.binary_cross_entropy_with_logits(m.decoder(z), target, reduction="sum") / len(x)
    kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum() / len(x)
    torch.testing.assert_close(out["recon"], recon)
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["loss"], recon + 3.0 * kl)


def test_info_vae_loss_is_recon_plus_lambda_mmd(x: torch.Tensor) -> None:
    torch.manual_seed(0)
    m = InfoVAE(InfoVAEConfig(latent_dim=4, mmd_weight=50.0), make_spec())
    torch.manual_seed(1)
    out = m.loss(x)
    torch.testing.assert_close(out["loss"], out["recon"] + 50.0 * out["mmd"])
    assert out["mmd"] > 0


def test_mmd_hand_computed_2x2() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    # K = exp(−‖·‖²/4): Kxx, Kyy means (1 + e^{-1/4})/2; Kxy mean (1 + 2e^{-1/4} + e^{-1/2})/4.
    assert mmd(x, y).item() == pytest.approx((1 - math.exp(-0.5)) / 2, rel=1e-6)
    assert mmd(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert mmd(x, y).item() == pytest.approx(mmd(y, x).item())


def test_mmd_detects_a_shift() -> None:
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(256, 10, generator=g), torch.randn(256, 10, generator=g)
    assert mmd(p + 1.0, q) > 10 * mmd(p, q)


# Registry and presets.


@pytest.mark.parametrize("name", ["betavae", "infovae", "random"])
@pytest.mark.parametrize("preset", ["smoke", "quick", "paper"])
@pytest.mark.parametrize("family", ["shapes3d", "celeba"])
def test_registry_presets_resolve(name: str, preset: str, family: str) -> None:
    entry = methods.get(name)
    chosen = select_preset(entry.presets, preset, family, name)
    assert isinstance(chosen.model, entry.config)
    expected_dim = {"smoke": 4, "quick": 10, "paper": 32 if family == "celeba" else 10}[preset]
    assert chosen.model.latent_dim == expected_dim
    if name == "random":
        assert chosen.train.steps == 0
    else:
        assert chosen.train.steps > 0
    if preset == "paper" and name != "random":
        assert (chosen.train.steps, chosen.train.batch_size, chosen.train.lr) == (300_000, 64, 1e-4)


def test_registered_classes() -> None:
    assert methods.get("betavae").obj is BetaVAE
    assert methods.get("infovae").obj is InfoVAE
    assert methods.get("random").obj is RandomFloor and issubclass(RandomFloor, BetaVAE)


def test_random_floor_is_seeded() -> None:
    spec, cfg = make_spec(), BetaVAEConfig()
    torch.manual_seed(3)
    a = RandomFloor(cfg, spec)
    torch.manual_seed(3)
    b = RandomFloor(cfg, spec)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_one_code_rule_for_all_diffusion_methods() -> None:
    """Item 5 of issue 11: every diffusion method's factor-metric codes are z-normalised (after DisDiff's PCA);
    VAEs keep raw posterior means; the random floor is z-normalised too (issue 17.3: on raw untrained codes FactorVAE
    prunes every dimension), raw with ``model.standardize_codes=False``. The rule is recorded with every number."""
    import numpy as np

    from benchbench.method import CODE_RULES, then_standardize
    from benchbench.registry import methods

    rules = {name: methods.get(name).obj.code_rule for name in methods.names()}
    assert {rules[m] for m in ("diffae", "pdae", "infodiffusion", "random")} == {"standardized"}
    assert rules["disdiff"] == "pca+standardized"
    assert {rules[m] for m in ("betavae", "infovae")} == {"raw"}
    assert set(rules.values()) <= set(CODE_RULES)
    for name, rule in rules.items():  # a method that standardises has the transform; a raw one has none
        assert (getattr(methods.get(name).obj, "code_postprocess", None) is not None) == (rule != "raw"), name
    codes = np.random.default_rng(0).normal(3.0, 0.01, size=(500, 4))
    out = then_standardize(lambda z: z[:, :2] * 0.001, codes)(codes)
    np.testing.assert_allclose(out.std(axis=0), 1.0)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-9)
