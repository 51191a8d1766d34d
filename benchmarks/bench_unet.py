"""CPU timings of the ADM UNet (benchbench/nets/unet.py) for picking CPU-preset sizes.

For each candidate config: forward+backward ms at batch 8, 64×64 (the UNet alone), and a full training step
(forward, backward, Adam) at batch 16 for 32×32 and 64×64, as a rate in it/s. Reports wall time and process CPU
time; on a busy shared machine the CPU time at --threads 1 is the robust number (wall ≈ CPU on an idle core).

    python benchmarks/bench_unet.py --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from benchbench.nets.unet import SemanticEncoder, SemanticEncoderConfig, UNet, UNetConfig

BASE = UNetConfig(dropout=0.0, num_groups=32)
CANDIDATES: dict[str, UNetConfig] = {
    "b32 (1,2,2) rb1 attn16": replace(BASE, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1),
    "b32 (1,2,2) rb1 no-attn": replace(
        BASE, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=()
    ),
    "b32 (1,2,2,2) rb1 attn16": replace(BASE, base_channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=1),
    "b16 (1,2,2) rb1 attn16": replace(BASE, base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1),
    "b16 (1,2,2,2) rb1 attn8": replace(
        BASE, base_channels=16, channel_mult=(1, 2, 2, 2), num_res_blocks=1, attention_resolutions=(8,)
    ),
    "b16 (1,2,4) rb1 attn16 no-updown": replace(
        BASE, base_channels=16, channel_mult=(1, 2, 4), num_res_blocks=1, resblock_updown=False
    ),
    "b32 (1,2,2,2) rb2 attn16": replace(BASE, base_channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=2),
    "b16 (1,2,2) rb1 attn8 g8": replace(
        BASE, base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,), num_groups=8
    ),
    "b16 (1,2) rb1 attn16 g8": replace(
        BASE, base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(16,), num_groups=8
    ),
    "b24 (1,2,2) rb1 attn8 g8": replace(
        BASE, base_channels=24, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,), num_groups=8
    ),
}


def _time(fn: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median (wall, cpu) seconds of fn() after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]


def _step_fn(cfg: UNetConfig, batch: int, resolution: int, with_encoder: bool) -> Callable[[], None]:
    """One eps-MSE training step of a UNet (plus a semantic encoder of the same width, Diff-AE style)."""
    cfg = replace(cfg, resolution=resolution, cond_dim=64 if with_encoder else 0)
    net = UNet(cfg)
    enc = (
        SemanticEncoder(
            SemanticEncoderConfig(
                resolution=resolution,
                base_channels=cfg.base_channels,
                channel_mult=cfg.channel_mult,
                num_res_blocks=cfg.num_res_blocks,
                attention_resolutions=cfg.attention_resolutions,
                out_dim=64,
            )
        )
        if with_encoder
        else None
    )
    params = list(net.parameters()) + (list(enc.parameters()) if enc is not None else [])
    opt = torch.optim.Adam(params, lr=1e-4)
    x = torch.randn(batch, 3, resolution, resolution)
    t = torch.randint(0, 1000, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        z = enc(x) if enc is not None else None
        (net(x, t, z) - x).square().mean().backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--encoder", action="store_true", help="also run a semantic encoder (Diff-AE step)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64], help="training-step sides")
    parser.add_argument("--only", nargs="*", default=None, help="config names to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads={args.threads} encoder={args.encoder}")
    steps = "".join(f"{f'step b16@{r} it/s':>20s}" for r in args.resolutions)
    print(f"{'config':34s} {'params':>8s} {'fwd+bwd b8@64 ms':>19s}{steps}")
    for name, cfg in CANDIDATES.items():
        if args.only is not None and name not in args.only:
            continue
        net = UNet(cfg)
        x, t = torch.randn(8, 3, 64, 64), torch.randint(0, 1000, (8,))
        fb_wall, fb_cpu = _time(lambda net=net, x=x, t=t: net(x, t).square().mean().backward(), args.repeats)
        rates = []
        for res in args.resolutions:
            wall, cpu = _time(_step_fn(cfg, 16, res, args.encoder), args.repeats)
            rates.append(f"{1 / wall:8.1f} (cpu {1 / cpu:5.1f})")
        n = sum(p.numel() for p in net.parameters()) / 1e6
        fb = f"{fb_wall * 1e3:7.0f} (cpu {fb_cpu * 1e3:5.0f})"
        print(f"{name:34s} {n:7.2f}M {fb}" + "".join(f"{r:>20s}" for r in rates))


if __name__ == "__main__":
    main()
