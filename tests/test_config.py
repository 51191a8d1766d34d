"""Typed overrides, presets and config hashing."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from benchbench.config import Preset, TrainConfig, config_hash, override, resolve, select_preset, to_dict
from benchbench.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: int = 3
    name: str = "a"


@dataclass(frozen=True)
class Outer:
    lr: float = 1e-4
    steps: int = 10
    flag: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    dims: tuple[int, ...] = (1, 2)
    maybe: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_override_parses_each_type() -> None:
    cfg = Outer()
    assert override(cfg, "lr", "2e-4").lr == 2e-4
    assert override(cfg, "lr", "1").lr == 1.0 and isinstance(override(cfg, "lr", "1").lr, float)
    assert override(cfg, "steps", "25").steps == 25
    assert override(cfg, "flag", "True").flag is True
    assert override(cfg, "betas", "(0.5, 0.9)").betas == (0.5, 0.9)
    assert override(cfg, "dims", "[4, 5, 6]").dims == (4, 5, 6)
    assert override(cfg, "maybe", "None").maybe is None
    assert override(cfg, "maybe", "7").maybe == 7
    assert override(cfg, "inner.size", "9").inner.size == 9
    assert override(cfg, "inner.name", "center").inner.name == "center"  # bare word = string
    assert cfg == Outer()  # frozen: the original is untouched


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("stepz", "3", "did you mean steps"),
        ("steps", "2.5", "expected an integer"),
        ("steps", "many", "expected an integer"),
        ("lr", "fast", "expected a number"),
        ("flag", "1", "expected True or False"),
        ("betas", "(1, 2, 3)", "expected 2 values"),
        ("inner", "3", "is a group"),
        ("inner.sise", "3", "did you mean inner.size"),
        ("lr.x", "3", "has no sub-keys"),
    ],
)
def test_override_rejects_bad_input(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        override(Outer(), key, value)
    assert "\n" not in str(info.value)


def test_config_hash_ignores_seed_only() -> None:
    a = resolve("betavae", "shapes3d-synth", "smoke", 0)
    b = resolve("betavae", "shapes3d-synth", "smoke", 4)
    c = resolve("betavae", "shapes3d-synth", "smoke", 0, ["train.lr=0.5"])
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert to_dict(c)["train"]["lr"] == 0.5


def test_resolve_rejects_unknown_preset_and_fixed_keys() -> None:
    with pytest.raises(ConfigError, match="no preset 'quik'.*did you mean quick"):
        resolve("betavae", "shapes3d-synth", "quik", 0)
    with pytest.raises(ConfigError, match="use the --seeds N"):
        resolve("betavae", "shapes3d-synth", "smoke", 0, ["seed=3"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        resolve("betavae", "shapes3d-synth", "smoke", 0, ["train.lr"])


def test_select_preset_per_family() -> None:
    a, b = Preset("A", TrainConfig()), Preset("B", TrainConfig())
    presets = {"paper": {"default": a, "celeba": b}}
    assert select_preset(presets, "paper", "celeba", "m") is b
    assert select_preset(presets, "paper", "shapes3d", "m") is a
