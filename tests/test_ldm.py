"""First-stage autoencoder (VQ / KL) and the latent DPM stage (methods.md §6.1)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from benchbench.config import TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.errors import ConfigError
from benchbench.methods.disdiff import PRESETS
from benchbench.methods.ldm import Autoencoder, LatentDPM
from benchbench.nets.first_stage import VectorQuantizer, diagonal_gaussian_kl
from benchbench.train import ema_update

SPEC = DataSpec("shapes3d-synth", 3, 16, "synthetic")
LDM = PRESETS["smoke"].model.ldm


def _x(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_vector_quantizer_nearest_code_straight_through_and_loss() -> None:
    vq = VectorQuantizer(3, 2, beta=0.25)
    with torch.no_grad():
        vq.codebook.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]]))
    y = torch.tensor([[0.9, 1.2], [-0.8, 1.5], [0.1, -0.1]]).T.reshape(1, 2, 1, 3).requires_grad_(True)
    q, loss = vq(y)
    assert vq.indices(y.detach()).flatten().tolist() == [1, 2, 0]
    torch.testing.assert_close(q.detach().reshape(2, 3).T, torch.tensor([[1.0, 1.0], [-1.0, 2.0], [0.0, 0.0]]))
    sq = ((0.1**2 + 0.2**2) + (0.2**2 + 0.5**2) + (0.1**2 + 0.1**2)) / 6  # mean squared distance to the codes
    assert loss.item() == pytest.approx(1.25 * sq, rel=1e-5)
    q.sum().backward()
    torch.testing.assert_close(y.grad, torch.ones_like(y))  # straight-through


def test_vector_quantizer_puts_beta_on_the_codebook_term_as_taming() -> None:
    # taming-transformers VectorQuantizer2 (legacy=True, the default DisDiff's LDM builds with beta 0.25):
    # loss = mean((z_q.detach() - z)^2) + beta * mean((z_q - z.detach())^2): the encoder output gets weight 1,
    # the codebook beta. y and the chosen codes differ by d, so d(loss)/dy = 2 d / n and d(loss)/de = -2 beta d / n.
    for on_codebook, w_y, w_e in ((True, 1.0, 0.25), (False, 0.25, 1.0)):
        vq = VectorQuantizer(3, 2, beta=0.25, beta_on_codebook=on_codebook)
        with torch.no_grad():
            vq.codebook.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]]))
        y = torch.tensor([[0.9, 1.2], [-0.8, 1.5], [0.1, -0.1]]).T.reshape(1, 2, 1, 3).requires_grad_(True)
        _, loss = vq(y)
        loss.backward()
        e = torch.tensor([[1.0, 1.0], [-1.0, 2.0], [0.0, 0.0]]).T.reshape(1, 2, 1, 3)
        torch.testing.assert_close(y.grad, w_y * 2 * (y.detach() - e) / 6)
        code_grad = vq.codebook.weight.grad[[1, 2, 0]]  # rows of the codes chosen for positions 0, 1, 2
        torch.testing.assert_close(code_grad, w_e * 2 * (e - y.detach()).reshape(2, 3).T / 6)


def test_autoencoder_has_ldm_mid_attention() -> None:
    from benchbench.nets.attention import AttentionBlock

    ae = Autoencoder(replace(LDM.autoencoder, mid_attention=True), SPEC)
    attn = [m for m in ae.modules() if isinstance(m, AttentionBlock)]
    assert len(attn) == 2 and all(a.proj.weight.abs().sum() > 0 for a in attn)  # encoder + decoder, not zero-init
    assert ae.decode(ae.encode(_x())).shape == (4, 3, 16, 16)
    assert not any(isinstance(m, AttentionBlock) for m in Autoencoder(LDM.autoencoder, SPEC).modules())  # smoke


def test_kl_hand_value() -> None:
    mean = torch.zeros(2, 1, 1, 2)
    mean[0, 0, 0, 0] = 2.0
    logvar = torch.zeros(2, 1, 1, 2)
    # 0.5 * mean^2 summed: example 0 has 2, example 1 has 0 -> batch mean 1.
    assert diagonal_gaussian_kl(mean, logvar).item() == pytest.approx(1.0)


def test_autoencoder_shapes_and_losses() -> None:
    for kind, ch in (("vq", 3), ("kl", 4)):
        ae = Autoencoder(replace(LDM.autoencoder, kind=kind, z_channels=ch), SPEC)
        y = ae.encode(_x())
        assert y.shape == (4, ch, 4, 4)
        assert ae.decode(y).shape == (4, 3, 16, 16)
        terms = ae.loss(_x())
        assert terms["loss"].item() == pytest.approx(
            terms["l1"].item() + (1.0 if kind == "vq" else 1e-6) * terms["reg"].item(), rel=1e-5)
    with pytest.raises(ConfigError, match="'vq' or 'kl'"):
        Autoencoder(replace(LDM.autoencoder, kind="vae"), SPEC)


def test_latent_dpm_scale_by_std_and_l1() -> None:
    torch.manual_seed(0)
    model = LatentDPM(LDM, SPEC).train()
    x = _x()
    assert float(model.scale) == 0.0
    torch.manual_seed(2)
    out = model.loss(x)
    with torch.no_grad():
        y = model.autoencoder.encode(x)
    assert float(model.scale) == pytest.approx(1.0 / y.std().item(), rel=1e-5)
    torch.manual_seed(2)
    t = torch.randint(0, 1000, (4,))
    noise = torch.randn_like(y)
    with torch.no_grad():
        y0 = y * model.scale
        expected = F.l1_loss(model.unet(model.schedule.q_sample(y0, t, noise), t), noise)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # The scale is fixed by the first batch only; the autoencoder stays frozen and in eval mode.
    model.loss(x * 0.5)
    assert float(model.scale) == pytest.approx(1.0 / y.std().item(), rel=1e-5)
    assert not any(p.requires_grad for p in model.autoencoder.parameters()) and not model.autoencoder.training
    s = model.schedule
    assert s.betas[0].item() == pytest.approx(0.0015) and s.betas[-1].item() == pytest.approx(0.0155)
    assert s.betas[500].item() == pytest.approx((math.sqrt(0.0015) + 500 / 999 * (math.sqrt(0.0155)
                                                                                    - math.sqrt(0.0015))) ** 2)


def test_latent_unet_must_fit_the_latents() -> None:
    with pytest.raises(ConfigError, match="model.ldm.unet.resolution=4"):
        LatentDPM(replace(LDM, unet=replace(LDM.unet, resolution=8)), SPEC)


def test_cosine_schedule_and_ema_exclusion() -> None:
    cfg = TrainConfig(steps=10, lr=1.0, warmup_steps=2, lr_schedule="cosine")
    assert [round(cfg.learning_rate(i), 4) for i in (0, 1, 2, 6, 9)] == [0.5, 1.0, 1.0, 0.5, round(
        0.5 * (1 + math.cos(math.pi * 7 / 8)), 4)]
    assert TrainConfig(lr=0.3).learning_rate(500) == 0.3
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")

    class Two(torch.nn.Module):
        ema_exclude = ("encoder.",)

        def __init__(self) -> None:
            super().__init__()
            self.encoder = torch.nn.Linear(1, 1, bias=False)
            self.decoder = torch.nn.Linear(1, 1, bias=False)

    model, ema = Two(), Two()
    with torch.no_grad():
        for m, v in ((model, 1.0), (ema, 0.0)):
            m.encoder.weight.fill_(v)
            m.decoder.weight.fill_(v)
    ema_update(ema, model, 0.9)
    assert ema.encoder.weight.item() == 1.0 and ema.decoder.weight.item() == pytest.approx(0.1)
