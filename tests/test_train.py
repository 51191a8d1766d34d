"""The shared training loop: determinism, exact resume, EMA, non-finite losses, stats."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from benchbench.config import TrainConfig
from benchbench.datasets.base import DataSpec, ImageData
from benchbench.errors import TrainingError
from benchbench.method import Method
from benchbench.train import batch_indices, train

SPEC = DataSpec(name="tiny", channels=3, resolution=8, source="synthetic")


class TinyData(ImageData):
    spec = SPEC

    def __init__(self) -> None:
        self.pixels = np.random.default_rng(0).integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.pixels)

    def images(self, indices: np.ndarray) -> np.ndarray:
        return self.pixels[indices]


class TinyAE(Method):
    """A linear autoencoder with noise in its loss, so seeding matters."""

    def __init__(self, nan_at: int | None = None) -> None:
        super().__init__(None, SPEC)
        self.enc = nn.Linear(192, 4)
        self.dec = nn.Linear(4, 192)
        self.calls = 0
        self.nan_at = nan_at

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        z = self.enc(x.flatten(1))
        z = z + 0.1 * torch.randn_like(z)
        rec = (self.dec(z) - x.flatten(1)).square().mean()
        if self.nan_at is not None and self.calls >= self.nan_at:
            rec = rec * float("nan")
        return {"loss": rec, "rec": rec}

    def encode(self, x: Tensor) -> Tensor:
        return self.enc(x.flatten(1))


CFG = TrainConfig(steps=12, batch_size=5, lr=1e-2, log_every=3, ckpt_every=4, amp=False)


def _fresh(seed: int = 0) -> TinyAE:
    torch.manual_seed(seed)
    return TinyAE()


def _run(tmp: Path, cfg: TrainConfig = CFG, model: TinyAE | None = None) -> TinyAE:
    model = model or _fresh()
    out = train(model, TinyData(), cfg, tmp, seed=3, cfg_hash="h", device=torch.device("cpu"), progress=False,
                log=lambda s: None)
    assert isinstance(out, TinyAE)
    return out


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_same_seed_gives_identical_weights(tmp_path: Path) -> None:
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b")
    assert _same(a, b)
    assert (tmp_path / "a" / "stats.jsonl").read_text().count("\n") == 4  # steps 3, 6, 9, 12
    rows = [json.loads(r) for r in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 9, 12] and all("rec" in r for r in rows)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    full = _run(tmp_path / "full")
    # Train 8 of the 12 steps (checkpoint at 8), then start again with the full config.
    _run(tmp_path / "part", replace(CFG, steps=8))
    stats_before = (tmp_path / "part" / "stats.jsonl").read_text()
    resumed = _run(tmp_path / "part", CFG, model=_fresh(seed=99))  # weights come from the checkpoint
    assert _same(full, resumed)
    assert (tmp_path / "part" / "stats.jsonl").read_text().startswith(stats_before)
    assert _rows(tmp_path / "part", after=8) == _rows(tmp_path / "full", after=8)


def _rows(run: Path, after: int) -> list[dict]:
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows if r["step"] > after]


def test_stats_after_checkpoint_are_trimmed_on_resume(tmp_path: Path) -> None:
    _run(tmp_path, replace(CFG, steps=8))
    with (tmp_path / "stats.jsonl").open("a") as f:  # a line written after the last checkpoint
        f.write(json.dumps({"step": 9, "loss": 0.0}) + "\n")
    _run(tmp_path, CFG, model=_fresh())
    rows = [json.loads(r) for r in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 8, 9, 12]  # 8 closed the shorter run
    assert rows[3]["loss"] != 0.0  # the stray line was dropped and step 9 written again


def test_different_seeds_differ(tmp_path: Path) -> None:
    a = _run(tmp_path / "a")
    b = train(_fresh(), TinyData(), CFG, tmp_path / "b", seed=4, cfg_hash="h", device=torch.device("cpu"),
              progress=False, log=lambda s: None)
    assert not _same(a, b)


def test_nan_loss_stops_with_the_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at step 6") as info:
        _run(tmp_path, model=TinyAE(nan_at=6))
    assert "\n" not in str(info.value)
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["step"] == 4  # last good checkpoint kept


def test_ema_tracks_weights(tmp_path: Path) -> None:
    ema = _run(tmp_path / "ema", replace(CFG, ema_decay=0.5))
    plain = _run(tmp_path / "plain")
    assert not _same(ema, plain)
    ckpt = torch.load(tmp_path / "ema" / "ckpt.pt", weights_only=False)
    assert _same_state(ckpt["model"], plain.state_dict())  # the raw weights equal a run without EMA


def _same_state(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    _run(tmp_path, replace(CFG, steps=4))
    with pytest.raises(TrainingError, match="another config"):
        train(_fresh(), TinyData(), CFG, tmp_path, 3, "other", torch.device("cpu"), False, lambda s: None)


def test_batches_depend_on_seed_and_step_only() -> None:
    a = batch_indices(1, 5, 0, 100, 8)
    assert np.array_equal(a, batch_indices(1, 5, 0, 100, 8))
    assert not np.array_equal(a, batch_indices(1, 6, 0, 100, 8))
    assert not np.array_equal(a, batch_indices(2, 5, 0, 100, 8))
