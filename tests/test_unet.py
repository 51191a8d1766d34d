"""ADM UNet: shapes, zero-init outputs, encoder/decoder split, AdaGN hand checks, semantic encoder."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from benchbench.nets.attention import AttentionBlock, num_groups_for
from benchbench.nets.unet import (
    ResBlock,
    SemanticEncoder,
    SemanticEncoderConfig,
    UNet,
    UNetConfig,
    UNetDecoder,
    UNetEncoder,
    skip_channels,
    timestep_embedding,
)

TINY = UNetConfig(
    resolution=16, base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
    num_heads=2, dropout=0.0, num_groups=8,
)  # fmt: skip


def _randomise(module: torch.nn.Module, seed: int = 1) -> None:
    """Overwrite every parameter (zero-initialised ones included) so the network computes something non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))


def _batch(cfg: UNetConfig, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, cfg.in_channels, cfg.resolution, cfg.resolution, generator=g)
    return x, torch.randint(0, 1000, (n,), generator=g)


@pytest.mark.parametrize(
    "cfg",
    [
        TINY,
        replace(TINY, resolution=32, channel_mult=(1, 2, 2), attention_resolutions=(16, 8), cond_dim=6),
        replace(TINY, resolution=64, channel_mult=(1, 2, 2, 2), attention_resolutions=(16,)),
        replace(TINY, resblock_updown=False, in_channels=1, out_channels=2, cond_dim=4, cond_mode="scale_shift"),
    ],
)
def test_output_shape_and_zero_init(cfg):
    net = UNet(cfg).eval()
    x, t = _batch(cfg)
    z = torch.randn(2, cfg.cond_dim) if cfg.cond_dim else None
    out = net(x, t, z)
    assert out.shape == (2, cfg.out_channels, cfg.resolution, cfg.resolution)
    assert torch.equal(out, torch.zeros_like(out))  # zero-init head (ADM zero_module): untouched net outputs 0
    _randomise(net)
    out = net(x, t, z)
    assert out.abs().sum() > 0 and torch.isfinite(out).all()


def test_diffae_celeba64_config_builds_and_runs():
    net = UNet(UNetConfig()).eval()
    n_params = sum(p.numel() for p in net.parameters())
    print(f"Diff-AE CelebA-64 UNet parameters: {n_params:,}")
    assert 50e6 < n_params < 200e6
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64), torch.tensor([10]))
    assert out.shape == (1, 3, 64, 64)


def test_skip_channels_match_encoder():
    cfg = replace(TINY, channel_mult=(1, 2, 3), num_res_blocks=2)
    h, skips, emb = UNetEncoder(cfg)(*_batch(replace(cfg, resolution=16)))
    assert [s.shape[1] for s in skips] == skip_channels(cfg) == [16, 16, 16, 16, 32, 32, 32, 48, 48]
    assert h is skips[-1] and h.shape == (2, 48, 4, 4) and emb.shape == (2, 64)


def test_unet_equals_decoder_of_encoder():
    torch.manual_seed(0)
    net = UNet(replace(TINY, cond_dim=5)).eval()
    _randomise(net)
    x, t = _batch(net.cfg)
    z = torch.randn(2, 5)
    h, skips, emb = net.encoder(x, t, z)
    n_skips = len(skips)
    out = net.decoder(h, skips, emb, z)
    assert len(skips) == n_skips  # the decoder does not consume the list (DisDiff runs it N times)
    assert torch.equal(net(x, t, z), out)
    assert torch.equal(net.decoder(h, skips, emb, z), out)


def test_shift_decoder_on_frozen_encoder_learns_through_z():
    torch.manual_seed(0)
    ddpm = UNet(TINY).eval()  # the frozen, unconditioned pre-trained DPM
    _randomise(ddpm)
    shift = UNetDecoder(ddpm.decoder_config(cond_dim=8, cond_mode="scale_shift"))
    x, t = _batch(TINY, n=4)
    z = torch.randn(4, 8)
    with torch.no_grad():
        h, skips, emb = ddpm.encoder(x, t)
    assert torch.equal(shift(h, skips, emb, z), torch.zeros(4, 3, 16, 16))  # zero-init: G_psi = 0 at start

    target = torch.randn(4, 3, 16, 16)
    z_linears = [m.cond_proj for m in shift.modules() if isinstance(m, ResBlock)]
    nonzero_z = []
    for _ in range(3):
        shift.zero_grad()
        (shift(h, skips, emb, z) - target).square().mean().backward()
        nonzero_z.append(sum(int(lin.weight.grad.abs().sum() > 0) for lin in z_linears))
        if not nonzero_z[-1]:
            # Zero-init: first only the head conv, then the blocks' last convs, get gradients.
            assert shift.out[-1].weight.grad.abs().sum() > 0
        with torch.no_grad():  # plain SGD step (a torch.optim step would import torch._dynamo: ~1 s)
            for p in shift.parameters():
                p.sub_(0.1 * p.grad)
    # The z Linears are two zero convs away from the output: their first non-zero gradient is at the 3rd backward.
    assert nonzero_z[:2] == [0, 0] and nonzero_z[2] == len(z_linears) > 0
    assert all(p.grad is None for p in ddpm.parameters())


def _one_channel_block(cond_mode: str) -> ResBlock:
    block = ResBlock(1, emb_dim=1, cond_dim=1, cond_mode=cond_mode, num_groups=32)
    with torch.no_grad():
        block.emb_proj.weight.zero_()
        block.emb_proj.bias.copy_(torch.tensor([0.5, 0.25]))  # t_s, t_b
        block.cond_proj.weight.zero_()
        block.cond_proj.bias.copy_(torch.tensor([2.0, -1.0][: block.cond_proj.out_features]))  # z_s(, z_b)
    return block


@pytest.mark.parametrize("cond_mode", ["scale", "scale_shift"])
def test_adagn_hand_check_on_one_channel(cond_mode):
    block = _one_channel_block(cond_mode)
    h = torch.tensor([1.0, 2.0, 3.0, 6.0]).reshape(1, 1, 2, 2)
    gn = (h - 3.0) / math.sqrt(3.5 + 1e-5)  # one group: mean 3, biased variance 3.5
    expected = (gn * 1.5 + 0.25) * 3.0  # GN (1 + t_s) + t_b, then (1 + z_s)
    if cond_mode == "scale_shift":
        expected = expected - 1.0  # + z_b
    out = block.modulate(h, emb=torch.ones(1, 1), z=torch.ones(1, 1))
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("cond_mode", ["scale", "scale_shift"])
def test_zero_code_gives_the_unconditioned_block(cond_mode):
    torch.manual_seed(0)
    cond = ResBlock(4, 8, emb_dim=6, cond_dim=3, cond_mode=cond_mode, num_groups=2)
    plain = ResBlock(4, 8, emb_dim=6, num_groups=2)
    _randomise(plain)
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[0] for k in missing} == {"cond_proj"}
    x, emb = torch.randn(2, 4, 5, 5), torch.randn(2, 6)
    torch.testing.assert_close(cond(x, emb, torch.zeros(2, 3)), plain(x, emb))
    with torch.no_grad():
        cond.cond_proj.weight.normal_()
    assert not torch.allclose(cond(x, emb, torch.randn(2, 3)), plain(x, emb))


def test_missing_or_extra_code_raises():
    with pytest.raises(ValueError, match="pass z"):
        UNet(replace(TINY, cond_dim=3))(*_batch(TINY))
    with pytest.raises(ValueError, match="cond_dim = 0"):
        UNet(TINY)(*_batch(TINY), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="cond_mode"):
        UNetConfig(cond_mode="shift")  # type: ignore[arg-type]


def test_timestep_embedding_hand_check():
    emb = timestep_embedding(torch.tensor([0, 3]), 6)
    freqs = torch.tensor([1.0, 10_000 ** (-1 / 3), 10_000 ** (-2 / 3)])
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(3 * freqs), torch.sin(3 * freqs)]))
    assert timestep_embedding(torch.tensor([2.5]), 5).shape == (1, 5)  # float t, odd width padded


def test_semantic_encoder_output():
    cfg = SemanticEncoderConfig(resolution=32, base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, num_groups=8)
    enc = SemanticEncoder(cfg).eval()
    z = enc(torch.randn(3, 3, 32, 32))
    assert z.shape == (3, 512) and z.abs().sum() > 0  # non-zero-init head: codes differ from the start
    assert not torch.allclose(z[0], z[1])


def test_semantic_encoder_paper_layout_param_count():
    # phizaz/diffae @ 00c57d3f626f28bf9ed8aff58d90baab25de3af4, model/unet.py BeatGANsEncoderModel built as
    # unet_autoenc.py does for templates.ffhq64_autoenc / celeba64d2c_autoenc (ch 64, enc mult (1, 2, 4, 8, 8),
    # attention 16, 2 blocks, use_time_condition=False, resblock_updown=True, out 512): 19,320,512 parameters.
    n_params = sum(p.numel() for p in SemanticEncoder(SemanticEncoderConfig()).parameters())
    assert n_params == 19_320_512


def test_semantic_encoder_blocks_have_one_conv_and_no_dropout():
    enc = SemanticEncoder(SemanticEncoderConfig(resolution=16, base_channels=8, channel_mult=(1, 2),
                                                num_res_blocks=1, attention_resolutions=(), num_groups=4))
    blocks = [m for m in enc.modules() if isinstance(m, ResBlock)]
    assert blocks and all(b.single_conv and not hasattr(b, "out_conv") for b in blocks)
    assert not any(isinstance(m, torch.nn.Dropout) for m in enc.modules())


def test_semantic_encoder_matches_official_forward():
    # The official BeatGANsEncoderModel (phizaz/diffae @ 00c57d3f, model/unet.py + model/blocks.py) with
    # image_size 16, model_channels 32, channel_mult (1, 2), 1 block, attention at 8, out 8, resblock_updown, no time
    # condition; every parameter, in module order, set to 0.2 * randn from Generator().manual_seed(0) (both networks
    # list their parameters in the same order and shapes). Its output on the fixed input below, run in a scratch copy:
    official = torch.tensor([
        [0.077078, 0.108736, 0.205113, 0.120633, -0.066812, 0.391821, -0.039405, 0.058054],
        [0.075400, 0.108862, 0.207527, 0.119185, -0.063608, 0.391923, -0.036948, 0.058994]])
    enc = SemanticEncoder(SemanticEncoderConfig(resolution=16, base_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                                                attention_resolutions=(8,), out_dim=8)).eval()
    assert sum(p.numel() for p in enc.parameters()) == 148_488  # the official tiny encoder's count
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in enc.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
        z = enc(torch.sin(torch.arange(2 * 3 * 16 * 16, dtype=torch.float32)).view(2, 3, 16, 16))
    torch.testing.assert_close(z, official, atol=2e-6, rtol=0)


def test_determinism_under_manual_seed():
    cfg = replace(TINY, cond_dim=4)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        net = UNet(cfg).eval()
        with torch.no_grad():
            for m in net.modules():  # make the zero-init layers non-zero with the global generator
                if isinstance(m, torch.nn.Conv2d):
                    m.weight.normal_(0, 0.05)
        outs.append(net(*_batch(cfg), torch.ones(2, 4)))
    assert torch.equal(outs[0], outs[1]) and outs[0].abs().sum() > 0


def test_attention_is_identity_at_init_and_groups_clip():
    block = AttentionBlock(12, num_heads=3, num_groups=32)
    x = torch.randn(2, 12, 4, 4)
    assert torch.equal(block(x), x)
    assert [num_groups_for(c, 32) for c in (16, 48, 64, 3)] == [16, 24, 32, 3]


def test_bf16_autocast_forward_backward():
    cfg = replace(TINY, cond_dim=4, cond_mode="scale_shift")
    net = UNet(cfg)
    _randomise(net)
    x, t = _batch(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, t, torch.randn(2, 4))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    out.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
