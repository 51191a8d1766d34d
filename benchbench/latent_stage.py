"""Runner side of the ``latent`` stage: encode a trained run's training codes, build (or reuse) the latent DPM on
them, and attach it to the model as its code generator (see :mod:`benchbench.methods.latent_prior`).

A method takes part when its model config has ``code_prior`` ("latent" or "gaussian") and ``latent`` (a
:class:`~benchbench.methods.latent_prior.LatentConfig`). With ``code_prior=latent`` the stage is built right after
training, before figures and metrics, so ``samples.png`` and FID come from the same generator.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbench import stages, store
from benchbench.config import RunConfig
from benchbench.datasets.base import ImageData, to_model_input
from benchbench.method import Method
from benchbench.methods.latent_prior import CodeData, LatentConfig, load_prior

Log = Callable[[str], None]


CODE_PRIORS = ("latent", "gaussian")


def check_code_prior(model_cfg: Any) -> None:
    """ConfigError unless a ``code_prior`` the model config has is one of its class's ``CODE_PRIORS`` (default
    :data:`CODE_PRIORS`; InfoDiffusion adds "two-phase")."""
    value = getattr(model_cfg, "code_prior", None)
    allowed = getattr(type(model_cfg), "CODE_PRIORS", CODE_PRIORS)
    if value is not None and value not in allowed:
        from benchbench.errors import ConfigError

        extra = "".join(f", or {v!r}" for v in allowed if v not in CODE_PRIORS)
        raise ConfigError(f"--set model.code_prior={value!r}: choose 'latent' (the paper's latent DPM on the codes) "
                          f"or 'gaussian' (a Gaussian code prior){extra}")


def wants_latent(model_cfg: Any) -> bool:
    """Whether this model config asks for the latent code generator."""
    return getattr(model_cfg, "code_prior", None) == "latent" and isinstance(getattr(model_cfg, "latent", None),
                                                                             LatentConfig)


def weights_checksum(model: torch.nn.Module) -> str:
    """SHA-256 (12 hex digits) of a model's state dict: the trained encoder the codes come from."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()[:12]


def request(cfg: RunConfig, cfg_hash: str, model: torch.nn.Module) -> stages.StageRequest:
    """The latent stage of this run (keyed by method, config hash, seed and trained weights)."""
    source = f"{cfg.method}/{cfg_hash}/seed{cfg.seed}/weights-{weights_checksum(model)}"
    return stages.StageRequest("latent", cfg.dataset, cfg.data, cfg.model.latent, seed=0, source=source)


@torch.no_grad()
def encode_codes(model: Method, data: ImageData, num: int, batch: int, device: torch.device,
                 progress: bool = False) -> np.ndarray:
    """Codes [M, D] float32 of the first ``num`` images the method trained on (``data.training_pool()``: the training
    split, or every image where the run trains on all, as Diff-AE's CelebA), all when ``num`` is 0, never flipped
    (Diff-AE's ``infer_whole_dataset``: flip_prob 0, EMA encoder, in order)."""
    from tqdm.auto import tqdm

    pool = data.training_pool()
    idx = np.arange(len(data)) if pool is None else np.asarray(pool)
    if num:
        idx = idx[:num]
    model.eval()
    out = []
    for i in tqdm(range(0, len(idx), batch), desc="encoding codes", unit="batch", disable=not progress):
        x = to_model_input(data.images(idx[i : i + batch])).to(device)
        out.append(model.encode(x).float().cpu().numpy())
    return np.concatenate(out)


def ensure_latent(cfg: RunConfig, cfg_hash: str, model: Method, data: ImageData, device: torch.device, out: Path,
                  log: Log, progress: bool = True) -> stages.Artifact | None:
    """Build or reuse the run's latent stage and attach it to ``model``; None when the config does not ask for it."""
    if not wants_latent(cfg.model):
        return None
    lcfg: LatentConfig = cfg.model.latent
    req = request(cfg, cfg_hash, model)

    def codes_for(r: stages.StageRequest) -> CodeData:
        path = r.dir(out) / "codes.npy"
        if path.exists():
            codes = np.load(path)
            log(f"latent stage: reusing {len(codes)} encoded codes ({path})")
        else:
            codes = encode_codes(model, data, lcfg.num_codes, lcfg.encode_batch, device, progress)
            buf = io.BytesIO()
            np.save(buf, codes)
            store.atomic_write_bytes(path, buf.getvalue())
            log(f"latent stage: encoded {len(codes)} training codes of size {codes.shape[1]}")
        return CodeData(codes, f"{cfg.dataset}-codes")

    artifact = stages.ensure(req, codes_for, device, out, log, progress)
    model.attach_code_model(load_prior(lcfg, artifact, device), lcfg.describe())
    return artifact
