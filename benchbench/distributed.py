"""Data-parallel training under ``torchrun``: process-group setup, rank-0 decisions, gradient averaging.

``torchrun --nproc_per_node K -m benchbench run ...`` (or ``benchbench run --gpus K``, which starts exactly that)
runs K copies of the same command. Each rank trains on its slice of the step's global batch (so the effective batch
is ``train.batch_size`` whatever K is), gradients are averaged over ranks after every backward pass (an all-reduce,
as DistributedDataParallel does, but without wrapping the method, whose entry point is ``loss`` rather than
``forward``), and only rank 0 takes folder locks, writes checkpoints, stage artifacts, figures and results, and
evaluates; the other ranks wait for it. Outside torchrun every helper here is a no-op.

Reproducibility: rank r trains on rows r·B/K .. (r+1)·B/K of the very batch a single process would draw, and rank 0
draws the single process's noise. For a method whose loss draws no noise the K-rank run therefore equals the
one-process run up to floating-point summation order (tests/test_distributed.py: within 1e-5 on every weight). Methods
that draw noise in ``loss`` (timesteps, diffusion noise, reparameterisation: every VAE and diffusion method) give
ranks r >= 1 their own noise streams (seeded by (seed, step, r)), so there the runs agree in distribution, not bit for
bit; a method would have to draw its noise for the global batch to do better.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
TIMEOUT = datetime.timedelta(hours=3)  # rank 0 evaluates alone while the others wait at a barrier


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if active():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); returns the device to use.

    NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``), gloo on the CPU. Without torchrun nothing happens and
    ``device`` is returned unchanged.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or active():
        return device
    cuda = device != "cpu" and torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def finish() -> None:
    """Leave the process group (at the end of a torchrun command)."""
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (a pickled broadcast); ``value`` itself outside torch.distributed."""
    if not active():
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over ranks (one flat all-reduce; missing gradients are 0)."""
    if not active() or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads, strict=True):
        chunk = flat[offset:offset + g.numel()].view_as(g)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
        offset += g.numel()


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each scalar's mean over ranks, detached, in one all-reduce (for logging and a consistent non-finite check)."""
    if not active():
        return values
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    dist.all_reduce(stacked)
    stacked /= dist.get_world_size()
    return dict(zip(values, stacked.unbind(), strict=True))


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """The command that runs ``benchbench <args>`` as ``nproc`` ranks on this node through torchrun."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "benchbench", *args]
