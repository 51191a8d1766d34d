"""Kill a smoke run at random points, including inside checkpoint and result writes, then run it again.

Each trial starts ``benchbench run`` (β-VAE, shapes3d-synth, smoke preset, a checkpoint every 2 of its 20 steps
and a log line every step) and SIGKILLs it once: even trials at a random moment between the start of training
(config.json written) and the time an uninterrupted run takes to finish; odd trials at a chosen file event of a
chosen checkpoint write (after its digest sidecar, half-way through its temporary file, with the temporary written
but not renamed, just after the rename) or half-way through writing ``result.json``. The same command is then run
to completion. A trial passes when the final metrics equal those of an uninterrupted run bit for bit, no ``*.tmp``
file is left anywhere under the results folder, ``stats.jsonl`` holds every step exactly once and in order, and the
final checkpoint passes its checksum.

    OMP_NUM_THREADS=1 python benchmarks/bench_kill_resume.py [--trials 20] [--seed 0] [--work DIR] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ARGS = ["run", "--method", "betavae", "--dataset", "shapes3d-synth", "--preset", "smoke", "--seeds", "1",
        "--no-progress", "--metrics", "mig", "--set", "train.ckpt_every=2", "--set", "train.log_every=1",
        "--set", "eval.figures=False"]
STEPS = 20
CKPT_WRITES = STEPS // 2
PHASES = ("after-digest", "mid-write", "before-rename", "after-rename", "result-mid-write")

# Runs the CLI with ``store.atomic_write_bytes`` wrapped so that the process SIGKILLs itself at one file event.
CHILD = textwrap.dedent('''
    import os, signal, sys, tempfile
    from benchbench import store
    from benchbench.cli import main

    target, nth, phase = os.environ["KB_FILE"], int(os.environ["KB_NTH"]), os.environ["KB_PHASE"]
    real = store.atomic_write_bytes
    seen = [0]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def partial(path, data, frac):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=store.tmp_prefix(path), suffix=".tmp")
        os.write(fd, data[: int(len(data) * frac)])
        os.fsync(fd)
        die()

    def wrapped(path, data):
        if path.name == target:
            seen[0] += 1
            if seen[0] == nth:
                if phase == "after-digest":
                    die()
                if phase in ("mid-write", "result-mid-write"):
                    partial(path, data, 0.5)
                if phase == "before-rename":
                    partial(path, data, 1.0)
                real(path, data)
                die()  # after-rename
        real(path, data)

    store.atomic_write_bytes = wrapped
    sys.argv = ["benchbench", *sys.argv[1:]]
    main()
''')


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _cli(out: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchbench", *ARGS, "--out", str(out)], capture_output=True,
                          text=True, env=_env(), timeout=900)
    return proc, time.perf_counter() - t0


def _started(out: Path, proc: subprocess.Popen) -> float:
    """Wait until the run has written its config.json (imports and planning done); returns the seconds waited."""
    t0 = time.perf_counter()
    while proc.poll() is None and not list(out.glob("runs/*/*/*/seed*/config.json")):
        time.sleep(0.02)
    return time.perf_counter() - t0


def _reference(out: Path) -> tuple[float, float]:
    """Run uninterrupted; returns (seconds before config.json appeared, seconds from then to the end)."""
    proc = subprocess.Popen([sys.executable, "-m", "benchbench", *ARGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    startup = _started(out, proc)
    t0 = time.perf_counter()
    _, err = proc.communicate(timeout=900)
    if proc.returncode:
        raise SystemExit(f"reference run failed: {err.strip().splitlines()[-1]}")
    return startup, time.perf_counter() - t0


def _metrics(out: Path) -> dict[str, float]:
    (path,) = out.rglob("result.json")
    return {k: v["value"] for k, v in json.loads(path.read_text())["metrics"].items()}


def _killed_run(out: Path, rng: random.Random, trial: int, ref_seconds: float) -> str:
    """Start the run and kill it once; returns a description of the kill point."""
    if trial % 2 == 0:  # a random moment between the start of training and the end of scoring
        delay = rng.uniform(0.0, ref_seconds)
        proc = subprocess.Popen([sys.executable, "-m", "benchbench", *ARGS, "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
        _started(out, proc)
        try:
            proc.wait(timeout=delay)
            return f"{delay:.1f} s into the run (finished first)"
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stats = next(out.rglob("stats.jsonl"), None)
            steps = len(stats.read_text().splitlines()) if stats else 0
            return f"{delay:.1f} s into the run ({steps} log lines written)"
    phase = rng.choice(PHASES)
    target, nth = ("result.json", 1) if phase.startswith("result") else ("ckpt.pt", rng.randint(1, CKPT_WRITES))
    env = {**_env(), "KB_FILE": target, "KB_NTH": str(nth), "KB_PHASE": phase}
    proc = subprocess.run([sys.executable, "-c", CHILD, *ARGS, "--out", str(out)], capture_output=True, text=True,
                          env=env, timeout=900)
    return f"{phase} of {target} write {nth} (rc {proc.returncode})"


def _check(out: Path, reference: dict[str, float]) -> list[str]:
    from benchbench import integrity

    problems = []
    if _metrics(out) != reference:
        problems.append(f"metrics {_metrics(out)} != {reference}")
    tmps = [str(p) for p in out.rglob("*.tmp")]
    if tmps:
        problems.append(f"leftover temporaries {tmps}")
    (stats,) = out.rglob("stats.jsonl")
    steps = [json.loads(line)["step"] for line in stats.read_text().splitlines()]
    if steps != list(range(1, STEPS + 1)):
        problems.append(f"stats steps {steps}")
    (ckpt,) = out.rglob("ckpt.pt")
    if integrity.check(ckpt) != "ok":
        problems.append(f"final checkpoint {integrity.check(ckpt)}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/benchbench-killbench"))
    parser.add_argument("--data", type=Path, default=Path("/tmp/benchbench-killbench-data"),
                        help="Data folder (kept between invocations: it holds the synthetic map cache).")
    a = parser.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    os.environ.setdefault("BENCHBENCH_DATA", str(a.data))
    t_all = time.perf_counter()
    cpu0 = os.times()
    startup, ref_seconds = _reference(a.work / "reference")
    reference = _metrics(a.work / "reference")
    print(f"reference run: {startup:.1f} s to start, {ref_seconds:.1f} s to train and score; metrics {reference}",
          flush=True)
    rng = random.Random(a.seed)
    passed = 0
    for trial in range(a.trials):
        out = a.work / f"trial{trial:02d}"
        where = _killed_run(out, rng, trial, ref_seconds)
        resumed, seconds = _cli(out)
        problems = [f"rerun failed: {resumed.stderr.strip()[-300:]}"] if resumed.returncode else _check(out, reference)
        note = "resumed" if "resuming" in resumed.stderr else "skipped" if "complete already" in resumed.stdout \
            else "restarted"
        passed += not problems
        print(f"trial {trial:2d}: killed at {where}; rerun {note} in {seconds:.1f} s: "
              f"{'ok' if not problems else '; '.join(problems)}", flush=True)
    cpu1 = os.times()
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    print(f"{passed}/{a.trials} identical final metrics, no leftover temporaries, each step logged once "
          f"({time.perf_counter() - t_all:.0f} s wall, {cpu:.0f} s CPU of child processes)")
    if passed != a.trials:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
