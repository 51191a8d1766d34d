"""DisDiff (methods.md §6): loss terms on tiny tensors, the frozen re-encoder, per-factor PCA, stages, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

from benchbench.config import resolve
from benchbench.datasets.base import DataSpec
from benchbench.errors import ConfigError, TrainingError
from benchbench.methods.disdiff import (
    PRESETS,
    DisDiff,
    DisDiffConfig,
    FactorEncoder,
    disentangle_loss,
    factor_embedding,
    factor_pca,
)
from benchbench.methods.dpm import DPM
from benchbench.methods.ldm import LatentDPM
from benchbench.registry import methods
from benchbench.stages import Artifact

SPEC = DataSpec("shapes3d-synth", 3, 16, "synthetic")
CFG: DisDiffConfig = PRESETS["smoke"].model  # N = 3 factors of k = 4 dims


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


def _artifact(module: torch.nn.Module, folder: Path, kind: str) -> Artifact:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    if isinstance(module, LatentDPM):
        module.scale.fill_(0.5)
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    path = folder / f"{kind}.pt"
    path.write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    return Artifact(kind, path, sha, "test", sha)  # a stage without EMA: its weights are the non-EMA ones too


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    """Random-weight frozen models: a pixel DPM ("dpm") and a latent DPM with its autoencoder ("ldm")."""
    folder = tmp_path_factory.mktemp("stages")
    return {"dpm": _artifact(DPM(CFG.dpm, SPEC), folder, "ddpm"), "ldm": _artifact(LatentDPM(CFG.ldm, SPEC), folder,
                                                                                     "ldm")}


def _model(stages: dict[str, Artifact], space: str = "image", **kw: object) -> DisDiff:
    from dataclasses import replace

    torch.manual_seed(0)
    return DisDiff(replace(CFG, space=space, **kw), SPEC, stages)


def _x(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_disentangle_loss_hand_values() -> None:
    # N = 2 factors of k = 2 dims, one example with c = 0.
    z = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    r = torch.tensor([[3.0, 4.0, 1.0, 1.0]])  # factor 0 is 5 away from z, factor 1 on z
    r_c = torch.tensor([[0.0, 0.0, 1.0, 2.0]])  # factor 0 moved onto z, factor 1 1 away
    l_in, l_va = disentangle_loss(z, r, r_c, torch.tensor([0]), 2)
    # d^n = (5, 0), d^p = (0, 1): logits d^n - d^p = (5, -1); d = ||r - r^c|| = (5, 1).
    assert l_in.item() == pytest.approx(-5 + math.log(math.exp(5) + math.exp(-1)), abs=1e-6)
    assert l_va.item() == pytest.approx(-5 + math.log(math.exp(5) + math.exp(1)), abs=1e-6)
    # With target c = 1 the same distances give the other class's cross-entropy.
    l_in1, l_va1 = disentangle_loss(z, r, r_c, torch.tensor([1]), 2)
    assert l_in1.item() == pytest.approx(1 + math.log(math.exp(5) + math.exp(-1)), abs=1e-6)
    assert l_va1.item() == pytest.approx(-1 + math.log(math.exp(5) + math.exp(1)), abs=1e-6)


def test_disentangle_loss_does_not_train_through_z() -> None:
    z = torch.randn(3, 6, requires_grad=True)
    r, r_c = torch.randn(3, 6), torch.randn(3, 6, requires_grad=True)
    l_in, l_va = disentangle_loss(z, r, r_c, torch.tensor([0, 1, 2]), 3)
    (l_in + l_va).sum().backward()
    assert z.grad is None and r_c.grad is not None and r_c.grad.abs().sum() > 0


def test_factor_pca_equals_sklearn_per_chunk() -> None:
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 3 * 4)) @ rng.normal(size=(12, 12))
    pca = factor_pca(codes, 3)
    scores = pca(codes[:50])
    for c in range(3):
        ref = PCA(n_components=1).fit(codes[:, 4 * c:4 * c + 4]).transform(codes[:50, 4 * c:4 * c + 4])[:, 0]
        sign = np.sign(ref @ scores[:, c])
        np.testing.assert_allclose(scores[:, c], sign * ref, atol=1e-9)
    assert scores.shape == (50, 3)
    np.testing.assert_allclose(np.linalg.norm(pca.dirs, axis=1), 1.0)


def test_factor_embedding_is_orthogonal() -> None:
    w = torch.randn(8, 8, dtype=torch.float64)
    p = factor_embedding(w)
    torch.testing.assert_close(p @ p.T, torch.eye(8, dtype=torch.float64))


def test_encoder4_layout() -> None:
    enc = FactorEncoder(3, 64, 128, 192)
    convs = [m for m in enc.net if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 4 and all(c.kernel_size == (4, 4) for c in convs)
    # Encoder4's quirk: no ReLU after the third conv's BatchNorm.
    kinds = [type(m).__name__ for m in enc.net][:11]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d",
                     "Conv2d", "BatchNorm2d", "ReLU"]
    assert enc(torch.zeros(2, 3, 64, 64)).shape == (2, 192)
    assert FactorEncoder(3, 32, 8, 12)(torch.zeros(2, 3, 32, 32)).shape == (2, 12)


def _patched_loss(model: DisDiff, x: torch.Tensor, g_scale: float = 1.0) -> tuple[dict, dict]:
    """Run ``model.loss`` with a hand-made G that does not depend on z; capture what it used."""
    seen: dict = {}
    original = model.fields

    def fields(y_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eps, _ = original(y_t, t, z)
        g = g_scale * torch.ones(y_t.shape[0], model.cfg.num_factors, *y_t.shape[1:]) * torch.arange(
            1.0, model.cfg.num_factors + 1)[None, :, None, None, None]
        g.requires_grad_(True)
        seen.update(eps=eps, g=g, y_t=y_t, t=t)
        return eps, g

    model.fields = fields  # type: ignore[method-assign]
    torch.manual_seed(3)
    return model.loss(x), seen


def test_reconstruction_uses_the_pdae_coefficient_and_l1(stages: dict[str, Artifact]) -> None:
    model = _model(stages).train()
    x = _x()
    terms, seen = _patched_loss(model, x)
    s, t = model.schedule, seen["t"]
    torch.manual_seed(3)
    _ = model.encoder  # the draws: t, then eps
    torch.randint(0, s.num_steps, (4,))  # t
    noise = torch.randn_like(x)
    coef = s.pdae_shift_coef[t].float().view(-1, 1, 1, 1)
    eps_hat = seen["eps"] - coef * seen["g"].sum(1)
    assert terms["l_r"].item() == pytest.approx(F.l1_loss(eps_hat, noise).item(), rel=1e-5)


def test_disentangling_term_uses_sqrt_one_minus_alpha_bar_and_a_detached_weight(stages: dict[str, Artifact]) -> None:
    model = _model(stages, dis_weight=2.0).train()
    x = _x()
    terms, seen = _patched_loss(model, x)
    s, t, y_t, eps = model.schedule, seen["t"], seen["y_t"], seen["eps"]
    torch.manual_seed(3)
    torch.randint(0, s.num_steps, (4,))
    torch.randn_like(x)
    c = torch.randint(0, model.cfg.num_factors, (4,))
    g_c = seen["g"][torch.arange(4), c].detach()
    ab = s.alphas_bar[t].float().view(-1, 1, 1, 1)
    y0_c = (y_t - (1 - ab).sqrt() * (eps - (1 - ab).sqrt() * g_c)) / ab.sqrt()
    y0_u = (y_t - (1 - ab).sqrt() * eps) / ab.sqrt()
    w = (y0_u - y0_c).square().flatten(1).mean(1)
    assert terms["w"].item() == pytest.approx(w.mean().item(), rel=1e-4)
    assert not terms["w"].requires_grad
    # y0 - y0^c = -(1 - ab) G_c / sqrt(ab) with the sqrt(1 - ab) coefficient (not PDAE's); G_c = c + 1 here.
    expected = (1 - ab.flatten()) ** 2 / ab.flatten() * (c + 1.0) ** 2
    torch.testing.assert_close(w, expected, rtol=1e-4, atol=1e-6)
    total = terms["loss"] - terms["l_r"]
    assert total.item() > 0


def test_the_disentangling_loss_reaches_the_encoder_only_through_g(stages: dict[str, Artifact]) -> None:
    """With a G that ignores z, L_dis gives the encoder no gradient: the re-encoder E' has frozen weights."""
    model = _model(stages, dis_weight=1.0).train()
    terms, seen = _patched_loss(model, _x())
    (terms["loss"] - terms["l_r"]).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoder.parameters())
    assert seen["g"].grad is not None and seen["g"].grad.abs().sum() > 0
    # BatchNorm running statistics are not updated by the frozen re-encoder's eval-mode passes.
    model2 = _model(stages)
    before = [b.clone() for b in model2.encoder.buffers()]
    model2.frozen_encode(_x())
    assert all(torch.equal(a, b) for a, b in zip(before, model2.encoder.buffers(), strict=True))
    assert model2.encoder.training


def test_full_loss_trains_e_and_g_but_not_the_frozen_model(stages: dict[str, Artifact]) -> None:
    for space in ("image", "latent"):
        model = _model(stages, space=space).train()
        with torch.no_grad():  # G starts with zero heads (no gradient to E on the first step): make it non-zero
            for p in model.shift.parameters():
                p.add_(0.05 * torch.randn_like(p))
        torch.manual_seed(0)
        model.loss(_x())["loss"].backward()
        assert all(p.grad is None for p in model.frozen.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
        assert model.orth_weight.grad is not None
        names = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
        assert names == {"encoder", "repre_embed", "orth_weight", "factor_proj", "shift"}


def test_g_runs_each_factor_with_its_own_embedding(stages: dict[str, Artifact]) -> None:
    model = _model(stages).eval()
    with torch.no_grad():  # zero-initialised convs would make every field the same: make G non-trivial
        for p in model.shift.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = _x(2)
    t = torch.tensor([10, 500])
    z = model.encode(x)
    eps, g = model.fields(x, t, z)
    assert g.shape == (2, CFG.num_factors, 3, 16, 16)
    # Factor c's field for example b equals a single-factor pass with that chunk and that factor embedding.
    assert not torch.allclose(g[:, 0], g[:, 1])
    z2 = z.clone()
    z2[:, 4:8] += 1.0  # change factor 1's chunk only
    _, g2 = model.fields(x, t, z2)
    torch.testing.assert_close(g2[:, 0], g[:, 0])
    assert not torch.allclose(g2[:, 1], g[:, 1])


def test_code_postprocess_is_per_factor_pca(stages: dict[str, Artifact]) -> None:
    model = _model(stages)
    codes = np.random.default_rng(0).normal(size=(100, CFG.code_dim))
    out = model.code_postprocess(codes)(codes)
    assert out.shape == (100, CFG.num_factors)
    assert model.encode(_x()).shape == (4, CFG.code_dim)  # raw codes for TAD and ``score``


def test_factor_traversal_moves_one_chunk_along_its_principal_direction(stages: dict[str, Artifact]) -> None:
    model = _model(stages).eval()
    captured = []
    model.decode = lambda y_T, z: captured.append(z.clone()) or torch.zeros(len(z), 3, 16, 16)  # type: ignore
    x = _x(8)
    with torch.no_grad():
        codes = model.encode(x)
        own = model.encode(x[:1])
    frames = model.factor_traversals(x[:1], codes, 5)
    assert frames.shape == (CFG.num_factors, 5, 3, 16, 16)
    pca = factor_pca(codes.double().numpy(), CFG.num_factors)
    base = pca(own.double().numpy())[0]
    scores = pca(codes.double().numpy())
    k = CFG.factor_dim
    for c, zs in enumerate(captured):
        got = pca(zs.double().numpy())
        target = scores[:, c].mean() + scores[:, c].std(ddof=1) * np.linspace(-2, 2, 5)
        np.testing.assert_allclose(got[:, c], target, atol=1e-4)
        others = [j for j in range(CFG.num_factors) if j != c]
        np.testing.assert_allclose(got[:, others], np.tile(base[others], (5, 1)), atol=1e-4)
        unchanged = torch.cat([zs[:, :c * k], zs[:, (c + 1) * k:]], dim=1)
        keep = [i for i in range(CFG.code_dim) if not c * k <= i < (c + 1) * k]
        torch.testing.assert_close(unchanged, own.repeat(5, 1)[:, keep])


def test_stage_requests() -> None:
    stages_of = methods.get("disdiff").meta["stages"]
    latent = stages_of(resolve("disdiff", "shapes3d-synth", "smoke", 0))
    assert set(latent) == {"ldm"} and [n for n, _ in latent["ldm"].deps] == ["autoencoder"]
    image = stages_of(resolve("disdiff", "shapes3d-synth", "smoke", 0, ["model.space=image"]))
    pdae = methods.get("pdae").meta["stages"](resolve("pdae", "shapes3d-synth", "smoke", 0))
    assert image["dpm"].hash() == pdae["dpm"].hash()  # image-space DisDiff shares PDAE's ddpm stage
    kl = stages_of(resolve("disdiff", "shapes3d-synth", "smoke", 0, ["model.ldm.autoencoder.kind=kl",
                                                                     "model.ldm.autoencoder.z_channels=3"]))
    assert kl["ldm"].hash() != latent["ldm"].hash()


def test_cli_latent_builds_both_stages_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchbench", "run", "--method", "disdiff", "--dataset", "shapes3d-synth", "--preset",
         "smoke", "--seeds", "2", "--no-progress", "--metrics", "mig,factorvae", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for kind in ("autoencoder", "ldm"):
        assert proc.stderr.count(f"building stage {kind}/") == 1
    assert proc.stderr.count("reusing cached stage ldm/") == 1
    results = sorted(out.rglob("result.json"))
    assert len(results) == 2
    for path in results:
        record = json.loads(path.read_text())
        assert set(record["stages"]) == {"ldm"} and {"mig", "factorvae"} <= set(record["metrics"])
        assert (path.parent / "traversals.png").exists() and (path.parent / "reconstructions.png").exists()


def test_frozen_weights_option_picks_the_stage_weights(stages: dict[str, Artifact], tmp_path: Path) -> None:
    """frozen_weights="online" freezes the stage's non-EMA weights (the reference's load_ema_ckpt quirk), "ema" the
    EMA ones; a stage without non-EMA weights on record is a one-line error."""
    dpm = DPM(CFG.dpm, SPEC)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in dpm.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    buf = io.BytesIO()
    torch.save(dpm.state_dict(), buf)
    (tmp_path / "artifact-online.pt").write_bytes(buf.getvalue())
    ema = stages["dpm"]
    (tmp_path / "artifact.pt").write_bytes(ema.path.read_bytes())
    both = Artifact("ddpm", tmp_path / "artifact.pt", ema.sha256, "test", hashlib.sha256(buf.getvalue()).hexdigest())
    first = next(iter(dpm.state_dict()))
    online = _model({"dpm": both}, frozen_weights="online")
    torch.testing.assert_close(online.frozen.state_dict()[first], dpm.state_dict()[first])
    frozen_ema = _model({"dpm": both}, frozen_weights="ema")
    torch.testing.assert_close(frozen_ema.frozen.state_dict()[first], ema.load_state()[first])
    old = Artifact("ddpm", ema.path, ema.sha256, "test")  # built before non-EMA weights were kept
    with pytest.raises(TrainingError, match="no non-EMA weights"):
        _model({"dpm": old}, frozen_weights="online")
    with pytest.raises(ConfigError, match="frozen_weights"):
        _model({"dpm": both}, frozen_weights="both")
