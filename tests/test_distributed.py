"""Data-parallel training under torchrun (2 CPU ranks, gloo) against one process with the same effective batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from benchbench import distributed
from benchbench.train import training_batch

PLUGIN = '''
from dataclasses import dataclass
import torch
from torch import nn
from benchbench.config import Preset, TrainConfig
from benchbench.method import Method
from benchbench.registry import register_method

@dataclass(frozen=True)
class Cfg:
    dim: int = 4

_SMOKE = Preset(Cfg(), TrainConfig(steps=20, batch_size=8, lr=1e-2, ema_decay=0.9, log_every=5, ckpt_every=10),
                data=(("resolution", 16),))


@register_method("ddptoy", config=Cfg, presets={"smoke": _SMOKE, "quick": _SMOKE, "paper": _SMOKE})
class Toy(Method):
    """A deterministic autoencoder (no noise in the loss), so data parallelism changes only summation order."""
    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, cfg.dim))
        self.dec = nn.Linear(cfg.dim, 3 * 16 * 16)
    def loss(self, x):
        return {"loss": (self.dec(self.enc(x)).view_as(x) - x).square().mean()}
    def encode(self, x):
        return self.enc(x)
'''


def _plugin(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    (site / "ddptoy-0.1.dist-info").mkdir(parents=True)
    (site / "ddptoy-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: ddptoy\nVersion: 0.1\n")
    (site / "ddptoy-0.1.dist-info" / "entry_points.txt").write_text("[benchbench.methods]\nddptoy = ddptoy\n")
    (site / "ddptoy.py").write_text(textwrap.dedent(PLUGIN))
    return {**os.environ, "PYTHONPATH": str(site), "BENCHBENCH_NO_PLUGINS": "", "OMP_NUM_THREADS": "1"}


def _run(args: list[str], env: dict[str, str], ranks: int = 1) -> subprocess.CompletedProcess:
    cmd = distributed.torchrun_command(ranks, args) if ranks > 1 else [sys.executable, "-m", "benchbench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    (ckpt,) = out.rglob("ckpt.pt")
    return torch.load(ckpt, map_location="cpu", weights_only=False)["model"]


def test_training_batch_slices_the_global_batch() -> None:
    class Data:
        train_flip = True

        def flips_training_batches(self) -> bool:
            return True

        def __len__(self) -> int:
            return 1000

        def images(self, idx: np.ndarray) -> np.ndarray:
            return np.broadcast_to(idx[:, None, None, None].astype(np.uint8), (len(idx), 2, 2, 3)).copy()

    whole = training_batch(Data(), None, 3, 7, 0, 8)
    parts = [training_batch(Data(), None, 3, 7, r, 8, world_size=4) for r in range(4)]
    torch.testing.assert_close(torch.cat(parts), whole)


def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    """Tolerance: every weight within 1e-5 (absolute) of the single-process run's after 20 Adam steps, while the
    weights moved by more than 1e-2 from their initialisation; only the summation order differs."""
    env = _plugin(tmp_path)
    args = ["run", "--method", "ddptoy", "--dataset", "shapes3d-synth", "--preset", "smoke", "--device", "cpu",
            "--no-progress", "--metrics", "mig"]
    single = _run([*args, "--out", str(tmp_path / "single")], env)
    assert single.returncode == 0, single.stderr
    ddp = _run([*args, "--out", str(tmp_path / "ddp")], env, ranks=2)
    assert ddp.returncode == 0, ddp.stderr
    a, b = _weights(tmp_path / "single"), _weights(tmp_path / "ddp")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    (result,) = (tmp_path / "ddp").rglob("result.json")
    record = json.loads(result.read_text())
    assert record["distributed"] == {"world_size": 2, "effective_batch_size": 8, "per_rank_batch_size": 4}
    assert "mig" in record["metrics"]
    assert ddp.stdout.count("seed 0: done") == 1  # rank 0 alone reports and writes
    # The test can fail: without gradient averaging the ranks would train on half batches, and a half batch alone
    # (one process, batch 4) ends far outside the tolerance.
    half = _run([*args, "--out", str(tmp_path / "half"), "--set", "train.batch_size=4"], env)
    assert half.returncode == 0, half.stderr
    c = _weights(tmp_path / "half")
    assert max((a[k] - c[k]).abs().max().item() for k in a) > 1e-3


def test_ddp_builds_a_stage_once_on_rank_zero(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["run", "--method", "pdae", "--dataset", "shapes3d-synth", "--preset", "smoke", "--device", "cpu",
            "--no-progress", "--metrics", "mig", "--out", str(tmp_path / "out")]
    proc = _run(args, env, ranks=2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("building stage ddpm/") == 1
    (stage,) = (tmp_path / "out" / "stages" / "ddpm" / "shapes3d-synth").iterdir()
    sha = json.loads((stage / "artifact.json").read_text())["sha256"]
    (result,) = (tmp_path / "out").rglob("result.json")
    assert json.loads(result.read_text())["stages"]["dpm"]["sha256"] == sha


def test_batch_must_divide_over_ranks(tmp_path: Path) -> None:
    env = _plugin(tmp_path)
    proc = _run(["run", "--method", "ddptoy", "--dataset", "shapes3d-synth", "--preset", "smoke", "--device", "cpu",
                 "--no-progress", "--metrics", "mig", "--set", "train.batch_size=7", "--out", str(tmp_path / "o")],
                env, ranks=2)
    assert proc.returncode != 0 and "not divisible by the 2 ranks" in proc.stderr


def test_gpus_option_needs_visible_gpus(invoke, tmp_path: Path) -> None:
    code, _, err = invoke(["run", "--method", "betavae", "--dataset", "shapes3d-synth", "--preset", "smoke",
                           "--gpus", "2", "--out", str(tmp_path)])
    assert code == 2 and err.startswith("error: --gpus 2: only 0 CUDA devices are visible")
    assert not (tmp_path / "runs").exists()
    assert distributed.torchrun_command(2, ["run", "--x"])[1:6] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
