"""InfoDiffusion (methods.md §7): the objective's terms on tiny tensors, its schedule, prior sampling, KL variant."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from benchbench.baselines.info_vae import mmd
from benchbench.datasets.base import DataSpec
from benchbench.errors import ConfigError
from benchbench.methods.infodiffusion import PRESETS, InfoDiffusion, InfoDiffusionConfig, gaussian_kl

SPEC = DataSpec("shapes3d-synth", 3, 16, "synthetic")
CFG: InfoDiffusionConfig = PRESETS["smoke"].model


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


def _x(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_schedule_is_the_codes_default() -> None:
    model = InfoDiffusion(CFG, SPEC)
    assert model.schedule.betas[0].item() == pytest.approx(1e-5) and model.schedule.betas[-1].item() == pytest.approx(
        1e-2)
    assert model.schedule.num_steps == 1000 and model.x0_weight == pytest.approx(1e-3)


def test_mmd_hand_value() -> None:
    # Kernel exp(-||x - y||^2 / D^2), D = 2: K(x1, x2) = e^{-1/4}, K(y1, y2) = e^{-1/4}, K(x_i, y_j): 1, e^{-1/2} x2,
    # e^{-1/4}; biased MMD^2 = (2 + 2e^{-1/4})/4 + (2 + 2e^{-1/4})/4 - 2 (1 + 2e^{-1/4} + e^{-1/2})/4.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    q, h = math.exp(-0.25), math.exp(-0.5)
    expected = (2 + 2 * q) / 2 - (1 + 2 * q + h) / 2
    assert mmd(x, y).item() == pytest.approx(expected, abs=1e-6)
    # Unbiased: the within-sample means leave out the diagonal (K = 1) terms.
    assert mmd(x, y, unbiased=True).item() == pytest.approx(2 * q - (1 + 2 * q + h) / 2, abs=1e-6)


def test_biased_mmd_prefers_collapse_at_small_batches() -> None:
    """Why ``mmd_unbiased`` exists: with 16 codes of 16 dims, the reference's biased estimate is lower for codes
    collapsed to 0 than for codes drawn from the prior itself; the unbiased one is not."""
    g = torch.Generator().manual_seed(0)
    prior = [torch.randn(16, 16, generator=g) for _ in range(50)]
    codes = [torch.randn(16, 16, generator=g) for _ in range(50)]
    zero = torch.zeros(16, 16)
    for unbiased, collapse_wins in ((False, True), (True, False)):
        collapsed = sum(mmd(zero, y, unbiased).item() for y in prior) / 50
        matched = sum(mmd(x, y, unbiased).item() for x, y in zip(codes, prior, strict=True)) / 50
        assert (collapsed < matched) is collapse_wins


def test_loss_is_eps_mse_plus_x0_term_plus_weighted_mmd() -> None:
    torch.manual_seed(0)
    model = InfoDiffusion(replace(CFG, mmd_weight=0.7), SPEC).train()
    with torch.no_grad():  # a non-zero noise predictor
        for p in model.unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = _x()
    torch.manual_seed(5)
    terms = model.loss(x)
    # Replay the draws in the documented order: t, eps, prior sample.
    torch.manual_seed(5)
    t = torch.randint(0, 1000, (4,))
    noise = torch.randn_like(x)
    with torch.no_grad():
        a = model.encoder(x)
        prior = torch.randn_like(a)
        eps_hat = model.unet(model.schedule.q_sample(x, t, noise), t, model.fc_a(a))
    s = model.schedule
    x0_tilde = (x - float(s.betas[0]) / math.sqrt(1 - float(s.alphas_bar[0])) * eps_hat) / math.sqrt(float(s.alphas[0]))
    mse = F.mse_loss(eps_hat, noise)
    rec = F.mse_loss(x0_tilde, x)
    d = mmd(a, prior)
    assert terms["mse"].item() == pytest.approx(mse.item(), rel=1e-5)
    assert terms["x0"].item() == pytest.approx(rec.item(), rel=1e-5)
    assert terms["mmd"].item() == pytest.approx(d.item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(mse.item() + 1e-3 * rec.item() + 0.7 * d.item(), rel=1e-5)


def test_the_mmd_trains_the_encoder() -> None:
    torch.manual_seed(0)
    model = InfoDiffusion(CFG, SPEC).train()
    model.loss(_x())["loss"].backward()
    # The decoder's zero-initialised blocks give E no gradient through eps on step 1; the MMD term does.
    assert model.encoder.head.weight.grad is not None and model.encoder.head.weight.grad.abs().sum() > 0
    no_prior = InfoDiffusion(replace(CFG, mmd_weight=0.0), SPEC).train()
    no_prior.loss(_x())["loss"].backward()
    assert no_prior.encoder.head.weight.grad is None or no_prior.encoder.head.weight.grad.abs().sum() == 0


def test_sample_draws_the_code_from_the_prior() -> None:
    model = InfoDiffusion(CFG, SPEC).eval()
    seen = []
    model.decode = lambda x_T, a, generator=None: seen.append((x_T, a)) or x_T  # type: ignore[method-assign]
    model.sample(3, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    a = torch.randn(3, CFG.a_dim, generator=g)
    x_T = torch.randn(3, 3, 16, 16, generator=g)
    torch.testing.assert_close(seen[0][1], a)
    torch.testing.assert_close(seen[0][0], x_T)


def test_kl_variant_and_its_checks() -> None:
    with pytest.raises(ConfigError, match="not both"):
        InfoDiffusion(replace(CFG, kld_weight=1.0), SPEC)
    model = InfoDiffusion(replace(CFG, mmd_weight=0.0, kld_weight=0.5), SPEC).train()
    x = _x()
    terms = model.loss(x)
    assert "kl" in terms and "mmd" not in terms
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), model.mu_head(model.encoder(x)))
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # 0.5 (1 + 1 - 1 - 0) + 0.5 (0 + 4 - 1 - log 4)
    assert gaussian_kl(mu, logvar).item() == pytest.approx(0.5 + 0.5 * (3 - math.log(4.0)))


def test_traverse_sets_one_code_dimension() -> None:
    model = InfoDiffusion(CFG, SPEC).eval()
    seen = []
    model.decode = lambda x_T, a: seen.append(a) or torch.zeros(len(a), 3, 16, 16)  # type: ignore[method-assign]
    out = model.traverse(_x(2), 3, torch.tensor([-1.0, 0.0, 1.0]))
    assert out.shape == (3, 2, 3, 16, 16)
    codes = seen[-1].view(3, 2, -1)
    torch.testing.assert_close(codes[:, :, 3], torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]))


def test_conv_encoder_option() -> None:
    from benchbench.nets.unet import SemanticEncoder

    quick = PRESETS["quick"].model
    model = InfoDiffusion(quick, DataSpec("shapes3d-synth", 3, 32, "synthetic"))
    assert isinstance(model.encoder, SemanticEncoder) and quick.encoder_kind == "conv"
    assert model.encode(torch.zeros(2, 3, 32, 32)).shape == (2, quick.a_dim)
    with pytest.raises(ConfigError, match="encoder_kind"):
        InfoDiffusion(replace(CFG, encoder_kind="mlp"), SPEC)
    assert PRESETS["paper"]["celeba"].model.encoder_kind == "unet"


def test_paper_decoder_is_the_dev_branch_network() -> None:
    # isjakewong/InfoDiffusion @ 759f79c7649a7b0d22bdb8bfc4d73e959b1ed2c5 (InfoDiffusion-dev), models.py AuxiliaryUNet
    # (T 1000, ch 64, ch_mult [1, 2, 4, 8], a_dim 32, shape (3, 64, 64)), built in a scratch copy: 112,357,571
    # parameters, of which 9,095,296 belong to the CrossAttnBlock each AuxResBlock builds but never calls and 64,000
    # are the frozen sinusoid table of TimeEmbedding; the 103,198,275 it trains are ours (UNet + fc_a) exactly.
    from benchbench.methods.infodiffusion import PAPER_DECODER
    from benchbench.nets.unet import UNet

    paper = PRESETS["paper"]["celeba"]
    assert paper.model.unet == PAPER_DECODER and not PAPER_DECODER.resblock_updown
    assert PAPER_DECODER.block_layout == "infodiffusion_dev"
    unet = UNet(PAPER_DECODER)
    n = sum(p.numel() for p in unet.parameters()) + paper.model.a_dim * 256 + 256  # + fc_a
    assert n == 103_198_275
    assert dict(paper.data) == {"crop": "center"} and paper.train.batch_size == 32


def test_dev_block_matches_the_official_aux_res_block() -> None:
    # The dev AuxResBlock(32, 64, tdim 16, dropout 0) (modules.py, same commit), its parameters copied from ours by
    # name (block1.0 = in_norm, block1.2 = in_conv, temb_proj.1 = emb_proj, aemb_proj.1 = cond_proj, block2.0 =
    # out_norm, block2.3 = mid_conv, block3.0 = code_norm, block3.3 = code_conv, block4.0 = last_norm, block4.3 =
    # out_conv, shortcut = skip) after filling ours in order with 0.2 * randn (Generator().manual_seed(0)); its output
    # on the fixed inputs below, from a scratch run (ours matched it to the last bit there).
    from benchbench.nets.resblock import ResBlock

    block = ResBlock(32, 64, emb_dim=16, cond_dim=16, cond_mode="scale_shift", layout="infodiffusion_dev").eval()
    assert sum(p.numel() for p in block.parameters()) == 136_192  # the dev block's, cross-attention left out
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
        x = torch.sin(torch.arange(2 * 32 * 4 * 4, dtype=torch.float32)).view(2, 32, 4, 4)
        temb = torch.cos(torch.arange(2 * 16, dtype=torch.float32)).view(2, 16)
        aemb = torch.sin(0.5 * torch.arange(2 * 16, dtype=torch.float32)).view(2, 16)
        y = block(x, temb, aemb)
    assert float(y.sum()) == pytest.approx(154.897415, abs=1e-3) and float(y.abs().sum()) == pytest.approx(
        1700.427124, abs=1e-3)
    torch.testing.assert_close(y[0, :4, 0, 0], torch.tensor([2.412048, 0.035635, 1.623523, 0.402988]), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(y[1, -3:, 3, 3], torch.tensor([0.923912, -1.174026, -1.855073]), atol=1e-5, rtol=0)
