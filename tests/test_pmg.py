"""Diffusion posterior and the posterior-mean-gap metric: closed form against the direct formula."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchbench.diffusion import Schedule
from benchbench.metrics.pmg import pmg_metric, posterior_mean_gap, timestep_grid
from benchbench.metrics.settings import PMGSettings

S = Schedule.linear(1000)


def test_posterior_mean_is_the_gaussian_product() -> None:
    """q(x_{t-1} | x_t, x_0) from q(x_{t-1} | x_0) q(x_t | x_{t-1}): precision-weighted means."""
    x0, xt = torch.tensor([0.3, -0.7], dtype=torch.float64), torch.tensor([1.1, 0.2], dtype=torch.float64)
    for t in (1, 10, 500, 999):
        ab_prev, a, b = S.alphas_bar[t - 1], S.alphas[t], S.betas[t]
        precision = 1 / (1 - ab_prev) + a / b
        mean = (ab_prev.sqrt() * x0 / (1 - ab_prev) + a.sqrt() * xt / b) / precision
        got = S.posterior_mean(x0[None], xt[None], torch.tensor([t]))[0]
        assert torch.allclose(got, mean, rtol=1e-12, atol=1e-14)
        assert S.posterior_variance[t] == pytest.approx(float(1 / precision), rel=1e-10)


def test_schedules() -> None:
    assert S.betas[0] == pytest.approx(1e-4) and S.betas[-1] == pytest.approx(0.02)
    ldm = Schedule.ldm_linear()
    assert ldm.betas[0] == pytest.approx(0.0015) and ldm.betas[-1] == pytest.approx(0.0155)
    assert torch.all(Schedule.constant(10, 0.008).betas == 0.008)
    x0, eps, t = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4), torch.tensor([0, 400, 999])
    xt = S.q_sample(x0, t, eps)
    assert torch.allclose(S.predict_x0(xt, t, eps), x0, atol=1e-4)
    assert torch.allclose(S.predict_eps(xt, t, x0), eps, atol=1e-4)


class Recorder:
    """A toy model: eps_theta = a damped guess, the shifted one halves its error; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __call__(self, x_t, t, x0):
        self.calls.append((x_t.double(), t, x0.double()))
        eps_true = S.predict_eps(x_t, t, x0)
        eps_pre = 0.8 * eps_true + 0.05
        eps_shift = eps_pre + 0.5 * (eps_true - eps_pre)  # a learned shift that halves the error
        return eps_pre, eps_shift


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_closed_form_equals_direct_posterior_means(noise: str) -> None:
    x0 = torch.rand(3, 2, 4, 4, dtype=torch.float64) * 2 - 1
    ts = np.array([0, 1, 5, 300, 999])
    model = Recorder()
    curve = posterior_mean_gap(model, x0, S, ts, noise=noise, batch_size=4, generator=torch.Generator().manual_seed(0))
    direct = {row: np.zeros(len(ts)) for row in ("pre", "shift")}
    for x_t, t, x0_b in model.calls:
        eps_pre, eps_shift = Recorder()(x_t, t, x0_b)
        mu_true = S.posterior_mean(x0_b, x_t, t)
        for row, eps in (("pre", eps_pre), ("shift", eps_shift)):
            mu_model = S.posterior_mean(S.predict_x0(x_t, t, eps), x_t, t)
            per = (mu_true - mu_model).pow(2).flatten(1).mean(1)
            for ti, g in zip(t.tolist(), per.tolist()):
                direct[row][list(ts).index(ti)] += g / len(x0)
    np.testing.assert_allclose(curve["gap_pretrained"], direct["pre"], rtol=1e-9)
    np.testing.assert_allclose(curve["gap_shifted"], direct["shift"], rtol=1e-9)


def test_gap_at_t0_is_x0_error() -> None:
    x0 = torch.rand(4, 1, 3, 3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)

    def model(x_t, t, x0_b):
        return S.predict_eps(x_t, t, x0_b) + 0.1, None  # x0_hat off by a known amount

    curve = posterior_mean_gap(model, x0, S, np.array([0]), generator=gen)
    ab = S.alphas_bar[0]
    expected = float((1 - ab) / ab * 0.01)  # (x0 - x0_hat)^2 = (1 - ab)/ab * 0.1^2
    assert curve["gap_pretrained"][0] == pytest.approx(expected, rel=1e-9)
    assert np.isnan(curve["gap_shifted"]).all()


def test_grid_and_registered_metric_write_csv_and_figure(tmp_path: Path) -> None:
    grid = timestep_grid(1000)
    assert grid[0] == 0 and 20 in grid and 990 in grid and 999 in grid and len(grid) == 21 + 97 + 1
    assert len(timestep_grid(1000, "full")) == 1000
    x0 = torch.rand(2, 1, 4, 4) * 2 - 1
    res = pmg_metric(Recorder(), S, x0, PMGSettings(num_images=2, batch_size=64), 0, tmp_path)
    assert res.value == pytest.approx(res.extras["mean_gap_shifted"])
    assert res.extras["fraction_t_shift_lower"] > 0.9  # the toy shift moves eps_hat toward the truth
    lines = (tmp_path / "pmg.csv").read_text().splitlines()
    assert lines[0] == "t,gap_pretrained,gap_shifted" and len(lines) == 1 + 119
    assert (tmp_path / "pmg.png").stat().st_size > 1000


def test_scalar_is_the_uniform_mean_over_all_steps() -> None:
    """The default grid's 119 points weight t <= 20 about 8x; the scalar interpolates them to all 1,000 steps, so it
    estimates the grid=full scalar (the plain mean of all steps) rather than the grid's average."""
    from benchbench.metrics.pmg import uniform_mean

    t_full = np.arange(1000)
    gap = np.where(t_full < 21, 10.0, 1.0)  # large only near t = 0, as the real curves
    grid = timestep_grid(1000)
    assert uniform_mean(t_full, gap, 1000) == pytest.approx(gap.mean())  # exact on the full grid: 1.189
    assert uniform_mean(grid, gap[grid], 1000) == pytest.approx(1.2295)  # 1.189 + the interpolated ramp 20..30
    assert gap[grid].mean() == pytest.approx((21 * 10 + 98 * 1) / 119)  # 2.588: what the old scalar reported
    x0 = torch.rand(2, 1, 4, 4) * 2 - 1
    res = pmg_metric(Recorder(), S, x0, PMGSettings(num_images=2, grid="full", batch_size=512), 0, None)
    assert res.value == pytest.approx(res.extras["grid_mean_shifted"])  # full grid: both means agree
    assert res.extras["scalar"] == "uniform mean over all T steps" and res.extras["num_timesteps"] == 1000


def test_pdae_figure_protocol() -> None:
    """PDAE's sampler/gap_measure.py: 1,000 images drawn with replacement, all T steps, uniform noise."""
    from benchbench.metrics.pmg import image_indices, resolve_settings

    eff = resolve_settings(PMGSettings(protocol="pdae"))
    assert (eff.grid, eff.noise, eff.num_images) == ("full", "uniform", 1000)
    idx = image_indices(eff, 0, 50)  # with replacement: more draws than images
    assert len(idx) == 1000 and idx.max() < 50 and (np.diff(idx) >= 0).all()
    assert len(image_indices(PMGSettings(num_images=80), 0, 50)) == 50  # benchbench: without replacement
    with pytest.raises(Exception, match="pmg protocol 'pda'"):
        resolve_settings(PMGSettings(protocol="pda"))
