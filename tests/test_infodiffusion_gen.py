"""InfoDiffusion's generation as its FID scripts do it (benchbench.methods.infodiffusion_gen; methods.md §7)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

import pytest
import torch

from benchbench.datasets.base import DataSpec
from benchbench.diffusion import Schedule, ddpm_sample
from benchbench.errors import ConfigError
from benchbench.methods.dpm import DPM
from benchbench.methods.infodiffusion import PRESETS, InfoDiffusion
from benchbench.methods.infodiffusion_gen import two_phase_sample, vanilla_down_to
from benchbench.stages import Artifact

# Stub networks on tiny fixed tensors. The pinned values come from the official sampler, isjakewong/InfoDiffusion
# @ 75c7b31 ``sampling.py`` (TwoPhaseDiffusionProcess and DiffusionProcess with deterministic=False, beta1 1e-5,
# betaT 1e-2, diffusion_steps 10, split_step 4), run on these stubs after torch.manual_seed(0); ours draws the same
# noise stream from torch.Generator().manual_seed(0). The official code builds its schedule in float32, where
# 1 - ab_t at the last steps carries ~1e-3 relative error, so the two agree to ~4e-6; a wrong posterior variance
# (beta_t instead of beta_tilde_t) is 0.1 off.
TOL = 1e-5
X_T = torch.linspace(-1, 1, 8).reshape(2, 1, 2, 2)
A = torch.tensor([[0.5, -0.25], [1.0, 2.0]])
OFFICIAL_TWO_PHASE = [-0.9466764330863953, -0.6662178039550781, -0.970180869102478, -0.3172348737716675,
                      -0.08028342574834824, 0.5405141115188599, 0.885532557964325, 1.071244716644287]
OFFICIAL_DDPM = [-0.8918329477310181, -0.6255825757980347, -0.9239269495010376, -0.3043655455112457,
                 -0.08871973305940628, 0.5059217810630798, 0.8323597311973572, 1.001931071281433]


def eps_code(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.1 * x + 0.01 * A.sum(1)[:, None, None, None] + 0.001 * t[:, None, None, None].to(x)


def eps_vanilla(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -0.05 * x + 0.002 * t[:, None, None, None].to(x)


def schedule() -> Schedule:
    return Schedule.linear(10, 1e-5, 1e-2)


def test_ddpm_sampler_equals_official() -> None:
    out = ddpm_sample(eps_code, X_T, schedule(), torch.Generator().manual_seed(0))
    assert out.flatten().tolist() == pytest.approx(OFFICIAL_DDPM, abs=TOL)


def test_two_phase_as_released_equals_official() -> None:
    """The released loop never advances its counter: every step is the vanilla model's."""
    out = two_phase_sample(eps_vanilla, eps_code, X_T, schedule(), 4, "released",
                           torch.Generator().manual_seed(0))
    assert out.flatten().tolist() == pytest.approx(OFFICIAL_TWO_PHASE, abs=TOL)
    alone = ddpm_sample(eps_vanilla, X_T, schedule(), torch.Generator().manual_seed(0))
    assert torch.equal(out, alone)


def test_two_phase_intended_switches_at_split_step() -> None:
    calls: list[tuple[str, int]] = []

    def spy(name, fn):
        def eps(x, t):
            calls.append((name, int(t[0])))
            return fn(x, t)
        return eps

    out = two_phase_sample(spy("vanilla", eps_vanilla), spy("code", eps_code), X_T, schedule(), 4,
                           "intended", torch.Generator().manual_seed(0))
    # step counters 0..4 (t = 9..5) are the vanilla model's, 5..9 (t = 4..0) the code-conditioned decoder's
    assert calls == [("vanilla", t) for t in range(9, 4, -1)] + [("code", t) for t in range(4, -1, -1)]
    assert vanilla_down_to(1000, 500, "intended") == 499 and vanilla_down_to(1000, 500, "released") == 0
    released = two_phase_sample(eps_vanilla, eps_code, X_T, schedule(), 4, "released",
                                torch.Generator().manual_seed(0))
    assert not torch.allclose(out, released)


# The model: which networks draw, from which stage, recorded how.

SPEC = DataSpec("shapes3d-synth", 3, 16, "synthetic")
SMOKE = PRESETS["smoke"].model


def _vanilla_artifact(tmp_path) -> Artifact:
    dpm = DPM(SMOKE.vanilla, SPEC)
    buf = io.BytesIO()
    torch.save(dpm.state_dict(), buf)
    path = tmp_path / "artifact.pt"
    path.write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    return Artifact("ddpm", path, sha, "test", sha)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("two_phase, vanilla_steps", [("released", 1000), ("intended", 501)])
def test_model_two_phase_uses_the_vanilla_stage(tmp_path, two_phase: str, vanilla_steps: int) -> None:
    cfg = replace(SMOKE, code_prior="two-phase", two_phase=two_phase)
    with pytest.raises(ConfigError, match="vanilla"):
        InfoDiffusion(cfg, SPEC)
    model = InfoDiffusion(cfg, SPEC, stages={"vanilla": _vanilla_artifact(tmp_path)}).eval()
    assert not any(p.requires_grad for p in model.vanilla.parameters())
    assert all(id(p) not in {id(q) for q in model.vanilla.parameters()} for p in model.trainable_parameters())
    model.train()
    assert not model.vanilla.training  # the frozen DPM never drops out
    counts = {"vanilla": 0, "code": 0}
    vanilla_eps, unet = model.vanilla.eps, model.unet.forward
    model.vanilla.eps = lambda x, t: counts.__setitem__("vanilla", counts["vanilla"] + 1) or vanilla_eps(x, t)
    model.unet.forward = lambda x, t, c=None: counts.__setitem__("code", counts["code"] + 1) or unet(x, t, c)
    out = model.eval().sample(2, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 16, 16) and out.abs().max() <= 1
    assert counts == {"vanilla": vanilla_steps, "code": 1000 - vanilla_steps}
    assert "two-phase" in model.protocol()["generator"]


@pytest.mark.usefixtures("one_thread")
def test_generate_sampler_ddpm_runs_every_step() -> None:
    model = InfoDiffusion(replace(SMOKE, generate_sampler="ddpm", num_steps=20), SPEC).eval()
    steps = []
    unet = model.unet.forward
    model.unet.forward = lambda x, t, c=None: steps.append(int(t[0])) or unet(x, t, c)
    model.sample(2, torch.Generator().manual_seed(0))
    assert steps == list(range(19, -1, -1))
    assert "ancestral DDPM over all 20 steps" in model.protocol()["generator"]
    assert not any("model.sampler, not the reference FID" in d for d in model.deviations())


def test_two_phase_is_infodiffusions_alone() -> None:
    from benchbench.latent_stage import check_code_prior
    from benchbench.methods.diffae import PRESETS as DIFFAE

    check_code_prior(replace(SMOKE, code_prior="two-phase"))
    with pytest.raises(ConfigError, match="choose 'latent'"):
        check_code_prior(replace(DIFFAE["smoke"].model, code_prior="two-phase"))


def test_describe_checks_the_code_prior_as_run_does() -> None:
    from benchbench.describe import describe

    with pytest.raises(ConfigError, match="model.code_prior='two-phase'"):
        describe("diffae", "celeba-synth", "smoke", ("model.code_prior=two-phase",))


@pytest.mark.parametrize("method", ["diffae", "infodiffusion"])
def test_networks_built_for_other_images_are_named(method: str) -> None:
    """``check_image_nets``: a network built for other images is a one-line error naming it and the fix."""
    from benchbench.registry import methods

    entry = methods.get(method)
    cfg = entry.meta["presets"]["smoke"].model
    with pytest.raises(ConfigError, match=rf"{method}: model.unet is built for 3x16x16 images but 'x' yields "
                                          r"3x32x32; set --set data.resolution=16"):
        entry.meta["check"](cfg, DataSpec("x", 3, 32, "synthetic"))
