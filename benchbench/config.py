"""Frozen-dataclass configs, named presets and typed ``--set key=value`` overrides.

A run is fully described by a :class:`RunConfig`: the method's model config, the shared
:class:`TrainConfig`, the dataset options (:class:`DataConfig`) and the metric settings
(:class:`EvalConfig`). Presets (``smoke`` for tests, ``quick`` for a CPU laptop, ``paper`` for the
published setting) are plain Python objects registered beside each method; ``-synth`` datasets use
the preset of the real dataset they imitate (their ``family``).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from benchbench.datasets.base import DEFAULT_OMITTED, NOT_IDENTITY, DataConfig
from benchbench.errors import ConfigError
from benchbench.metrics.settings import EvalConfig, eval_preset

PRESETS = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the one shared training loop (train.py).

    Attributes:
        steps: optimiser steps (0: never trained, as the ``random`` floor).
        batch_size: images per step.
        lr, betas, eps, weight_decay: Adam(W) settings; AdamW when weight_decay > 0.
        grad_clip: max global gradient norm, or 0 for none.
        ema_decay: EMA decay of the weights used for evaluation, or 0 for no EMA.
        amp: bf16 autocast when training on CUDA (ignored on CPU).
        log_every: steps between lines of ``stats.jsonl``.
        ckpt_every: steps between atomic checkpoints (a final one is always written).
        warmup_steps: linear learning-rate warm-up length (0: none).
        lr_schedule: "constant" (lr after the warm-up) or "cosine" (after the warm-up, lr * (1 + cos(pi p)) / 2
            with p the fraction of the remaining steps done: InfoDiffusion's warm-up + cosine annealing to 0).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    amp: bool = True
    log_every: int = 50
    ckpt_every: int = 500
    warmup_steps: int = 0
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"train.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")

    def learning_rate(self, step: int) -> float:
        """The learning rate of (0-based) optimiser step ``step``: linear warm-up, then constant or cosine."""
        if self.warmup_steps and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "cosine":
            done = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
        return self.lr


@dataclass(frozen=True)
class Preset:
    """A method's settings for one preset: its model config, its training config and, optionally, dataset
    options it needs (e.g. ``(("resolution", 32),)`` for a CPU preset of a diffusion model)."""

    model: Any
    train: TrainConfig
    data: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's numbers (the seed included)."""

    method: str
    dataset: str
    preset: str
    seed: int
    model: Any
    train: TrainConfig
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def select_preset(presets: dict[str, Any], preset: str, family: str, method: str) -> Preset:
    """Pick ``presets[preset]``, which is a Preset or a dict ``{family | "default": Preset}``."""
    if preset not in presets:
        close = difflib.get_close_matches(preset, list(presets), n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"method {method!r} has no preset {preset!r}{hint}; choose one of {', '.join(presets)}"
        )
    chosen = presets[preset]
    if isinstance(chosen, dict):
        chosen = chosen.get(family, chosen.get("default"))
        if chosen is None:
            raise ConfigError(f"method {method!r} has no {preset!r} preset for datasets like {family!r}")
    return chosen


# Overrides.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"--set {key}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"--set {key}: expected None, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)):
            raise ConfigError(f"--set {key}: expected a tuple like (1, 2), got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"--set {key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"--set {key}: expected True or False, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"--set {key}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"--set {key}: expected an integer, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"--set {key}: expected a string, got {value!r}")
    raise ConfigError(f"--set {key}: fields of type {_type_name(tp)} cannot be overridden")


def _parse(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word is a string (e.g. --set data.crop=center)


def override(cfg: Any, key: str, text: str, prefix: str = "") -> Any:
    """Return a copy of the dataclass ``cfg`` with the dotted ``key`` set to the parsed ``text``.

    ``prefix`` is the dotted path of ``cfg`` itself (e.g. ``"train."``), so messages name the full key.

    Raises:
        ConfigError: unknown key (with close matches) or a value of the wrong type.
    """
    head, _, rest = key.partition(".")
    names = [f.name for f in fields(cfg)]
    if head not in names:
        close = [prefix + c for c in difflib.get_close_matches(head, names, n=3)]
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"--set {prefix}{key}: unknown key {prefix + head!r}; {hint}"
                          f"known: {', '.join(prefix + n for n in names)}")
    current = getattr(cfg, head)
    if rest:
        if not is_dataclass(current):
            raise ConfigError(f"--set {prefix}{key}: {prefix + head!r} has no sub-keys")
        return replace(cfg, **{head: override(current, rest, text, f"{prefix}{head}.")})
    if is_dataclass(current):
        sub = ", ".join(f"{prefix}{head}.{f.name}" for f in fields(current))
        raise ConfigError(f"--set {prefix}{key}: {prefix + head!r} is a group; set one of {sub}")
    hints = typing.get_type_hints(type(cfg))
    return replace(cfg, **{head: _coerce(_parse(text), hints[head], prefix + key)})


def apply_overrides(cfg: RunConfig, overrides: typing.Iterable[str]) -> RunConfig:
    """Apply ``key=value`` strings in order; ``method``, ``dataset``, ``preset`` and ``seed`` are fixed."""
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=2e-4")
        fixed = key.split(".")[0]
        if fixed in ("method", "dataset", "preset", "seed"):
            option = "--seeds N (runs seeds 0..N-1)" if fixed == "seed" else f"--{fixed}"
            raise ConfigError(f"--set {key}: {fixed} is not a config value; use the {option} option instead")
        cfg = override(cfg, key, text.strip())
    return cfg


# Serialisation and hashing.


def to_dict(cfg: Any) -> Any:
    """Dataclass tree -> JSON-ready dict (tuples become lists)."""
    if is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(v) for v in cfg]
    return cfg


def config_hash(cfg: RunConfig, code: dict[str, Any] | None = None) -> str:
    """8 hex digits identifying everything but the seed (runs differing only in seed share it).

    ``code`` is the code key of the method (:func:`benchbench.codeid.code_key`): the same config trained by
    different code gets a different hash, hence a new run folder."""
    d = to_dict(dataclasses.replace(cfg, seed=0))
    d.pop("seed")
    for key in NOT_IDENTITY:
        d["data"].pop(key, None)
    for key, default in DEFAULT_OMITTED.items():
        if d["data"].get(key) == default:
            d["data"].pop(key)
    if code is not None:
        d["code"] = code
    blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def resolve(
    method: str, dataset: str, preset: str, seed: int, overrides: typing.Iterable[str] = ()
) -> RunConfig:
    """Build the RunConfig of one run from registry facts, the preset and the overrides."""
    from benchbench.registry import datasets, methods

    m = methods.get(method)
    d = datasets.get(dataset)
    chosen = select_preset(m.presets, preset, d.family, method)
    cfg = RunConfig(
        method=method,
        dataset=dataset,
        preset=preset,
        seed=seed,
        model=chosen.model,
        train=chosen.train,
        data=dataclasses.replace(d.meta.get("data_defaults", DataConfig()), **dict(chosen.data)),
        eval=eval_preset(preset),
    )
    return apply_overrides(cfg, overrides)
