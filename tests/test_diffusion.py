"""DDIM/DDPM samplers and DDIM inversion against a model whose optimal noise predictor is known."""

from __future__ import annotations

import pytest
import torch

from benchbench.diffusion import Schedule, ddim_encode, ddim_sample, ddpm_sample, respaced_timesteps

S = Schedule.linear(1000)
STD = 0.5  # data x_0 ~ N(0, STD^2 I): the MMSE noise predictor is linear in x_t


def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[eps | x_t] for Gaussian data: sqrt(1 - ab) x_t / (ab STD^2 + 1 - ab)."""
    ab = S.gather(S.alphas_bar, t, x_t)
    return (1 - ab).sqrt() * x_t / (ab * STD**2 + 1 - ab)


def test_respacing() -> None:
    assert list(respaced_timesteps(1000, 10)) == list(range(0, 1000, 100))
    r = respaced_timesteps(1000, 7)
    assert len(r) == 7 and r[0] == 0 and r[-1] == 999
    with pytest.raises(ValueError):
        respaced_timesteps(10, 11)


def test_ddim_inversion_round_trip_improves_with_steps() -> None:
    x0 = STD * torch.randn(16, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    errors = []
    for steps in (20, 100, 500):
        x_T = ddim_encode(oracle, x0, S, steps)
        back = ddim_sample(oracle, x_T, S, steps)
        errors.append(float((back - x0).abs().max()))
    assert errors[2] < errors[1] < errors[0] and errors[2] < 0.03  # first-order ODE discretisation
    # The code is (close to) a standard normal draw: the ODE maps N(0, STD^2) onto N(0, 1).
    x_T = ddim_encode(oracle, STD * torch.randn(4000, 1, dtype=torch.float64), S, 200)
    assert float(x_T.std()) == pytest.approx(1.0, abs=0.05)


def test_samplers_recover_the_data_distribution() -> None:
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(4000, 1, dtype=torch.float64, generator=gen)
    assert float(ddim_sample(oracle, noise, S, 200).std()) == pytest.approx(STD, abs=0.03)
    assert float(ddim_sample(oracle, noise, S, 200, eta=1.0, generator=gen).std()) == pytest.approx(STD, abs=0.04)
    # Ancestral DDPM with beta_tilde under-disperses Gaussian data, but is exact for a point mass:
    # with x_0 known, every step samples the true posterior q(x_{t-1} | x_t, x_0).
    small = Schedule.linear(100, 1e-3, 0.2)

    def point_mass(x_t, t):
        ab = small.gather(small.alphas_bar, t, x_t)
        return (x_t - ab.sqrt() * 0.7) / (1 - ab).sqrt()

    samples = ddpm_sample(point_mass, noise, small, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(samples, torch.full_like(samples, 0.7), atol=1e-9)
    again = ddpm_sample(point_mass, noise, small, generator=torch.Generator().manual_seed(2))
    assert torch.equal(samples, again)
