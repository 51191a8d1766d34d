"""Thread hygiene: one --threads budget for torch, BLAS and OpenMP; metric values do not depend on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from benchbench import threads


@pytest.fixture
def arrays(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, size=(300, 3))
    codes = np.hstack([factors + 0.3 * rng.normal(size=factors.shape), rng.normal(size=(300, 2))])
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "factors.npy", factors)
    return tmp_path / "codes.npy", tmp_path / "factors.npy"


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_threads_1_and_2_give_identical_metric_values(arrays, invoke, mode: str) -> None:
    codes, factors = arrays
    outs = []
    for n in ("1", "2"):
        code, out, err = invoke(["score", "--codes", str(codes), "--factors", str(factors), "--json", "--threads", n,
                                 "--metrics", "mig,dci,sap,modularity", "--set", f"dci.mode={mode}"])
        assert code == 0, err
        outs.append(json.loads(out))
    assert outs[0] == outs[1]
    assert outs[0]["dci"]["extras"]["mode"] == mode


def test_bad_thread_count_is_one_line(arrays, invoke) -> None:
    codes, factors = arrays
    code, _, err = invoke(["score", "--codes", str(codes), "--factors", str(factors), "--threads", "0"])
    assert code == 2 and err.strip().count("\n") == 0 and "--threads must be >= 1" in err


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_thread_budget_sets_every_pool_and_restores_it() -> None:
    before = (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), threads.thread_count(), _blas_threads())
    with threads.thread_budget(1) as n:
        assert n == 1 and threads.thread_count() == 1 and torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1" and all(t == 1 for t in _blas_threads())
    after = (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), threads.thread_count(), _blas_threads())
    assert after == before


def test_default_budget_is_the_affinity_not_the_machine(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.thread_count() == threads.available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # an explicit environment cap is kept
    assert threads.thread_count() == 1
    if hasattr(os, "sched_getaffinity"):
        assert threads.available_cores() == len(os.sched_getaffinity(0))


def test_single_blas_caps_blas_only_inside() -> None:
    with threads.single_blas():
        assert all(t == 1 for t in _blas_threads())
