"""Unconditional generation throughput (images/s) of each diffusion method's paper preset, with its latent generator.

Builds the method as ``benchbench describe`` does (random weights for the model and its frozen stages, so the cost is
the real one), attaches a random-weight latent code DPM of the method's ``model.latent`` config (what ``benchbench
run`` builds as the ``latent`` stage), and times ``model.sample(n)``: latent sampling, then the method's image sampler
with the step count its paper's FID used, under bf16 autocast on CUDA. Also times the Inception feature pass of
torch-fidelity's FID network (random weights: the cost does not depend on them), so the line "10k FID" estimates a
10,000-sample FID (generation + features of the generated images; the reference statistics are cached).

    python benchmarks/bench_generation.py --device cuda --methods diffae,pdae,disdiff,infodiffusion --batch 256
    python benchmarks/bench_generation.py --device cpu --preset smoke --batch 4
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from unittest import mock

import torch

from benchbench.config import resolve
from benchbench.describe import build, offline_spec
from benchbench.methods.latent_prior import LatentPrior


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_method(name: str, preset: str, dataset: str, device: torch.device, batch: int, reps: int) -> dict:
    cfg = resolve(name, dataset, preset, 0, ["model.code_prior=latent"])
    spec = offline_spec(dataset, cfg.data)
    model = build(name, cfg, spec, str(device)).eval()
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    x = torch.rand(2, spec.channels, spec.resolution, spec.resolution, device=device) * 2 - 1
    with torch.no_grad(), amp:
        dim = model.encode(x).shape[1]
    prior = LatentPrior(cfg.model.latent, dim).to(device)
    model.attach_code_model(prior, cfg.model.latent.describe())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad(), amp:
        model.sample(min(batch, 4), gen)  # warm-up (cudnn autotune, allocator)
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(reps):
            model.sample(batch, gen)
        _sync(device)
        dt = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        prior.sample(batch, gen)
        _sync(device)
        latent_dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"method": name, "res": spec.resolution, "batch": batch, "img_s": batch / dt, "latent_s": latent_dt,
            "peak_gib": peak, "generator": model.code_generator()}


def inception_rate(device: torch.device, batch: int) -> float:
    """Images/s of torch-fidelity's Inception feature pass at 64x64 input (resized to 299 inside, as for FID)."""
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    with mock.patch.object(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None), \
            mock.patch.object(inc, "load_state_dict_from_url", lambda *a, **k: None):
        net = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).to(device).eval()
    x = torch.randint(0, 256, (batch, 3, 64, 64), dtype=torch.uint8, device=device)
    with torch.no_grad():
        net(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(3):
            net(x)
        _sync(device)
    return 3 * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="diffae,pdae,disdiff,infodiffusion")
    p.add_argument("--preset", default="paper")
    p.add_argument("--dataset", default="celeba")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}, bf16 autocast")
    try:
        inc = inception_rate(device, args.batch)
        print(f"# Inception features: {inc:.0f} img/s")
    except Exception as exc:  # torch-fidelity missing or its network cannot be built here
        inc = float("nan")
        print(f"# Inception features not measured: {type(exc).__name__}: {exc}")
    print(f"{'method':<14} {'res':>4} {'batch':>5} {'gen img/s':>10} {'latent s':>9} {'peak GiB':>9} "
          f"{'10k FID s':>10}  generator")
    for name in args.methods.split(","):
        r = bench_method(name, args.preset, args.dataset, device, args.batch, args.reps)
        fid10k = 10_000 / r["img_s"] + 10_000 / inc
        print(f"{r['method']:<14} {r['res']:>4} {r['batch']:>5} {r['img_s']:>10.1f} {r['latent_s']:>9.2f} "
              f"{r['peak_gib']:>9.2f} {fid10k:>10.0f}  {r['generator']}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
