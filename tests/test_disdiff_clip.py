"""CLIP-guided DisDiff (``disdiff`` with ``model.encoder=clip``): a frozen CLIP image tower with trainable per-factor
heads, from a small randomly initialised open_clip model saved to a temporary file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("open_clip")

from benchbench import runner  # noqa: E402
from benchbench.errors import ConfigError  # noqa: E402
from benchbench.nets.clip_encoder import (  # noqa: E402
    ClipEncoderConfig,
    ClipFactorEncoder,
    check,
    load_visual,
    save_random_clip,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_clip(tmp_path_factory.mktemp("clip") / "tiny-clip.pt")


def test_heads_train_and_clip_gets_no_gradient(weights: Path) -> None:
    torch.manual_seed(0)
    enc = ClipFactorEncoder(ClipEncoderConfig(weights=str(weights), head_hidden=8), num_factors=3, factor_dim=4)
    enc.train()
    assert not enc.visual.training  # CLIP stays in eval mode
    for channels in (3, 1):
        x = torch.rand(5, channels, 16, 16) * 2 - 1
        z = enc(x)
        assert z.shape == (5, 12)
        z.square().sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in enc.visual.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (enc.w1, enc.b1, enc.w2, enc.b2))
    # Each factor's code depends on its own head only.
    f = enc.features(torch.zeros(2, 3, 16, 16))
    z0 = enc(torch.zeros(2, 3, 16, 16)).view(2, 3, 4)
    with torch.no_grad():
        enc.w2[1].add_(1.0)
    z1 = enc(torch.zeros(2, 3, 16, 16)).view(2, 3, 4)
    assert torch.equal(z0[:, [0, 2]], z1[:, [0, 2]]) and not torch.equal(z0[:, 1], z1[:, 1])
    assert f.shape == (2, 16)


def test_clip_input_is_the_reference_preprocessing(weights: Path) -> None:
    enc = ClipFactorEncoder(ClipEncoderConfig(weights=str(weights)), 2, 2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    want = torch.nn.functional.interpolate(x, size=(32, 32), mode="bicubic", align_corners=True)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    assert torch.allclose(enc.preprocess(x), ((want + 1) / 2 - mean) / std, atol=1e-6)


def test_missing_weights_is_a_one_line_error(tmp_path: Path) -> None:
    for cfg, needle in [(ClipEncoderConfig(), "no CLIP weights given"),
                        (ClipEncoderConfig(weights=str(tmp_path / "nope.pt")), "nope.pt not found")]:
        with pytest.raises(ConfigError) as info:
            check(cfg)
        msg = str(info.value)
        assert needle in msg and "--set model.clip.weights=PATH" in msg and "\n" not in msg
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a loadable checkpoint"):
        load_visual(ClipEncoderConfig(weights=str(tmp_path / "junk.pt")))
    with pytest.raises(ConfigError, match="no CLIP weights"):
        runner.plan("disdiff", "shapes3d-synth", "smoke", [0], ["model.encoder=clip"], tmp_path)
    assert not (tmp_path / "runs").exists()  # checked at plan time: nothing written


def test_disdiff_clip_smoke_run_keeps_clip_frozen(weights: Path, tmp_path: Path) -> None:
    sets = ["model.encoder=clip", f"model.clip.weights={weights}", "model.clip.head_hidden=8", "eval.metrics=('mig',)"]
    lines = runner.run("disdiff", "shapes3d-synth", 1, "smoke", sets, tmp_path, device="cpu", progress=False,
                       log=lambda s: None)
    assert "done" in lines[0]
    (result,) = tmp_path.rglob("result.json")
    record = json.loads(result.read_text())
    assert record["status"] == "complete" and "mig" in record["metrics"]
    state = torch.load(result.parent / "ckpt.pt", weights_only=False)
    original = torch.load(weights, weights_only=True)["state_dict"]
    for name in [n for n in ("model", "ema") if state[n] is not None]:
        clip = {k.removeprefix("encoder.visual."): v for k, v in state[name].items()
                if k.startswith("encoder.visual.")}
        assert clip and all(torch.equal(v, original[f"visual.{k}"]) for k, v in clip.items())
        heads = state[name]["encoder.w1"]
        assert heads.shape == (3, 16, 8)
    config = json.loads((result.parent / "config.json").read_text())["config"]["model"]
    assert config["encoder"] == "clip" and config["clip"]["weights"] == str(weights)
