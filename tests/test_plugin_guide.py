"""The README's "Writing a method", followed literally: its two files, installed, run; then its loss edited and run
again (a new run trains: results know their code). Also: broken plugins and registration checks.

The README says ``pip install -e ./my-method``; the test installs the same folder with
``pip install --no-deps --no-build-isolation --target SITE`` instead, so the shared virtualenv is never changed:
setuptools builds the real distribution (its ``entry_points.txt`` from the README's pyproject) and the CLI finds
it through ``importlib.metadata`` on ``PYTHONPATH``, the same path a normal install takes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchbench.config import Preset, TrainConfig
from benchbench.errors import ConfigError
from benchbench.registry import Registry

README = Path(__file__).resolve().parent.parent / "README.md"


def guide() -> str:
    text = README.read_text()
    start = text.index("## Writing a method")
    return text[start:text.index("\n## ", start + 1)]


def files_of(section: str) -> dict[str, str]:
    """{relative path: content} of every code block whose first line is a comment naming its file."""
    out = {}
    for block in re.findall(r"```(?:toml|python)\n(.*?)```", section, re.S):
        first, _, rest = block.partition("\n")
        out[first.lstrip("# ").strip()] = rest
    return out


def commands_of(section: str) -> list[list[str]]:
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line.split() for line in block.strip().splitlines()]


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchbench", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env}, timeout=300)


def test_readme_plugin_installs_runs_and_retrains_after_an_edit(tmp_path: Path) -> None:
    section = guide()
    files = files_of(section)
    assert set(files) == {"my-method/pyproject.toml", "my-method/my_method.py"}
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    install, listing, run = commands_of(section)
    assert install[:3] == ["pip", "install", "-e"] and listing == ["benchbench", "list"]
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                          "--quiet", "--target", str(site), install[3]], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), "BENCHBENCH_NO_PLUGINS": ""}
    args = [*run[1:], "--metrics", "mig", "--set", "eval.figures=False", "--out", str(tmp_path / "out"),
            "--no-progress"]

    first = cli(args, env, tmp_path)
    assert first.returncode == 0, first.stderr
    (done,) = list((tmp_path / "out").rglob("result.json"))
    record = json.loads(done.read_text())
    assert record["method"] == "tinyvae" and 0 <= record["metrics"]["mig"]["value"] <= 1
    code = record["code"]
    assert code["kind"] == "plugin" and code["distribution"] == "my-method" and code["version"] == "0.1.0"
    assert record["invocation"]["argv"][:3] == ["benchbench", "run", "--method"] and record["invocation"]["host"]
    assert (done.parent / "run.log").read_text().count("start: benchbench run --method tinyvae") == 1

    again = cli(args, env, tmp_path)
    assert again.returncode == 0 and "complete already, skipped" in again.stdout
    assert "trained by plugin my-method 0.1.0" in again.stdout

    module = site / "my_method.py"
    edited = module.read_text().replace("recon + self.cfg.beta * kl", "recon + 2 * self.cfg.beta * kl")
    assert edited != module.read_text()
    module.write_text(edited)
    retrained = cli(args, env, tmp_path)
    assert retrained.returncode == 0, retrained.stderr
    assert "complete already" not in retrained.stdout and ": done (" in retrained.stdout
    results = sorted((tmp_path / "out").rglob("result.json"))
    assert len(results) == 2 and results[0].parent.parent != results[1].parent.parent  # a new config folder


def _entry_point_site(tmp_path: Path, module_source: str) -> dict[str, str]:
    site = tmp_path / "site"
    info = site / "badplug-0.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 0.2\n")
    (info / "entry_points.txt").write_text("[benchbench.methods]\nbadplug = badplug\n")
    (site / "badplug.py").write_text(textwrap.dedent(module_source))
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), "BENCHBENCH_NO_PLUGINS": ""}


def test_a_broken_plugin_is_one_line_naming_it(tmp_path: Path) -> None:
    env = _entry_point_site(tmp_path, "raise ImportError('needs torch_scatter, which is not installed')\n")
    listing = cli(["list"], env, tmp_path)
    assert listing.returncode == 0 and "betavae" in listing.stdout  # the built-ins survive
    (line,) = [ln for ln in listing.stderr.splitlines() if "badplug" in ln]
    assert "plugin 'badplug' (module badplug, distribution badplug 0.2) failed to load: ImportError: needs " \
           "torch_scatter" in line
    asked = cli(["run", "--method", "badplug", "--dataset", "shapes3d-synth", "--preset", "smoke"], env, tmp_path)
    assert asked.returncode == 2
    assert asked.stderr.strip().splitlines()[-1].startswith("error: method 'badplug': plugin 'badplug'")


def test_a_plugin_without_all_presets_is_rejected_with_its_name(tmp_path: Path) -> None:
    env = _entry_point_site(tmp_path, '''
        from dataclasses import dataclass
        from benchbench.api import Method, Preset, TrainConfig, register_method

        @dataclass(frozen=True)
        class Cfg:
            dim: int = 2

        @register_method("badplug", config=Cfg, presets={"smoke": Preset(Cfg(), TrainConfig(steps=2))})
        class Bad(Method):
            pass
    ''')
    listing = cli(["list"], env, tmp_path)
    assert listing.returncode == 0
    (line,) = [ln for ln in listing.stderr.splitlines() if "badplug" in ln]
    assert "ConfigError: method 'badplug' has no quick, paper preset(s)" in line


@dataclass(frozen=True)
class _Cfg:
    dim: int = 2


def test_registration_checks() -> None:
    from benchbench.plugins import check_method

    reg = Registry("method", (), check=check_method)
    p = Preset(_Cfg(), TrainConfig(steps=1))
    reg.register("ok", config=_Cfg, presets={"smoke": p, "quick": p, "paper": {"default": p}})(object)
    with pytest.raises(ConfigError, match="'nopaper' has no paper preset"):
        reg.register("nopaper", config=_Cfg, presets={"smoke": p, "quick": p})(object)
    with pytest.raises(ConfigError, match="frozen dataclass"):
        reg.register("noconfig", config=dict, presets={"smoke": p, "quick": p, "paper": p})(object)
    with pytest.raises(ConfigError, match="must be a benchbench.config.Preset"):
        reg.register("notpreset", config=_Cfg, presets={"smoke": p, "quick": p, "paper": (_Cfg(), None)})(object)
    assert reg.names() == ["ok"]
