"""Cached stages: built once, reused, resumed after an interruption, rebuilt when corrupted, built once
when two callers need them at the same time."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from benchbench.config import TrainConfig
from benchbench.datasets.base import DataConfig, DataSpec, ImageData
from benchbench.method import Method
from benchbench.stages import StageRequest, cached, ensure, list_stages, register_stage

SPEC = DataSpec(name="tiny", channels=3, resolution=4, source="synthetic")
INTERRUPT_AT: dict[str, int] = {}  # call count at which the toy stage is "killed"


class Tiny(ImageData):
    spec = SPEC

    def __len__(self) -> int:
        return 10

    def images(self, indices: np.ndarray) -> np.ndarray:
        return (np.asarray(indices)[:, None, None, None] * 20 + np.zeros((1, 4, 4, 3))).astype(np.uint8)


@dataclass(frozen=True)
class ToyConfig:
    width: int = 2
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=6, batch_size=2, ckpt_every=2, amp=False))


@register_stage("_toy")
class ToyStage(Method):
    def __init__(self, cfg: ToyConfig, spec: DataSpec, deps: dict) -> None:
        super().__init__(cfg, spec)
        self.lin = nn.Linear(48, cfg.width)
        self.calls = 0

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        if INTERRUPT_AT.get("at") == self.calls:
            raise KeyboardInterrupt  # stands in for a killed process
        return {"loss": self.lin(x.flatten(1)).square().mean()}


def _request(width: int = 2) -> StageRequest:
    return StageRequest("_toy", "tiny", DataConfig(resolution=4), ToyConfig(width=width))


def _ensure(req: StageRequest, out: Path, logs: list[str]):
    return ensure(req, lambda r: Tiny(), torch.device("cpu"), out, logs.append, progress=False)


def test_built_once_then_reused(tmp_path: Path) -> None:
    logs: list[str] = []
    first = _ensure(_request(), tmp_path, logs)
    second = _ensure(_request(), tmp_path, logs)
    assert first == second and any("building stage" in m for m in logs) and any("reusing cached" in m for m in logs)
    assert _request().hash() != _request(width=3).hash()
    assert list_stages(tmp_path)[0]["status"] == "built"
    assert set(first.load_state()) == {"lin.weight", "lin.bias"}


def test_ema_stage_keeps_its_non_ema_weights(tmp_path: Path) -> None:
    """A stage trained with EMA keeps both weight sets (DisDiff freezes the non-EMA ones, methods.md §6.3)."""
    plain = _ensure(_request(), tmp_path, [])
    assert plain.online_sha256 == plain.sha256 and plain.online_path == plain.path  # no EMA: one set
    req = StageRequest("_toy", "tiny", DataConfig(resolution=4), ToyConfig(train=TrainConfig(
        steps=6, batch_size=2, ckpt_every=2, amp=False, lr=0.1, ema_decay=0.9)))
    built = _ensure(req, tmp_path, [])
    assert built.online_path.name == "artifact-online.pt" and built.online_sha256 != built.sha256
    ema, online = built.load_state(), built.load_state(online=True)
    assert not torch.equal(ema["lin.weight"], online["lin.weight"])
    assert cached(req, tmp_path) == built
    built.online_path.write_bytes(b"corrupt")
    assert cached(req, tmp_path) is None


def test_interrupted_build_resumes(tmp_path: Path) -> None:
    logs: list[str] = []
    INTERRUPT_AT["at"] = 4
    with pytest.raises(KeyboardInterrupt):
        _ensure(_request(), tmp_path, logs)
    INTERRUPT_AT.clear()
    assert cached(_request(), tmp_path) is None and list_stages(tmp_path)[0]["status"] == "incomplete"
    _ensure(_request(), tmp_path, logs)
    assert any("resuming" in m and "from step 2/6" in m for m in logs)


def test_corrupted_artifact_is_rebuilt(tmp_path: Path) -> None:
    logs: list[str] = []
    art = _ensure(_request(), tmp_path, logs)
    data = bytearray(art.path.read_bytes())
    data[-10] ^= 0xFF
    art.path.write_bytes(bytes(data))
    assert cached(_request(), tmp_path) is None
    again = _ensure(_request(), tmp_path, logs)
    assert any("checksum mismatch; rebuilding" in m for m in logs)
    assert again.sha256 == art.sha256  # the same seed rebuilds the same weights


def test_two_callers_build_it_once(tmp_path: Path) -> None:
    logs: list[str] = []
    results = []
    threads = [threading.Thread(target=lambda: results.append(_ensure(_request(), tmp_path, logs))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert sum(m.startswith("building stage") for m in logs) == 1, logs
    assert sum(m.startswith("reusing cached") for m in logs) == 1 and any(m.startswith("waiting for") for m in logs)
