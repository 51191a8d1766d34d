"""Fault cases (issue 14, points 1, 3, 5, 7): damaged records, torn logs, stale temporaries, disk faults, modes.

Every case damages or constrains something on a finished or half-finished smoke run and asserts the clear outcome.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from benchbench import report, runner, store
from benchbench import train as train_module
from benchbench.errors import BenchbenchError

pytestmark = pytest.mark.usefixtures("one_thread")

SET = ["train.steps=4", "train.ckpt_every=2", "train.log_every=1", "eval.figures=False", "eval.metrics=('mig',)"]


def _run(out: Path, seeds: int = 1, overrides: list[str] | None = None, log: list[str] | None = None) -> list[str]:
    sink = log if log is not None else []
    return runner.run("betavae", "shapes3d-synth", seeds, "smoke", overrides or SET, out, "cpu", progress=False,
                      log=sink.append)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with two complete seeds (4 steps each, MIG only)."""
    out = tmp_path_factory.mktemp("finished")
    torch.set_num_threads(1)
    _run(out, seeds=2)
    return out


@pytest.fixture
def results(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(finished, out)
    return out


def logged_steps(path: Path) -> list[int]:
    """The steps of stats.jsonl in file order (a torn line is skipped)."""
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:
            pass
    return steps


def _seed(out: Path, k: int = 0) -> Path:
    (d,) = out.glob(f"runs/*/*/*/seed{k}")
    return d


# Point 1: a record is complete only when it proves it.

DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty object": lambda text: "{}",
    "list": lambda text: "[]",
    "null metric": lambda text: json.dumps({**json.loads(text), "metrics": {"mig": None}}),
    "string value": lambda text: json.dumps({**json.loads(text), "metrics": {"mig": {"value": "0.3"}}}),
    "wrong seed": lambda text: json.dumps({**json.loads(text), "seed": 7}),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_result_is_listed_corrupt_and_redone(case: str, results: Path) -> None:
    d = _seed(results)
    good = json.loads((d / "result.json").read_text())
    (d / "result.json").write_text(DAMAGE[case]((d / "result.json").read_text()))
    text = report.build_report(results, "markdown", write=False)
    assert "| β-VAE ckpt_every=2, log_every=1, steps=4 | 1 |" in text  # seed 1 alone is counted
    (line,) = [ln for ln in text.splitlines() if ln.startswith("corrupt: ")]
    assert "seed0" in line and "result.json" in line
    log: list[str] = []
    (status, _) = _run(results, seeds=2, log=log)
    assert status.startswith("seed 0: done") and any("corrupt, running the seed again" in m for m in log)
    again = json.loads((d / "result.json").read_text())
    assert again["metrics"]["mig"]["value"] == good["metrics"]["mig"]["value"]  # resumed from the final checkpoint
    assert "corrupt" not in report.build_report(results, "markdown", write=False)


def test_missing_or_mismatched_config_makes_the_record_corrupt(results: Path) -> None:
    d0, d1 = _seed(results, 0), _seed(results, 1)
    (d0 / "config.json").unlink()
    cfg = json.loads((d1 / "config.json").read_text())
    (d1 / "config.json").write_text(json.dumps({**cfg, "config_hash": "deadbeef"}))
    lines = report.incomplete_and_failed(results)
    assert len([ln for ln in lines if ln.startswith("corrupt: ")]) == 2
    with pytest.raises(BenchbenchError, match="no complete runs"):
        report.build_report(results, "csv")
    assert [s.split(":")[1].strip() for s in _run(results, seeds=2)] == ["done (" + str(d0) + ")",
                                                                         "done (" + str(d1) + ")"]
    assert json.loads((d1 / "config.json").read_text())["config_hash"] != "deadbeef"


def test_a_garbage_failed_record_does_not_crash_the_report(results: Path) -> None:
    d = _seed(results, 0)
    (d / "result.json").unlink()
    (d / "failed.json").write_text("[]")
    assert any(ln.startswith("failed: ") and "seed0" in ln for ln in report.incomplete_and_failed(results))


# Point 3: crash-safe logs and temporaries.


def test_torn_stats_line_and_kill_before_first_checkpoint_log_each_step_once(results: Path) -> None:
    d = _seed(results, 0)
    for name in ("result.json", "ckpt.pt", "ckpt.pt.sha256"):
        (d / name).unlink()
    # Killed before its first checkpoint, mid-way through writing the log line of step 2.
    lines = (d / "stats.jsonl").read_text().splitlines()
    (d / "stats.jsonl").write_text(lines[0] + "\n" + lines[1][:17])
    _run(results, seeds=1)
    assert logged_steps(d / "stats.jsonl") == [1, 2, 3, 4]


def test_torn_stats_line_after_a_checkpoint_resumes(results: Path) -> None:
    d = _seed(results, 0)
    (d / "result.json").unlink()
    with (d / "stats.jsonl").open("a") as f:
        f.write('{"step": 5, "lo')  # a torn line past the final checkpoint
    log: list[str] = []
    _run(results, seeds=1, log=log)
    assert logged_steps(d / "stats.jsonl") == [1, 2, 3, 4]
    assert all(json.loads(ln) for ln in (d / "stats.jsonl").read_text().splitlines())


def test_stale_temporaries_are_removed_when_the_lock_is_taken(results: Path) -> None:
    d = _seed(results, 0)
    (d / "result.json").unlink()
    stale = [d / ".ckpt.pt.k3j2l1.tmp", d / ".result.json.x8y7z6.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 4096)
    log: list[str] = []
    _run(results, seeds=1, log=log)
    assert not any(p.exists() for p in stale) and not list(results.rglob("*.tmp"))
    assert sum("removed stale temporary" in m for m in log) == 2


# Point 5: faults become records, not tracebacks.


def test_out_of_space_on_one_seed_is_recorded_and_the_other_seed_runs(tmp_path: Path, monkeypatch) -> None:
    real = store.atomic_write_bytes

    def full_disk(path: Path, data: bytes) -> None:
        if path.parent.name == "seed0" and path.name == "ckpt.pt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", full_disk)
    monkeypatch.setattr(train_module, "atomic_write_bytes", full_disk)
    with pytest.raises(BenchbenchError) as info:
        _run(tmp_path, seeds=2)
    message = str(info.value)
    assert "\n" not in message and "1 of 2 seeds failed" in message and "No space left on device" in message
    failed = json.loads((_seed(tmp_path, 0) / "failed.json").read_text())
    assert failed["exception"] == "OSError" and "No space left" in failed["error"]
    assert (_seed(tmp_path, 1) / "result.json").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_bug_inside_a_seed_becomes_failed_json(tmp_path: Path, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> dict:
        raise KeyError("boom")

    monkeypatch.setattr(runner, "evaluate", broken)
    with pytest.raises(BenchbenchError, match="KeyError: 'boom'"):
        _run(tmp_path)
    failed = json.loads((_seed(tmp_path) / "failed.json").read_text())
    assert failed["error"] == "KeyError: 'boom'" and "Traceback" in failed["traceback"]


def test_checkpoint_needs_room_for_two_copies(tmp_path: Path, monkeypatch) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=16 * 2**20 + 1_000_000))
    with pytest.raises(BenchbenchError, match="not enough free disk .* checkpoint"):
        _run(tmp_path)
    assert "not enough free disk" in json.loads((_seed(tmp_path) / "failed.json").read_text())["error"]
    assert not (_seed(tmp_path) / "ckpt.pt").exists()


def test_nan_before_any_checkpoint_does_not_claim_one_is_kept(tmp_path: Path, monkeypatch) -> None:
    from benchbench.baselines import beta_vae

    def nan_loss(self, x):  # noqa: ANN001, ANN202
        return {"loss": torch.tensor(float("nan"), requires_grad=True)}

    monkeypatch.setattr(beta_vae.BetaVAE, "loss", nan_loss)
    with pytest.raises(BenchbenchError) as info:
        _run(tmp_path)
    assert "at step 1" in str(info.value) and "no checkpoint was written yet" in str(info.value)
    assert "is kept" not in str(info.value)


def test_report_prints_tables_it_cannot_write(results: Path, monkeypatch) -> None:
    real = store.atomic_write_bytes

    def read_only(path: Path, data: bytes) -> None:
        if "tables" in path.parts:
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        real(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", read_only)
    text = report.build_report(results, "markdown")
    assert "| β-VAE ckpt_every=2, log_every=1, steps=4 | 2 |" in text and "could not write the tables" in text
    assert not (results / "tables").exists()


def test_run_on_a_read_only_folder_whose_seeds_are_complete_reports_them(results: Path, monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(runner.tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setattr(store.tempfile, "mkstemp", refuse)
    lines = _run(results, seeds=2)
    assert all("complete already, skipped" in line for line in lines)


# Point 7: files get the user's umask.


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_are_written_with_the_umask(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        store.atomic_write_json(tmp_path / "r.json", {"a": 1})
        store.atomic_write_bytes(tmp_path / "ckpt.pt", b"weights")
    finally:
        os.umask(old)
    for name in ("r.json", "ckpt.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_run_files_are_group_readable(finished: Path) -> None:
    d = _seed(finished)
    for name in ("config.json", "result.json", "ckpt.pt", "stats.jsonl"):
        assert (d / name).stat().st_mode & 0o777 == 0o666 & ~_umask(), name


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old
