"""Each method's DDIM convention pinned against its official sampler.

The expected values come from running the official functions in a scratch copy (never committed) with the stub
networks below on the tensors XT / X0 (float32, shape [2, 1, 1, 2]):

    eps(x, t) = 0.8 x + 1e-3 t,        G(x, t) = 0.5 x - 2e-4 t   (t the original timestep the network receives)

    Diff-AE   phizaz/diffae @ 00c57d3f626f28bf9ed8aff58d90baab25de3af4, diffusion/base.py
              (SpacedDiffusionBeatGans, space_timesteps(1000, "ddim10"), ddim_sample_loop_progressive and
              ddim_reverse_sample_loop, clip_denoised=True by default)
    PDAE      ckczzj/PDAE @ 4f9c29a21b4af03ba3ee104c0f0665e9390ff51b, diffusion/ddim.py + gaussian_diffusion.py
              (get_ddim_betas_and_timestep_map("ddim10"), shift_ddim_sample_loop / shift_ddim_encode_loop with a
              decoder returning (eps, G), ddim_sample_loop)
    DisDiff   ThomasMrY/DisDiff @ c3ba0c7e69a2581be4df3c12e7c37a81317f244b, ldm/models/diffusion/ddim.py (DDIMSampler,
              S = 10, apply_model returning Return_grad(eps, G), noise_like replaced by randn from
              Generator().manual_seed(0))
    InfoDiff. isjakewong/InfoDiffusion @ 75c7b31953692af2f122e7fe8715902e160c9de5 (main), sampling.py
              (DiffusionProcess, deterministic=True, beta 1e-5 -> 1e-2, randn_like replaced by randn from
              Generator().manual_seed(0); reverse_sampling)
"""

from __future__ import annotations

import numpy as np
import torch

from benchbench import ddim
from benchbench.diffusion import Schedule

XT = torch.tensor([-2.5, -0.7, 0.2, 1.8]).view(2, 1, 1, 2)
X0 = torch.tensor([-0.9, -0.3, 0.4, 0.95]).view(2, 1, 1, 2)
LINEAR = Schedule.linear(1000)


def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.8 * x + 1e-3 * t.float().view(-1, 1, 1, 1)


def grad(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 * x - 2e-4 * t.float().view(-1, 1, 1, 1)


def shifted(schedule: Schedule):
    """eps - sqrt(1 - ab_t) G: the sampling-time shift of PDAE (diffusion/ddim.py) and DisDiff (ddim_coef)."""
    ab = schedule.alphas_bar

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return eps(x, t) - (1 - ab[t]).sqrt().float().view(-1, 1, 1, 1) * grad(x, t)

    return fn


def close(x: torch.Tensor, expected: list[float], rtol: float = 2e-5, atol: float = 2e-6) -> None:
    torch.testing.assert_close(x.flatten(), torch.tensor(expected), rtol=rtol, atol=atol)


def test_diffae_grid_clipped_trajectory_and_inversion():
    grid = ddim.diffae_grid(LINEAR, 10)
    assert grid.t.tolist() == list(range(0, 1000, 100)) and grid.end == 1.0
    traj: list[torch.Tensor] = []
    out = ddim.sample(eps, XT.clone(), grid, clip=True, trajectory=traj)
    official_x0 = [  # pred_xstart of each step, t = 900 first
        [-1.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0],
        [-1.0, -1.0, -1.0, -0.5036945], [-1.0, -1.0, -0.9736093, 0.0030165], [-1.0, -1.0, -0.6441078, 0.2954175],
        [-1.0, -0.938433, -0.5106376, 0.4688313], [-1.0, -0.9245021, -0.4751194, 0.5537753],
        [-1.0, -0.9251367, -0.4747947, 0.5562965],
    ]
    assert len(traj) == 10
    for got, want in zip(traj, official_x0):
        close(got, want)
    close(out, official_x0[-1])  # the last step lands on ab = 1: the sample is the clipped x0_hat
    inv = ddim.diffae_grid(LINEAR, 10, invert=True)
    assert inv.t.tolist() == grid.t.tolist() and inv.end == 0.0  # no extra step from ab = 1; the last to ab = 0
    traj = []
    x_T = ddim.invert(eps, X0.clone(), inv, clip=True, trajectory=traj)
    assert len(traj) == 10
    close(traj[-1], [-1.0, -1.0, -1.0, -1.0])
    close(x_T, [-0.6494336, 0.2540433, 1.1810573, 1.8361603])


def test_diffae_stride_rule():
    assert ddim.ddim_stride_timesteps(1000, 20).tolist() == list(range(0, 1000, 50))
    assert ddim.ddim_stride_timesteps(1000, 7).tolist() == list(range(0, 1000, 143))  # smallest stride giving 7


def test_pdae_grid_shift_and_clipping():
    m = ddim.pdae_timestep_map(1000, 10)
    assert m.tolist() == [0, 99, 199, 299, 399, 499, 599, 699, 799, 899, 999]
    grid, inv = ddim.pdae_grid(LINEAR, 10), ddim.pdae_grid(LINEAR, 10, invert=True)
    assert grid.t.tolist() == m[1:].tolist() and grid.end == float(LINEAR.alphas_bar[0])  # ends at ab_0, not 1
    assert inv.t.tolist() == m[:-1].tolist() and inv.end == float(LINEAR.alphas_bar[999])
    close(ddim.sample(shifted(LINEAR), XT.clone(), grid, clip=True), [-1.024889, -1.0068872, -0.6584961, 1.0178883])
    close(ddim.invert(shifted(LINEAR), X0.clone(), inv, clip=True), [-0.5024928, 0.3830657, 0.8924506, 1.1157842])
    close(ddim.sample(eps, XT.clone(), grid, clip=True), [-1.024889, -0.9367449, -0.4842921, 0.5537685])
    # The training coefficient sqrt(alpha_t)(1 - ab_{t-1}) / sqrt(1 - ab_t) differs from DDIM's sqrt(1 - ab_t)
    # near t = 0 (official gaussian_diffusion.shift_coef and ddim.sqrt_one_minus_alphas_cumprod at t = 0, 1, 500).
    train_coef = LINEAR.pdae_shift_coef[[0, 1, 500]].float()
    torch.testing.assert_close(train_coef, torch.tensor([0.0, 0.0067430055, 0.9546525]))
    torch.testing.assert_close((1 - LINEAR.alphas_bar[[0, 1, 500]]).sqrt().float(),
                               torch.tensor([0.01, 0.014829293, 0.9603142]))


def test_ldm_grid_offset_end_and_eta():
    s = Schedule.ldm_linear(1000)
    grid = ddim.ldm_grid(s, 10)
    assert grid.t.tolist() == list(range(1, 1000, 100)) and grid.end == float(s.alphas_bar[0])
    close(ddim.sample(shifted(s), XT.clone(), grid), [-20.649168, -10.6093044, -5.5893745, 3.3349459], rtol=1e-4)
    out = ddim.sample(shifted(s), XT.clone(), grid, eta=1.0, generator=torch.Generator().manual_seed(0))
    close(out, [-13.1361723, -8.8570747, -10.3515282, -0.3944114], rtol=1e-4)


def test_infodiffusion_full_loop_quirk():
    s = Schedule.linear(1000, 1e-5, 1e-2)
    grid = ddim.infodiffusion_grid(s)
    assert grid.t.tolist() == list(range(1, 1000)) and grid.end == 1.0
    np.testing.assert_allclose(grid.ab[:2], [1 - 1e-5, float(s.alphas_bar[1])])  # queried at t, level ab_{t-1}
    out = ddim.sample(eps, XT.clone(), grid, eta=0.01, generator=torch.Generator().manual_seed(0))
    close(out, [-3.8290024, -2.1140535, -1.2770934, 0.2377834], rtol=1e-4)
    inv = ddim.invert(eps, X0.clone(), ddim.infodiffusion_grid(s, invert=True))
    close(inv, [0.5917641, 1.222317, 1.9579608, 2.535965], rtol=1e-4)


STD = 0.25  # data x_0 ~ N(0, STD^2 I) (inside [-1, 1], so clipping x0_hat is harmless): eps* is linear in x_t


def oracle(schedule: Schedule):
    def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = schedule.gather(schedule.alphas_bar, t, x_t)
        return (1 - ab).sqrt() * x_t / (ab * STD**2 + 1 - ab)

    return fn


def test_official_grids_round_trip_gaussian_data():
    """Inversion then sampling on each official grid recovers data from the exact predictor, with the first-order
    ODE error shrinking in K (Diff-AE's x_T is taken at ab = 0 and read back at ab_{t_K}, ~4e-5 apart here)."""
    x0 = STD * torch.randn(16, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x0 = x0.clamp(-0.99, 0.99)
    for build, clip in ((ddim.diffae_grid, True), (ddim.pdae_grid, True), (ddim.ldm_grid, False)):
        s = Schedule.ldm_linear(1000) if build is ddim.ldm_grid else LINEAR
        errors = []
        for k in (20, 100):
            x_T = ddim.invert(oracle(s), x0, build(s, k, invert=True), clip=clip)
            errors.append(float((ddim.sample(oracle(s), x_T, build(s, k), clip=clip) - x0).abs().max()))
        assert errors[1] < errors[0] / 2 and errors[1] < 0.15, (build.__name__, errors)  # LDM: 0.33, 0.10
    s = Schedule.linear(1000, 1e-5, 1e-2)
    back = ddim.sample(oracle(s), ddim.invert(oracle(s), x0, ddim.infodiffusion_grid(s, invert=True)),
                       ddim.infodiffusion_grid(s))
    assert float((back - x0).abs().max()) < 0.02
