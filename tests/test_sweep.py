"""Sweeps through submitit's debug and local executors: stable indices, stages first, preemption and requeue."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from benchbench import sweep as sw
from benchbench.errors import BenchbenchError

SMOKE = ["eval.metrics=('mig',)"]


def test_expand_is_stable_and_validated(tmp_path: Path) -> None:
    runs = sw.expand(["betavae", "random"], ["shapes3d-synth", "mpi3d-synth"], 2, "smoke", SMOKE, tmp_path)
    assert [(r.index, r.method, r.dataset, r.seed) for r in runs[:5]] == [
        (0, "betavae", "shapes3d-synth", 0), (1, "betavae", "shapes3d-synth", 1), (2, "betavae", "mpi3d-synth", 0),
        (3, "betavae", "mpi3d-synth", 1), (4, "random", "shapes3d-synth", 0)]
    again = sw.expand(["betavae", "random"], ["shapes3d-synth", "mpi3d-synth"], 2, "smoke", SMOKE, tmp_path)
    assert again == runs
    with pytest.raises(BenchbenchError, match="nosuch on shapes3d-synth"):
        sw.expand(["nosuch"], ["shapes3d-synth"], 1, "smoke", SMOKE, tmp_path)
    assert not (tmp_path / "sweeps").exists()


def test_debug_sweep_builds_stages_once_then_runs(tmp_path: Path, invoke) -> None:
    code, out, err = invoke(["sweep", "--methods", "random,pdae", "--datasets", "shapes3d-synth", "--seeds", "2",
                             "--preset", "smoke", "--set", "eval.metrics=('mig',)", "--set", "eval.figures=False",
                             "--launcher", "debug", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0, err
    assert out.count(": done (") == 4
    assert err.count("building stage ddpm/") == 1 and err.count("reusing cached stage ddpm/") == 2
    assert len(list((tmp_path / "runs").rglob("result.json"))) == 4
    code, out, _ = invoke(["status", "--out", str(tmp_path)])
    assert code == 0 and out.strip().splitlines()[-1] == "4 done"


def _preempt(job: object) -> None:
    """Send the job's task the signal a scheduler sends on preemption (SIGUSR2 for submitit's local jobs; the local
    controller itself only forwards SIGTERM, so the signal goes to its child, as SLURM delivers it to the task)."""
    controller = job._process.pid  # type: ignore[attr-defined]
    children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    assert children, "the job's task has not started"
    for pid in children:
        os.kill(int(pid), signal.SIGUSR2)


def test_local_sweep_run_killed_midway_is_requeued_and_completes(tmp_path: Path) -> None:
    runs = sw.expand(["betavae"], ["shapes3d-synth"], 1, "smoke",
                     [*SMOKE, "eval.figures=False", "train.steps=2000", "train.ckpt_every=10", "train.log_every=10"],
                     tmp_path, device="cpu")
    ex = sw.executor("local", tmp_path / "submitit", sw.SlurmOptions(max_requeue=2))
    job = ex.submit(sw.RunJob(runs[0]))
    ckpt = Path(runs[0].dir) / "ckpt.pt"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.5)
    assert ckpt.exists(), job.stderr()
    _preempt(job)
    assert job.result().startswith("run 0: seed 0: done")
    logs = job.stderr() or ""
    assert "resuming" in logs, logs
    record = json.loads((Path(runs[0].dir) / "result.json").read_text())
    assert record["status"] == "complete" and "mig" in record["metrics"]
    steps = [json.loads(line)["step"] for line in (Path(runs[0].dir) / "stats.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 2000  # resumed, no step logged twice
    assert "Requeued job" in (job.stdout() or "")


def test_failure_a_retry_cannot_fix_is_not_requeued(tmp_path: Path) -> None:
    runs = sw.expand(["betavae"], ["shapes3d-synth"], 1, "smoke", [*SMOKE, "train.lr=1e9"], tmp_path, device="cpu")
    record = sw.submit(runs, "debug", tmp_path, log=lambda m: None)
    assert record["results"][0].startswith("run 0 failed: non-finite loss")
    assert (Path(runs[0].dir) / "failed.json").exists()
    assert [r["state"] for r in sw.status(tmp_path)] == ["failed"]


FAKE_SBATCH = """#!/bin/sh
# Records what benchbench submits; answers like SLURM's sbatch.
n=$(ls "$SBATCH_LOG" 2>/dev/null | wc -l)
cp "$1" "$SBATCH_LOG/$n.sh"
echo "Submitted batch job $((100 + n))"
"""


def test_slurm_submission_arrays_and_dependencies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake sbatch on PATH: stage jobs first, then one array per configuration depending on its stage job."""
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch"
    bin_dir.mkdir()
    log.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")  # submitit only checks that srun exists
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_LOG", str(log))
    runs = sw.expand(["pdae", "betavae"], ["shapes3d-synth"], 2, "smoke", SMOKE, tmp_path)
    record = sw.submit(runs, "slurm", tmp_path, sw.SlurmOptions(partition="gpu", time_min=90, mem_gb=32),
                       wait=False, log=lambda m: None)
    scripts = [(log / f"{i}.sh").read_text() for i in range(len(list(log.iterdir())))]
    assert len(scripts) == 3  # the pdae stage job, the pdae array, the betavae array
    assert record["stage_jobs"] == {"pdae/shapes3d-synth": "100"}
    assert "#SBATCH --partition=gpu" in scripts[0] and "#SBATCH --time=90" in scripts[0]
    assert "#SBATCH --mem=32GB" in scripts[1] and "#SBATCH --array=0-1" in scripts[1]
    assert "#SBATCH --dependency=afterok:100" in scripts[1]
    assert "--dependency" not in scripts[2] and "#SBATCH --array=0-1" in scripts[2]
    assert sorted(record["run_jobs"]) == ["0", "1", "2", "3"]
    assert [r["state"] for r in sw.status(tmp_path)] == ["queued"] * 4


def test_slurm_launcher_without_slurm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    with pytest.raises(BenchbenchError, match="--launcher local"):
        sw.executor("slurm", tmp_path / "submitit")


def test_report_while_a_run_is_writing(tmp_path: Path, invoke) -> None:
    """Records appear atomically: a report taken at any moment of another process's run sees the finished runs and
    lists the unfinished one as incomplete, never a partial record."""
    import subprocess
    import sys

    from benchbench import report

    base = ["run", "--method", "betavae", "--dataset", "shapes3d-synth", "--preset", "smoke", "--no-progress",
            "--metrics", "mig", "--out", str(tmp_path)]
    assert invoke(base)[0] == 0
    proc = subprocess.Popen([sys.executable, "-m", "benchbench", *base, "--set", "train.steps=300",
                             "--set", "train.ckpt_every=5"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen_incomplete = False
    try:
        while proc.poll() is None:
            text = report.build_report(tmp_path, "markdown", write=False)
            assert "| β-VAE | 1 |" in text and "smoke preset" in text  # the finished run is always there
            seen_incomplete |= "incomplete: runs/shapes3d-synth/betavae/" in text
            time.sleep(0.2)
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0 and seen_incomplete
    assert len(report.load_frame(tmp_path).drop_duplicates(["config_hash", "seed"])) == 2
