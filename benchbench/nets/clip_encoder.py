"""A frozen CLIP image encoder with trainable per-factor heads: the encoder of CLIP-guided DisDiff.

Reference: Yang et al., "DisDiff: Unsupervised Disentanglement of Diffusion Probabilistic Models", NeurIPS 2023,
https://arxiv.org/abs/2301.13721 (the CLIP-guided variant: E is CLIP's image encoder, frozen, with learnable parts
mapping its feature to the N factor codes); CLIP: Radford et al., ICML 2021, https://arxiv.org/abs/2103.00020, via
open_clip (Ilharco et al., https://github.com/mlfoundations/open_clip). The released DisDiff code has no CLIP-guided
config; the heads' design is benchbench's (UNVERIFIED against the paper's), the image preprocessing is the DisDiff
repo's ``FrozenClipImageEmbedder.preprocess`` (bicubic resize to CLIP's input side, align_corners=True, no
antialias; (x + 1) / 2; normalise with CLIP's mean and std).

    x [B, C, R, R] in [-1, 1] --(C = 1: repeat to RGB)--> resize to S x S --> CLIP visual (frozen, eval, no grad)
      --> f [B, E] --> per factor c: h_c = W2_c SiLU(W1_c f + b1_c) + b2_c [B, k]  --> z = concat_c h_c [B, N · k]

Weights: ``weights`` names a local file, either an open_clip checkpoint of the architecture ``model`` (what
``open_clip.create_model(model, pretrained=PATH)`` loads, e.g. ``open_clip_pytorch_model.bin``), or a benchbench
file ``{"model_cfg": {...}, "state_dict": {...}}`` (any architecture, e.g. the tests' small randomly initialised
model); else ``pretrained`` names an open_clip tag (e.g. "openai") looked up in open_clip's cache only, never
downloaded. Only the image tower is kept. open_clip is the optional extra ``clip``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchbench.errors import ConfigError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipEncoderConfig:
    """CLIP-guided encoder settings (``--set model.clip.KEY=...``).

    Attributes:
        model: open_clip architecture name of a plain checkpoint (ignored for a benchbench file, which carries it).
        weights: path of the weights file ("" = use ``pretrained`` from open_clip's cache).
        pretrained: open_clip pretrained tag to look up in its cache when ``weights`` is "" (e.g. "openai").
        head_hidden: width of each factor head's hidden layer.
    """

    model: str = "ViT-B-32"
    weights: str = ""
    pretrained: str = ""
    head_hidden: int = 256


def _missing(cfg: ClipEncoderConfig, why: str) -> ConfigError:
    return ConfigError(
        f"disdiff model.encoder=clip: {why}; pass --set model.clip.weights=PATH (an open_clip checkpoint of "
        f"{cfg.model}, e.g. open_clip_pytorch_model.bin, or a file with model_cfg and state_dict) or put the "
        f"model.clip.pretrained tag's file in open_clip's cache"
    )


def check(cfg: ClipEncoderConfig) -> None:
    """ConfigError (one line, naming the file) when open_clip or the weights are missing; nothing is loaded."""
    try:
        import open_clip  # noqa: F401
    except ImportError:
        raise ConfigError("disdiff model.encoder=clip needs open_clip: pip install 'benchbench[clip]'") from None
    if cfg.head_hidden < 1:
        raise ConfigError(f"disdiff: model.clip.head_hidden must be >= 1, got {cfg.head_hidden}")
    if cfg.weights:
        if not Path(cfg.weights).expanduser().is_file():
            raise _missing(cfg, f"weights file {cfg.weights} not found")
    elif not cfg.pretrained:
        raise _missing(cfg, "no CLIP weights given")


def load_visual(cfg: ClipEncoderConfig) -> nn.Module:
    """The frozen CLIP image tower (eval mode, no gradients) from ``cfg`` (see the module doc)."""
    import open_clip

    check(cfg)
    if cfg.weights:
        path = Path(cfg.weights).expanduser()
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            blob = None  # not a plain torch file: let open_clip try (e.g. safetensors)
        if isinstance(blob, dict) and "model_cfg" in blob and "state_dict" in blob:
            model = open_clip.CLIP(**blob["model_cfg"])
            model.load_state_dict(blob["state_dict"])
        else:
            try:
                model = open_clip.create_model(cfg.model, pretrained=str(path), load_weights=True)
            except Exception as exc:
                why = f"{path} is not a loadable checkpoint of {cfg.model} ({type(exc).__name__})"
                raise _missing(cfg, why) from None
    else:
        offline = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        os.environ.update({k: "1" for k in offline})  # open_clip's cache only: never reach for the network
        try:
            model = open_clip.create_model(cfg.model, pretrained=cfg.pretrained, require_pretrained=True)
        except Exception as exc:
            raise _missing(cfg, f"{cfg.model}/{cfg.pretrained} is not in open_clip's cache ({type(exc).__name__})") \
                from None
        finally:
            for k, v in offline.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    visual = model.visual
    return visual.requires_grad_(False).eval()


def clip_config_of(visual: nn.Module) -> tuple[int, int, tuple[float, ...], tuple[float, ...]]:
    """(input side S, feature width E, mean, std) of an open_clip image tower."""
    side = visual.image_size[0] if isinstance(visual.image_size, (tuple, list)) else int(visual.image_size)
    width = int(visual.output_dim)
    mean = tuple(getattr(visual, "image_mean", None) or OPENAI_MEAN)
    std = tuple(getattr(visual, "image_std", None) or OPENAI_STD)
    return int(side), width, mean, std


class ClipFactorEncoder(nn.Module):
    """z = heads(CLIP(x)) [B, N · k] from images x [B, C, R, R] in [-1, 1] (module doc); only the heads train.

    Args:
        cfg: CLIP settings (weights).
        num_factors: N.
        factor_dim: k.
        visual: an already built image tower (tests); default ``load_visual(cfg)``.
    """

    def __init__(self, cfg: ClipEncoderConfig, num_factors: int, factor_dim: int, visual: nn.Module | None = None
                 ) -> None:
        super().__init__()
        self.visual = (visual if visual is not None else load_visual(cfg)).requires_grad_(False).eval()
        self.side, width, mean, std = clip_config_of(self.visual)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        n, h = num_factors, cfg.head_hidden
        self.w1 = nn.Parameter(torch.randn(n, width, h) / width**0.5)  # N heads, batched: [N, E, H]
        self.b1 = nn.Parameter(torch.zeros(n, h))
        self.w2 = nn.Parameter(torch.randn(n, h, factor_dim) / h**0.5)  # [N, H, k]
        self.b2 = nn.Parameter(torch.zeros(n, factor_dim))

    def train(self, mode: bool = True) -> ClipFactorEncoder:
        """Train mode for the heads only: the CLIP tower stays in eval mode."""
        super().train(mode)
        self.visual.eval()
        return self

    def preprocess(self, x: Tensor) -> Tensor:
        """x [B, C, R, R] in [-1, 1] -> CLIP input [B, 3, S, S] (DisDiff's FrozenClipImageEmbedder.preprocess)."""
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x.float(), size=(self.side, self.side), mode="bicubic", align_corners=True)
        return ((x + 1.0) / 2.0 - self.mean) / self.std

    def features(self, x: Tensor) -> Tensor:
        """Frozen CLIP image features [B, E] (computed without autograd)."""
        with torch.no_grad():
            return self.visual(self.preprocess(x)).float()

    def forward(self, x: Tensor) -> Tensor:
        f = self.features(x)
        h = F.silu(torch.einsum("be,neh->nbh", f, self.w1) + self.b1[:, None])
        z = torch.einsum("nbh,nhk->bnk", h, self.w2) + self.b2[None]
        return z.flatten(1)


def tiny_model_cfg(image_size: int = 32) -> dict[str, Any]:
    """An open_clip ``CLIP(**cfg)`` small enough for tests (ViT 2 layers, width 32; text tower 1 layer)."""
    return {"embed_dim": 16,
            "vision_cfg": {"image_size": image_size, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
            "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}}


def save_random_clip(path: Path, model_cfg: dict[str, Any] | None = None, seed: int = 0) -> Path:
    """Write a randomly initialised open_clip model as a benchbench weights file (tests, offline smoke runs)."""
    import open_clip

    cfg = model_cfg or tiny_model_cfg()
    torch.manual_seed(seed)
    torch.save({"model_cfg": cfg, "state_dict": open_clip.CLIP(**cfg).state_dict()}, path)
    return path
