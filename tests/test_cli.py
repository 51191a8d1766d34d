"""The command line end to end: bad input, plugins, kill-and-resume, concurrent runs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from benchbench.baselines.beta_vae import BetaVAEConfig
from benchbench.config import Preset, TrainConfig
from benchbench.datasets.base import DataSpec
from benchbench.method import Method
from benchbench.registry import register_method

SMOKE = ["--dataset", "shapes3d-synth", "--preset", "smoke", "--no-progress"]


_NAN = Preset(BetaVAEConfig(), TrainConfig(steps=6, batch_size=4, ckpt_every=2))


@register_method("_nan", config=BetaVAEConfig, presets={"smoke": _NAN, "quick": _NAN, "paper": _NAN})
class NaNMethod(Method):
    """Its loss turns NaN at the fourth step."""

    def __init__(self, cfg: BetaVAEConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.w = nn.Parameter(torch.ones(1))
        self.calls = 0

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        value = (self.w * x.mean()).square()
        return {"loss": value * float("nan") if self.calls >= 4 else value}

    def encode(self, x: Tensor) -> Tensor:
        return x.flatten(1)[:, :4]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchbench", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kw)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder holding one completed smoke run."""
    out = tmp_path_factory.mktemp("results")
    proc = cli("run", "--method", "betavae", "--seeds", "1", "--out", str(out), *SMOKE)
    assert proc.returncode == 0, proc.stderr
    return out


def test_run_then_report(results: Path, invoke) -> None:
    record = json.loads(next(results.rglob("result.json")).read_text())
    assert set(record["metrics"]) == {"factorvae", "mig", "dci", "sap", "modularity", "betavae_score"}
    assert set(record["missing"]) <= {"fid"}  # skipped (with a warning) only when its weights are absent
    assert record["metrics"]["dci"]["settings"]["mode"] == "fast" and record["metrics"]["dci"]["seconds"] >= 0
    assert record["source"] == "synthetic" and record["provenance"]["versions"]["torch"]
    # The protocol and deviation record (benchbench.protocols), the same as `benchbench describe` shows.
    assert record["protocol"]["metric.factor_codes"].startswith("raw") and "method.generator" in record["protocol"]
    assert record["metrics"]["mig"]["code_rule"] == "raw"
    assert any(d.startswith("β=4 is benchbench's choice") for d in record["deviations"])
    assert any("synthetic look-alike" in d for d in record["deviations"])
    described = json.loads(invoke(["describe", "--method", "betavae", "--dataset", "shapes3d-synth", "--preset",
                                   "smoke", "--json"])[1])
    assert (described["protocol"], described["deviations"]) == (record["protocol"], record["deviations"])
    assert described["config_hash"] == record["config_hash"]
    config = json.loads(next(results.rglob("config.json")).read_text())
    assert config["config"]["train"]["steps"] == 20 and config["seed"] == 0
    code, out, _ = invoke(["report", "--out", str(results), "--format", "csv"])
    assert code == 0
    assert out.splitlines()[0] == "dataset,method,preset,metric,mean,std,n"
    assert any(line.startswith("shapes3d-synth,betavae,smoke,mig,") for line in out.splitlines())


def test_completed_seed_is_skipped(results: Path, invoke) -> None:
    before = snapshot(results)
    code, out, _ = invoke(["run", "--method", "betavae", "--seeds", "1", "--out", str(results), *SMOKE])
    assert code == 0 and "complete already, skipped" in out
    assert snapshot(results) == before


def _h5(path: Path, **arrays: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return path


BAD = {
    "unknown method": (["run", "--method", "betavea", "--dataset", "shapes3d-synth"], "did you mean betavae"),
    "unknown dataset": (["run", "--method", "betavae", "--dataset", "shapes3", "--preset", "smoke"],
                        "unknown dataset"),
    "unknown preset": (["run", "--method", "betavae", "--dataset", "shapes3d-synth", "--preset", "fast"],
                       "no preset 'fast'"),
    "unknown key": (SMOKE + ["run", "--method", "betavae", "--set", "train.lrr=1"], "did you mean train.lr"),
    "wrong type": (SMOKE + ["run", "--method", "betavae", "--set", "train.steps=1.5"], "expected an integer"),
    "unknown metric": (SMOKE + ["run", "--method", "betavae", "--metrics", "mgi"],
                       "unknown metric 'mgi'; did you mean"),
    "missing h5": (["run", "--method", "betavae", "--dataset", "shapes3d", "--preset", "smoke",
                    "--set", "data.download=False"], "shapes3d-synth"),
    "failed fetch": (["run", "--method", "betavae", "--dataset", "shapes3d", "--preset", "smoke",
                      "--set", "data.url=http://127.0.0.1:9/"], "shapes3d-synth"),
    "garbage h5": (["run", "--method", "betavae", "--dataset", "shapes3d", "--preset", "smoke"], "3dshapes.h5"),
    "truncated h5": (["run", "--method", "betavae", "--dataset", "shapes3d", "--preset", "smoke"], "3dshapes.h5"),
    "wrong keys": (["run", "--method", "betavae", "--dataset", "shapes3d", "--preset", "smoke"], "images"),
    "wrong shape": (["run", "--method", "betavae", "--dataset", "shapes3d", "--preset", "smoke"], "shape"),
    "device": (SMOKE + ["run", "--method", "betavae", "--device", "cuda"], "no CUDA device"),
    # Method options are checked before any stage is built or run folder written.
    "disdiff space": (SMOKE + ["run", "--method", "disdiff", "--set", "model.space=pixel"], "model.space must be"),
    "disdiff autoencoder": (SMOKE + ["run", "--method", "disdiff", "--set", "model.ldm.autoencoder.kind=gan"],
                            "autoencoder.kind must be"),
    "infodiffusion priors": (SMOKE + ["run", "--method", "infodiffusion", "--set", "model.kld_weight=1"],
                             "not both"),
    "lr schedule": (SMOKE + ["run", "--method", "betavae", "--set", "train.lr_schedule=step"], "lr_schedule"),
    "gpus": (SMOKE + ["run", "--method", "betavae", "--gpus", "2"], "CUDA devices are visible"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_changes_nothing(case: str, results: Path, tmp_path: Path,
                                                   invoke) -> None:
    args, expected = BAD[case]
    args = [a for a in args if a != "run"]
    data = tmp_path / "data"
    data.mkdir()
    good = np.zeros((4, 64, 64, 3), np.uint8)
    labels = np.zeros((4, 6))
    if case == "garbage h5":
        (data / "3dshapes.h5").write_bytes(b"not an hdf5 file at all" * 100)
    elif case == "truncated h5":
        full = _h5(tmp_path / "full.h5", images=good, labels=labels).read_bytes()
        (data / "3dshapes.h5").write_bytes(full[: len(full) // 2])
    elif case == "wrong keys":
        _h5(data / "3dshapes.h5", imgs=good, labels=labels)
    elif case == "wrong shape":
        _h5(data / "3dshapes.h5", images=np.zeros((4, 32, 32, 3), np.uint8), labels=labels)
    before = snapshot(results)
    code, out, err = invoke(["run", *args, "--out", str(results), "--data-dir", str(data)])
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0] and "Traceback" not in err
    assert snapshot(results) == before


def test_unwritable_results_folder(tmp_path: Path, invoke) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = invoke(["run", "--method", "betavae", *SMOKE, "--out", str(blocker / "sub")])
    assert code != 0 and err.strip().count("\n") == 0 and "not writable" in err and "--out" in err
    assert blocker.read_text() == "x"


def test_nan_loss_fails_cleanly_and_keeps_other_runs(results: Path, invoke) -> None:
    before = snapshot(results)
    code, _, err = invoke(["run", "--method", "_nan", *SMOKE, "--out", str(results)])
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code != 0 and len(errors) == 1 and "Traceback" not in err
    assert "non-finite loss (nan) at step 4" in errors[0] and err.strip().endswith(errors[0])
    after = snapshot(results)
    assert {k: after[k] for k in before} == before  # nothing that existed changed
    failed = json.loads(next(results.glob("runs/*/_nan/*/seed0/failed.json")).read_text())
    assert "step 4" in failed["error"]


def test_plugin_method_runs_through_the_cli(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "bbplug-0.1.dist-info").mkdir(parents=True)
    (site / "bbplug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: bbplug\nVersion: 0.1\n")
    (site / "bbplug-0.1.dist-info" / "entry_points.txt").write_text("[benchbench.methods]\ntinyplug = bbplug\n")
    (site / "bbplug.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        import torch
        from torch import nn
        from benchbench.config import Preset, TrainConfig
        from benchbench.method import Method
        from benchbench.registry import register_method

        @dataclass(frozen=True)
        class Cfg:
            dim: int = 3

        P = Preset(Cfg(), TrainConfig(steps=3, batch_size=4))

        @register_method("tinyplug", config=Cfg, presets={"smoke": P, "quick": P, "paper": P})
        class Tiny(Method):
            def __init__(self, cfg, spec):
                super().__init__(cfg, spec)
                self.enc = nn.Linear(3, cfg.dim)
            def loss(self, x):
                return {"loss": self.enc(x.mean((2, 3))).square().mean()}
            def encode(self, x):
                return self.enc(x.mean((2, 3)))
    '''))
    env = {"PYTHONPATH": str(site), "BENCHBENCH_NO_PLUGINS": ""}
    listing = cli("list", env=env)
    assert listing.returncode == 0 and "tinyplug" in listing.stdout
    proc = cli("run", "--method", "tinyplug", "--seeds", "1", "--out", str(tmp_path / "out"), *SMOKE,
               "--metrics", "mig", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "mig" in json.loads(next((tmp_path / "out").rglob("result.json")).read_text())["metrics"]
    hidden = cli("list", env={**env, "BENCHBENCH_NO_PLUGINS": "1"})
    assert "tinyplug" not in hidden.stdout


def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    args = ["run", "--method", "betavae", "--seeds", "1", *SMOKE, "--metrics", "factorvae,mig",
            "--set", "train.steps=200",
            "--set", "train.ckpt_every=10", "--set", "train.log_every=10"]
    proc = subprocess.Popen([sys.executable, "-m", "benchbench", *args, "--out", str(tmp_path / "a")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "a").rglob("ckpt.pt")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = next((tmp_path / "a").rglob("ckpt.pt"))
    killed_at = torch.load(ckpt, weights_only=False)["step"]
    assert 0 < killed_at < 200 and not list((tmp_path / "a").rglob("result.json"))
    resumed = cli(*args, "--out", str(tmp_path / "a"))
    assert resumed.returncode == 0 and "resuming" in resumed.stderr
    straight = cli(*args, "--out", str(tmp_path / "b"))
    assert straight.returncode == 0
    a = json.loads(next((tmp_path / "a").rglob("result.json")).read_text())["metrics"]
    b = json.loads(next((tmp_path / "b").rglob("result.json")).read_text())["metrics"]
    assert {k: v["value"] for k, v in a.items()} == {k: v["value"] for k, v in b.items()}
    wa = torch.load(next((tmp_path / "a").rglob("ckpt.pt")), weights_only=False)["model"]
    wb = torch.load(next((tmp_path / "b").rglob("ckpt.pt")), weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_two_processes_share_a_results_folder(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "benchbench", "run", "--method", "betavae", "--seeds", "3", *SMOKE,
            "--metrics", "mig,dci", "--out", str(tmp_path)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    results = sorted(tmp_path.rglob("result.json"))
    assert len(results) == 3
    for r in results:
        record = json.loads(r.read_text())
        assert record["status"] == "complete" and set(record["metrics"]) == {"mig", "dci"}
    assert not list(tmp_path.rglob("failed.json")) and not list(tmp_path.rglob("*.tmp"))
