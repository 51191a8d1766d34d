"""Safe defaults for ``run``: which preset when none is given, and how long the chosen one will take.

* ``--preset`` omitted: ``paper`` (the published setting) on a machine with a GPU; on a CPU-only machine the
  paper presets take days (300,000 β-VAE steps, ~5 h; the diffusion methods far longer), so ``quick`` is used
  with a notice saying how to ask for ``paper`` explicitly.
* Before training, ``run`` prints the preset, the steps and an estimated training time: from earlier runs of the
  same method, dataset, preset and device in the results folder when there are any, else from timing two
  optimiser steps of a freshly built model (methods without pre-trained stages), else "unknown".
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchbench import store
from benchbench.progress import duration


def choose_preset(preset: str | None, device: torch.device) -> tuple[str, str | None]:
    """(preset, notice): ``preset`` when given; else ``paper`` on CUDA, ``quick`` with a notice on CPU."""
    if preset is not None:
        return preset, None
    if device.type == "cuda":
        return "paper", None
    return "quick", ("note: no --preset given and no GPU here: using --preset quick (minutes on a CPU); the "
                     "published setting needs --preset paper, which takes hours to days on a CPU")


def _history(out: Path, method: str, dataset: str, preset: str, device: torch.device) -> float | None:
    """Median training seconds per step of complete runs like this one in ``out``, or None."""
    rates = []
    for d in (Path(out) / "runs" / dataset / method).glob(f"{preset}-*/seed*"):
        rec = store.read_json(d / "result.json") or {}
        cfg = (store.read_json(d / "config.json") or {}).get("config", {})
        steps = cfg.get("train", {}).get("steps") or 0
        secs = (rec.get("timing") or {}).get("train_seconds")
        if steps and secs and str(rec.get("device", "")).split(":")[0] == device.type:
            rates.append(float(secs) / steps)
    return statistics.median(rates) if rates else None


def _probe(cfg: Any, data: Any, device: torch.device) -> float:
    """Seconds of the second of two optimiser steps of a fresh model at the config's batch size."""
    from benchbench.registry import methods
    from benchbench.train import training_batch

    model = methods.get(cfg.method).obj(cfg.model, data.spec).to(device).train()
    params = model.trainable_parameters()
    opt = torch.optim.Adam(params, lr=cfg.train.lr) if params else None
    x = training_batch(data, data.training_pool(), cfg.seed, 0, 0, cfg.train.batch_size).to(device)
    took = 0.0
    for _ in range(2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model.loss(x)["loss"]
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        took = time.perf_counter() - t0
    return took


def estimate(cfg: Any, data: Any, device: torch.device, out: Path, probe: bool = True) -> tuple[float | None, str]:
    """(training seconds per step, how it was found) for one seed of ``cfg``; (None, reason) when unknown."""
    from benchbench.registry import methods

    rate = _history(out, cfg.method, cfg.dataset, cfg.preset, device)
    if rate is not None:
        return rate, "from earlier runs here"
    if cfg.train.steps == 0:
        return 0.0, "no training"
    if not probe or methods.get(cfg.method).meta.get("stages"):
        return None, "unknown until training starts"
    try:
        return _probe(cfg, data, device), "timed on two steps"
    except Exception as exc:  # an estimate must never stop a run; the run itself reports real errors
        return None, f"unknown ({type(exc).__name__} while timing)"


def plan_line(cfg: Any, seeds_to_train: int, seconds_per_step: float | None, how: str, device: torch.device,
              done: int = 0) -> str:
    """``betavae on shapes3d-synth: preset quick, 700 steps x 3 seeds, about 2 min 17 s of training on cpu (...)``;
    ``done``: seeds of the command that are complete already."""
    head = f"{cfg.method} on {cfg.dataset}: preset {cfg.preset}, {cfg.train.steps:,} steps"
    if seeds_to_train != 1:
        head += f" x {seeds_to_train} seeds"
    if done:
        head += f" ({done} seed{'s' * (done > 1)} complete already)"
    if cfg.train.steps == 0:
        return f"{head}; never trained, scoring only"
    if seconds_per_step is None:
        return f"{head} on {device.type}; time {how} (the progress bar shows an ETA)"
    total = seconds_per_step * cfg.train.steps * max(seeds_to_train, 0)
    return (f"{head}, about {duration(total)} of training on {device.type} "
            f"({seconds_per_step:.3g} s/step, {how}; scoring and stages not included)")
