"""Method.protocol() and Method.deviations(): what each diffusion method records about how it samples and what still
differs from its paper (the contract benchbench describe and result.json rely on)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import torch

from benchbench.datasets.base import DataSpec
from benchbench.method import Method, config_differences, paper_differences
from benchbench.methods import diffae, disdiff, infodiffusion, pdae
from benchbench.methods.dpm import DPM
from benchbench.methods.ldm import LatentDPM
from benchbench.stages import Artifact

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = DataSpec("shapes3d-synth", 3, 16, "synthetic", family="shapes3d")


def _artifact(module: torch.nn.Module, folder: Path, kind: str) -> Artifact:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    path = folder / f"{kind}.pt"
    path.write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    return Artifact(kind, path, sha, "test", sha)


def _smoke(name: str, tmp_path: Path) -> Method:
    if name == "diffae":
        return diffae.DiffAE(diffae.PRESETS["smoke"].model, SHAPES)
    if name == "infodiffusion":
        return infodiffusion.InfoDiffusion(infodiffusion.PRESETS["smoke"].model, SHAPES)
    if name == "pdae":
        cfg = pdae.PRESETS["smoke"].model
        return pdae.PDAE(cfg, SHAPES, {"dpm": _artifact(DPM(cfg.dpm, SHAPES), tmp_path, "ddpm")})
    cfg = disdiff.PRESETS["smoke"].model
    return disdiff.DisDiff(cfg, SHAPES, {"ldm": _artifact(LatentDPM(cfg.ldm, SHAPES), tmp_path, "ldm")})


def test_base_class_defaults() -> None:
    m = Method(None, SHAPES)
    assert m.protocol() == {} and m.deviations() == []


@pytest.mark.parametrize("name", ["diffae", "pdae", "disdiff", "infodiffusion"])
def test_every_diffusion_method_records_its_protocol_and_deviations(name: str, tmp_path: Path) -> None:
    m = _smoke(name, tmp_path)
    proto = m.protocol()
    assert {"sampler", "inversion", "generator"} <= set(proto) and all(isinstance(v, str) and v for v in proto.values())
    assert f"K={m.cfg.sample_steps}" in proto["sampler"] or "all 1000 steps" in proto["sampler"]
    dev = m.deviations()
    assert dev and all(isinstance(line, str) and "\n" not in line for line in dev)
    assert any("shapes3d" in line for line in dev) or name == "disdiff"  # DisDiff has a Shapes3D config
    assert any(line.startswith("model config differs from the paper preset") for line in dev)  # a smoke preset


def test_sampler_text_names_the_official_conventions(tmp_path: Path) -> None:
    assert "x0 clipped" in _smoke("diffae", tmp_path).protocol()["sampler"]
    assert "last step to ab = 0," in _smoke("diffae", tmp_path).protocol()["inversion"]
    p = _smoke("pdae", tmp_path).protocol()
    assert "t = 199, 399, ..., 999" in p["sampler"] and "sqrt(1 - ab_t) G" in p["sampler"]
    d = _smoke("disdiff", tmp_path).protocol()
    assert "t = 1, 201, ..., 801" in d["sampler"] and "eta=1" in d["sampler"] and "non-EMA" in d["frozen"]


def test_paper_presets_have_no_config_difference_line() -> None:
    for module, name in ((diffae, "diffae"), (pdae, "pdae"), (disdiff, "disdiff"), (infodiffusion, "infodiffusion")):
        for family in ("celeba", "shapes3d"):
            paper = module.PRESETS["paper"]
            chosen = paper.get(family, paper.get("default"))
            assert paper_differences(module.PRESETS, chosen.model, family, name) == []
    quick = diffae.PRESETS["quick"].model
    line = config_differences(quick, diffae.PRESETS["paper"]["celeba"].model)
    assert line is not None and "z_dim 16 (paper 512)" in line and "unet (" in line


def test_paper_presets_train_what_the_papers_trained() -> None:
    from benchbench.config import resolve

    assert resolve("diffae", "celeba", "paper", 0).data.split == "all"  # Diff-AE's LMDB: all 202,599 images
    assert resolve("diffae", "shapes3d", "paper", 0).data.split == "train"  # (ground-truth sets ignore it)
    dpm = pdae.PRESETS["paper"]["celeba"].model.dpm.train
    assert dpm.grad_clip == 0.0 and not dpm.amp  # PDAE's own trainer: no clipping, enable_amp False
    d = resolve("disdiff", "celeba", "paper", 0)
    assert (d.data.split, d.data.flip) == ("all", False)  # ldm/data/dis.py Celebarain: whole LMDB, no augment
    ldm = d.model.ldm
    assert (ldm.train.lr, ldm.train.weight_decay, ldm.train.warmup_steps) == (2.56e-4, 0.01, 10_000)
    ae = ldm.autoencoder
    assert ae.mid_attention and ae.beta_on_codebook and ae.train.batch_size == 256  # accumulate 2 x 128
    assert d.model.frozen_weights == "online" and d.model.eta == 1.0 and d.model.sample_steps == 200
    i = resolve("infodiffusion", "celeba", "paper", 0)
    assert i.data.crop == "center" and i.train.batch_size == 32 and i.model.sampler == "official"
    # quick presets keep their sizes: no mid attention in the quick autoencoder, stride-grid DDIM for InfoDiffusion
    assert not disdiff.PRESETS["quick"].model.ldm.autoencoder.mid_attention
    assert infodiffusion.PRESETS["quick"].model.sampler == "ddim"
