"""Offline FID weights: the TorchScript-port converter maps every block onto torch-fidelity's layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from benchbench.errors import BenchbenchError
from benchbench.metrics.fid_weights import block_pairs, write_weights


def _fake_archive(path: Path, prefix: str = "net.layers.", extra: bool = False) -> dict[str, torch.Tensor]:
    """A TorchScript module whose tensors have the port's names and torch-fidelity's shapes, random values."""
    layout = _layout()
    root = nn.Module()
    values: dict[str, torch.Tensor] = {}
    g = torch.Generator().manual_seed(0)
    for dst, src in block_pairs():
        node = root
        for part in (prefix + src).split("."):
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        c_out = layout[f"{dst}.conv.weight"]
        for name, shape in (("weight", c_out), ("beta", c_out[:1]), ("mean", c_out[:1]), ("var", c_out[:1])):
            t = torch.rand(shape, generator=g) + 0.5 if name == "var" else 0.05 * torch.randn(shape, generator=g)
            node.register_parameter(name, nn.Parameter(t, requires_grad=False))
            values[f"{dst}.{name}"] = t
    if extra:
        root.register_parameter("stray", nn.Parameter(torch.zeros(1)))

    class Wrapped(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            for k, v in inner.named_children():
                self.add_module(k, v)
            for k, v in inner.named_parameters(recurse=False):
                self.register_parameter(k, v)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    torch.jit.save(torch.jit.script(Wrapped(root)), str(path))
    return values


def _layout() -> dict[str, torch.Size]:
    """torch-fidelity's state-dict shapes: its blocks built as its constructor builds them (no weights needed)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    blocks = {
        "Conv2d_1a_3x3": fe.BasicConv2d(3, 32, kernel_size=3, stride=2),
        "Conv2d_2a_3x3": fe.BasicConv2d(32, 32, kernel_size=3),
        "Conv2d_2b_3x3": fe.BasicConv2d(32, 64, kernel_size=3, padding=1),
        "Conv2d_3b_1x1": fe.BasicConv2d(64, 80, kernel_size=1),
        "Conv2d_4a_3x3": fe.BasicConv2d(80, 192, kernel_size=3),
        "Mixed_5b": fe.InceptionA(192, pool_features=32),
        "Mixed_5c": fe.InceptionA(256, pool_features=64),
        "Mixed_5d": fe.InceptionA(288, pool_features=64),
        "Mixed_6a": fe.InceptionB(288),
        "Mixed_6b": fe.InceptionC(768, channels_7x7=128),
        "Mixed_6c": fe.InceptionC(768, channels_7x7=160),
        "Mixed_6d": fe.InceptionC(768, channels_7x7=160),
        "Mixed_6e": fe.InceptionC(768, channels_7x7=192),
        "Mixed_7a": fe.InceptionD(768),
        "Mixed_7b": fe.InceptionE_1(1280),
        "Mixed_7c": fe.InceptionE_2(2048),
    }
    return {f"{b}.{k}": v.shape for b, m in blocks.items() for k, v in m.state_dict().items()}


def test_converted_file_loads_strictly_into_torch_fidelity(tmp_path: Path) -> None:
    src = tmp_path / "inception.pt"
    values = _fake_archive(src)
    dst = write_weights(src, tmp_path / "w.pth")
    model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(dst))
    state = model.state_dict()
    assert len([k for k in state if k.endswith(".conv.weight")]) == 94 == len(block_pairs())
    for dst_block, _ in block_pairs()[:3] + block_pairs()[-3:]:
        torch.testing.assert_close(state[f"{dst_block}.conv.weight"], values[f"{dst_block}.weight"])
        torch.testing.assert_close(state[f"{dst_block}.bn.bias"], values[f"{dst_block}.beta"])
        torch.testing.assert_close(state[f"{dst_block}.bn.running_mean"], values[f"{dst_block}.mean"])
        torch.testing.assert_close(state[f"{dst_block}.bn.running_var"], values[f"{dst_block}.var"])
        assert torch.all(state[f"{dst_block}.bn.weight"] == 1)
    assert torch.all(state["fc.weight"] == 0)
    with torch.no_grad():
        feats = model(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))[0]
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()


def test_bad_archives_and_existing_targets(tmp_path: Path) -> None:
    src = tmp_path / "inception.pt"
    _fake_archive(src, extra=True)
    with pytest.raises(BenchbenchError, match="not mapped"):
        write_weights(src, tmp_path / "a.pth")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(BenchbenchError, match="not a TorchScript archive"):
        write_weights(junk, tmp_path / "b.pth")
    (tmp_path / "c.pth").write_bytes(b"keep")
    with pytest.raises(BenchbenchError, match="already exists"):
        write_weights(src, tmp_path / "c.pth")
    assert (tmp_path / "c.pth").read_bytes() == b"keep"
    assert not (tmp_path / "a.pth").exists() and not (tmp_path / "b.pth").exists()
