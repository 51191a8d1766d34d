"""Training throughput (images/s) and peak memory of a method's preset, with random-weight stage models.

Builds the method exactly as ``benchbench run`` would for ``--preset`` on ``--dataset`` (the frozen stages get random
weights instead of trained ones, which does not change the cost), then times full optimiser steps (forward, backward,
AdamW, bf16 autocast on CUDA as the training loop does) and the encoder alone (what evaluation spends its time on).

    python benchmarks/bench_methods.py --preset paper --device cuda --methods disdiff,disdiff-image,infodiffusion
    python benchmarks/bench_methods.py --preset quick --device cpu --threads 1 --steps 5

``disdiff-image`` is DisDiff with ``model.space=image`` (on the pixel-space ``ddpm`` stage).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from benchbench import registry
from benchbench.config import resolve
from benchbench.datasets.base import DataSpec
from benchbench.stages import Artifact, build_model

ALIASES = {"disdiff-image": ("disdiff", ["model.space=image"])}


def _random_artifacts(requests: dict, spec: DataSpec, folder: Path) -> dict[str, Artifact]:
    """Each requested stage built untrained (its dependencies untrained too) and saved as an artifact."""
    out = {}
    for name, req in requests.items():
        model = build_model(req, spec, {})
        if hasattr(model, "scale") and float(model.scale) == 0.0:
            model.scale.fill_(1.0)  # the latent DPM's scale_by_std factor, normally set by its first batch
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        path = folder / f"{name}.pt"
        path.write_bytes(buf.getvalue())
        out[name] = Artifact(req.kind, path, hashlib.sha256(buf.getvalue()).hexdigest(), "bench")
    return out


def bench(name: str, preset: str, dataset: str, device: torch.device, steps: int, batch: int | None) -> dict:
    method, overrides = ALIASES.get(name, (name, []))
    cfg = resolve(method, dataset, preset, 0, overrides)
    entry = registry.methods.get(method)
    resolution = cfg.data.resolution or 64
    spec = DataSpec(dataset, 3, resolution, "synthetic")
    with tempfile.TemporaryDirectory() as tmp:
        requests = entry.meta["stages"](cfg) if entry.meta.get("stages") else {}
        stages = _random_artifacts(requests, spec, Path(tmp))
        model = entry.obj(cfg.model, spec, stages=stages) if requests else entry.obj(cfg.model, spec)
    model.to(device).train()
    n = batch or cfg.train.batch_size
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=1e-5)
    x = torch.rand(n, 3, resolution, resolution, device=device) * 2 - 1
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.train.amp else nullcontext()

    def step() -> None:
        with amp:
            loss = model.loss(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    train_s = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    model.eval()
    with torch.no_grad(), amp:
        model.encode(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            model.encode(x)
        sync()
    enc_s = (time.perf_counter() - t0) / steps
    trainable = sum(p.numel() for p in params)
    return {"method": name, "preset": preset, "batch": n, "res": resolution, "train_img_s": n / train_s,
            "step_ms": 1e3 * train_s, "encode_img_s": n / enc_s, "peak_gib": peak, "trainable_m": trainable / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="disdiff,disdiff-image,infodiffusion")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--dataset", default="shapes3d")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=None, help="default: the preset's batch size")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}")
    else:
        print(f"# cpu, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'method':<15} {'preset':<6} {'batch':>5} {'res':>4} {'train img/s':>12} {'step ms':>9} "
          f"{'encode img/s':>13} {'peak GiB':>9} {'trainable M':>12}")
    for name in args.methods.split(","):
        r = bench(name, args.preset, args.dataset, device, args.steps, args.batch)
        print(f"{r['method']:<15} {r['preset']:<6} {r['batch']:>5} {r['res']:>4} {r['train_img_s']:>12.1f} "
              f"{r['step_ms']:>9.1f} {r['encode_img_s']:>13.1f} {r['peak_gib']:>9.2f} {r['trainable_m']:>12.2f}")
        del r
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
