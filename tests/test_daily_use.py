"""Day-to-day use: code identity, invocation records, safe preset defaults and estimates, Ctrl-C checkpoints, status of
plain runs, quiet warnings, throttled progress and run.log, export-codes, seed ranges and sweep grids."""

from __future__ import annotations

import json
import signal
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from benchbench import codeid, progress, quiet, runner, store
from benchbench.cliparse import parse_grid, parse_seeds, split_values
from benchbench.config import TrainConfig, resolve
from benchbench.datasets.base import DataSpec, ImageData
from benchbench.defaults import choose_preset, estimate, plan_line
from benchbench.errors import ConfigError
from benchbench.method import Method
from benchbench.train import train

# Seeds and grids.


def test_seed_ranges_and_lists() -> None:
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds(2) == [0, 1]
    assert parse_seeds("3-7") == [3, 4, 5, 6, 7]
    assert parse_seeds("0,2,5") == [0, 2, 5] and parse_seeds("0, 3-4, 3") == [0, 3, 4]
    for bad in ("0", "7-3", "a", "1,,2", "-1"):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)


def test_grid_is_every_combination() -> None:
    assert parse_grid([]) == [()]
    grid = parse_grid(["model.beta=1,4,8", "train.lr=1e-4,1e-3"])
    assert len(grid) == 6 and grid[0] == ("model.beta=1", "train.lr=1e-4") and grid[-1] == ("model.beta=8",
                                                                                             "train.lr=1e-3")
    assert split_values("(0.9,0.99),(0.5,0.9)") == ["(0.9,0.99)", "(0.5,0.9)"]
    for bad in (["model.beta"], ["model.beta=1,,2"], ["model.beta=1", "model.beta=2"]):
        with pytest.raises(ConfigError, match="--grid"):
            parse_grid(bad)


def test_sweep_grid_expands_to_distinct_configurations(tmp_path: Path, invoke) -> None:
    from benchbench import sweep as sw

    runs = sw.expand(["betavae"], ["shapes3d-synth"], [3, 5], "smoke", ["eval.metrics=('mig',)"], tmp_path,
                     grid=parse_grid(["model.beta=1,8"]))
    assert [(r.seed, r.overrides[-1]) for r in runs] == [(3, "model.beta=1"), (5, "model.beta=1"),
                                                         (3, "model.beta=8"), (5, "model.beta=8")]
    assert len({Path(r.dir).parent for r in runs}) == 2
    code, _, err = invoke(["sweep", "--methods", "betavae", "--datasets", "shapes3d-synth", "--preset", "smoke",
                           "--grid", "model.beta=1,x", "--launcher", "debug", "--out", str(tmp_path)])
    assert code == 2 and err.count("\n") == 1 and "betavae on shapes3d-synth with model.beta=x" in err


# Code identity.


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})


def test_git_state_of_a_checkout(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    f = tmp_path / "plug.py"
    f.write_text("x = 1\n")
    assert codeid.git_state(f)["commit"] is None  # untracked: not a checkout of this file
    _git(tmp_path, "add", "plug.py")
    _git(tmp_path, "commit", "-qm", "one")
    codeid.git_state.cache_clear()
    clean = codeid.git_state(f)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    f.write_text("x = 2\n")
    codeid.git_state.cache_clear()
    dirty = codeid.git_state(f)
    assert dirty["commit"] == clean["commit"] and dirty["dirty"] and dirty["diff_sha256"]
    codeid.git_state.cache_clear()


def test_builtin_key_ignores_uncommitted_changes_but_says_why_it_reuses() -> None:
    base = {"kind": "builtin", "package": "benchbench", "version": "0.1.0", "commit": "a" * 40, "dirty": False,
            "diff_sha256": None}
    dirty = {**base, "dirty": True, "diff_sha256": "f" * 64}
    assert codeid.code_key(base) == codeid.code_key(dirty)
    assert codeid.code_key(base) != codeid.code_key({**base, "commit": "b" * 40})
    assert codeid.reuse_note(base, base) is None
    assert "commit to retrain" in codeid.reuse_note(base, dirty)
    assert codeid.short(dirty) == "benchbench 0.1.0 @ aaaaaaa (+uncommitted changes)"
    cfg = resolve("betavae", "shapes3d-synth", "smoke", 0)
    from benchbench.config import config_hash

    assert config_hash(cfg, codeid.code_key(base)) == config_hash(cfg, codeid.code_key(dirty))
    assert config_hash(cfg, codeid.code_key(base)) != config_hash(cfg, codeid.code_key({**base, "version": "0.2"}))


def test_plugin_identity_covers_its_source(tmp_path: Path) -> None:
    ident = codeid.method_identity(TinyAE, {"distribution": "tiny", "version": "1.0"})
    assert ident["kind"] == "plugin" and ident["source_sha256"] and ident["distribution"] == "tiny"
    files = [tmp_path / "a.py"]
    files[0].write_text("def loss(): return 1\n")
    before = codeid.source_digest(files)
    files[0].write_text("def loss(): return 2\n")
    assert codeid.source_digest(files) != before
    assert codeid.method_identity(runner.RunSpec, None)["kind"] == "builtin"


# Safe defaults.


def test_preset_defaults_to_quick_on_cpu_with_a_notice() -> None:
    assert choose_preset("paper", torch.device("cpu")) == ("paper", None)
    preset, notice = choose_preset(None, torch.device("cpu"))
    assert preset == "quick" and "--preset paper" in notice
    assert choose_preset(None, torch.device("cuda")) == ("paper", None)


def test_estimate_from_two_timed_steps_then_from_history(tmp_path: Path) -> None:
    cfg = resolve("betavae", "shapes3d-synth", "smoke", 0, ["train.steps=300"])
    data = runner.build_data(cfg, None)
    rate, how = estimate(cfg, data, torch.device("cpu"), tmp_path)
    assert rate is not None and rate > 0 and how == "timed on two steps"
    line = plan_line(cfg, 3, rate, how, torch.device("cpu"))
    assert line.startswith("betavae on shapes3d-synth: preset smoke, 300 steps x 3 seeds, about ")
    d = store.run_dir(tmp_path, "shapes3d-synth", "betavae", "smoke", "abcd0123", 0)
    store.atomic_write_json(d / "config.json", {"config": {"train": {"steps": 100}}})
    store.atomic_write_json(d / "result.json", {"timing": {"train_seconds": 50.0}, "device": "cpu"})
    assert estimate(cfg, data, torch.device("cpu"), tmp_path) == (0.5, "from earlier runs here")
    assert "unknown" in plan_line(cfg, 1, None, "unknown until training starts", torch.device("cpu"))


# Ctrl-C.

SPEC = DataSpec(name="tiny", channels=3, resolution=8, source="synthetic")


class TinyData(ImageData):
    spec = SPEC

    def __len__(self) -> int:
        return 20

    def images(self, indices: np.ndarray) -> np.ndarray:
        return np.full((len(indices), 8, 8, 3), 100, np.uint8)


class TinyAE(Method):
    """Presses Ctrl-C (SIGINT to itself) during the loss of step ``press_at``."""

    def __init__(self, press_at: int = 0) -> None:
        super().__init__(None, SPEC)
        self.lin = nn.Linear(192, 192)
        self.calls, self.press_at = 0, press_at

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        if self.calls == self.press_at:
            signal.raise_signal(signal.SIGINT)
        return {"loss": (self.lin(x.flatten(1)) - x.flatten(1)).square().mean()}

    def encode(self, x: Tensor) -> Tensor:
        return x.flatten(1)[:, :2]


def test_ctrl_c_finishes_the_step_writes_a_checkpoint_and_resumes(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=10, batch_size=2, ckpt_every=100, log_every=1, amp=False)
    said: list[str] = []
    before = signal.getsignal(signal.SIGINT)  # whatever an earlier test or pytest left installed
    with pytest.raises(KeyboardInterrupt):
        train(TinyAE(press_at=3), TinyData(), cfg, tmp_path, 0, "h", torch.device("cpu"), False, said.append)
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["step"] == 3
    assert any("Ctrl-C: checkpoint written at step 3/10" in s for s in said)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored
    said.clear()
    train(TinyAE(), TinyData(), cfg, tmp_path, 0, "h", torch.device("cpu"), False, said.append)
    assert any("resuming" in s and "step 3/10" in s for s in said)
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["step"] == 10


# Progress and quiet output.


def test_plain_progress_is_throttled_and_closes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "is_tty", lambda stream=None: False)
    lines: list[str] = []
    with progress.bar(100, "training seed 0", True, lines.append, unit="step", every=3600) as bar:
        for _ in range(100):
            bar.update()
    assert lines == []  # a short phase prints nothing: its summary line says what happened
    with progress.bar(4, "training seed 0", False, lines.append, unit="step", every=0) as bar:
        for _ in range(4):
            bar.update()
    assert [ln.split(" (")[0] for ln in lines[:3]] == [f"training seed 0: {i}/4 step" for i in (1, 2, 3)]
    assert "ETA" in lines[0] and lines[-1].startswith("training seed 0: 4/4 step in ") and len(lines) == 4


def test_tty_bars_send_plain_lines_to_run_log_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(progress, "is_tty", lambda stream=None: True)
    log = progress.RunLog(tmp_path / "run.log", echo=None)
    with progress.bar(3, "scoring", True, log, unit="metric", every=0) as bar:
        for _ in range(3):
            bar.update()
    text = (tmp_path / "run.log").read_text()
    assert "scoring: 1/3 metric" in text and "scoring: 3/3 metric in" in text
    assert "scoring: 1/3 metric" not in capsys.readouterr().err  # the terminal shows the bar instead


def test_convergence_warnings_are_summarised_once() -> None:
    from sklearn.exceptions import ConvergenceWarning

    said: list[str] = []
    with pytest.warns(UserWarning, match="other"), quiet.summarised("dci", said.append):
        for _ in range(3):
            warnings.warn("lbfgs failed to converge (status=1)", ConvergenceWarning, stacklevel=1)
        warnings.warn("other", UserWarning, stacklevel=1)
    assert said == ["  dci: 3 sklearn ConvergenceWarnings (first: lbfgs failed to converge (status=1))"]
    assert quiet.once("warning: x", said.append) and not quiet.once("warning: x", said.append)


# A run end to end: records, run.log, warnings once, status, export-codes.


@pytest.fixture(scope="module")
def random_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("out")
    said: list[str] = []
    sets = ["eval.metrics=('mig',)", "eval.figures=False"]
    runner.run("random", "shapes3d-synth", [0], "smoke", sets, out, "cpu", progress=False, log=said.append)
    runner.run("random", "shapes3d-synth", [0, 1], "smoke", sets, out, "cpu", progress=False, log=said.append)
    return out, said


def test_records_carry_code_and_invocation_and_a_run_log(random_run: tuple[Path, list[str]]) -> None:
    out, said = random_run
    seed0 = next(out.rglob("seed0"))
    for name in ("config.json", "result.json"):
        rec = json.loads((seed0 / name).read_text())
        assert rec["code"]["kind"] == "builtin" and rec["code"]["version"]
        assert rec["invocation"]["host"] and rec["invocation"]["started"] and rec["invocation"]["argv"]
    log = (seed0 / "run.log").read_text()
    assert "start: " in log and "  mig " in log and "complete: result.json written" in log
    assert sum("seed 0: complete already" in s for s in said) == 0  # status lines are returned, not logged
    plan = [s for s in said if s.startswith("random on shapes3d-synth: preset smoke")]
    assert plan == ["random on shapes3d-synth: preset smoke, 0 steps; never trained, scoring only",
                    "random on shapes3d-synth: preset smoke, 0 steps (1 seed complete already); never trained, "
                    "scoring only"]


def test_dirty_tree_note_is_said_once_per_command(random_run: tuple[Path, list[str]]) -> None:
    _, said = random_run
    assert sum(s.startswith("note: benchbench has uncommitted changes") for s in said) <= 1
    assert len([s for s in said if s.startswith("warning: skipping")]) == len(set(s for s in said
                                                                                  if s.startswith("warning: skipping")))


def test_status_lists_plain_runs(random_run: tuple[Path, list[str]], invoke, tmp_path: Path) -> None:
    out, _ = random_run
    code, text, _ = invoke(["status", "--out", str(out)])
    assert code == 0 and text.splitlines()[0] == f"runs under {out / 'runs'}:"
    assert text.splitlines()[-1].strip() == "2 done"
    stopped = store.run_dir(tmp_path, "shapes3d-synth", "betavae", "smoke", "12345678", 4)
    store.atomic_write_json(stopped / "config.json", {"seed": 4, "config": {"train": {"steps": 20}}})
    (stopped / "stats.jsonl").write_text('{"step": 5}\n{"step": 10}\n')
    code, text, _ = invoke(["status", "--out", str(tmp_path)])
    assert "seed 4   stopped  step 10/20" in text
    code, text, _ = invoke(["status", "--out", str(tmp_path / "none")])
    assert code == 0 and text.startswith("nothing under")


def test_export_codes_writes_codes_and_factors(random_run: tuple[Path, list[str]], invoke, tmp_path: Path) -> None:
    from benchbench.baselines.random_floor import RandomFloor

    out, _ = random_run
    seed0 = next(out.rglob("seed0"))
    dest = tmp_path / "codes.npz"
    code, text, err = invoke(["export-codes", str(seed0), "--to", str(dest), "--num", "64", "--device", "cpu"])
    assert code == 0, err
    assert text.startswith(f"{dest}: ") and "codes [64, 4]" in text
    z = np.load(dest)
    assert z["codes"].shape == (64, 4) and z["factors"].shape == (64, 6) and list(z["factor_names"])[0]
    assert np.all(np.diff(z["indices"]) > 0)
    cfg = resolve("random", "shapes3d-synth", "smoke", 0)
    data = runner.build_data(cfg, None)
    model = RandomFloor(cfg.model, data.spec)
    model.load_state_dict(torch.load(seed0 / "ckpt.pt", weights_only=False)["model"])
    from benchbench.datasets.base import to_model_input

    with torch.no_grad():
        direct = model.eval().encode(to_model_input(data.images(z["indices"][:8]))).numpy()
    np.testing.assert_allclose(z["codes"][:8], direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(z["factors"], data.index_to_factors(z["indices"]))
    code, _, err = invoke(["export-codes", str(tmp_path), "--device", "cpu"])
    assert code == 2 and "not a run folder" in err and err.count("\n") == 1


def test_ctrl_c_on_the_command_line_checkpoints_and_exits_130(tmp_path: Path) -> None:
    import os
    import sys
    import time

    args = [sys.executable, "-m", "benchbench", "run", "--method", "betavae", "--dataset", "shapes3d-synth",
            "--preset", "smoke", "--no-progress", "--metrics", "mig", "--set", "train.steps=5000",
            "--set", "train.ckpt_every=5000", "--set", "train.log_every=5", "--out", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    while time.time() < deadline and not list(tmp_path.rglob("stats.jsonl")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    step = torch.load(next(tmp_path.rglob("ckpt.pt")), weights_only=False)["step"]
    assert 5 <= step < 5000 and f"Ctrl-C: checkpoint written at step {step}/5000" in err
    assert err.strip().splitlines()[-1] == "interrupted; run the same command again to resume"
    assert "interrupted (Ctrl-C)" in next(tmp_path.rglob("run.log")).read_text()
