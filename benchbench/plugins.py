"""Third-party methods: entry-point loading, one-line errors for broken plugins, registration checks.

A plugin distribution declares modules in the entry-point group ``benchbench.methods``; importing a module runs
its ``@register_method`` decorators (README, "Writing a method"). A plugin whose import fails never takes the
built-ins down: it is skipped with one line on stderr naming the entry point, its distribution and the exception,
and asking for one of its methods by name repeats that line as the error.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from benchbench.errors import ConfigError

REQUIRED_PRESETS = ("smoke", "quick", "paper")

_warned: set[str] = set()


def describe(ep: EntryPoint) -> dict[str, Any]:
    """{"entry_point", "module", "distribution", "version"} of an entry point (distribution fields may be None)."""
    dist = getattr(ep, "dist", None)
    return {"entry_point": ep.name, "module": ep.value.split(":")[0],
            "distribution": getattr(dist, "name", None) if dist is not None else None,
            "version": getattr(dist, "version", None) if dist is not None else None}


def failure_line(info: dict[str, Any], exc: BaseException) -> str:
    """``plugin 'x' (module m, distribution d 0.1) failed to load: ValueError: ...``, on one line."""
    where = f"module {info['module']}"
    if info.get("distribution"):
        where += f", distribution {info['distribution']} {info.get('version') or ''}".rstrip()
    msg = " ".join(str(exc).split()) or "(no message)"
    return f"plugin {info['entry_point']!r} ({where}) failed to load: {type(exc).__name__}: {msg}"


def load(group: str, kind: str, on_module: Callable[[dict[str, Any] | None], None]) -> dict[str, str]:
    """Import every module of the entry-point ``group``; returns {entry point name: failure line} of broken ones.

    ``on_module(info)`` is called before each import (and with None after it), so the registry can note which
    plugin registered which entry.
    """
    broken: dict[str, str] = {}
    for ep in entry_points(group=group):
        info = describe(ep)
        on_module(info)
        try:
            importlib.import_module(info["module"])
        except Exception as exc:  # a broken plugin must not take the built-ins down with it
            line = failure_line(info, exc)
            broken[ep.name] = line
            if line not in _warned:
                _warned.add(line)
                print(f"warning: {kind} {line}; skipped", file=sys.stderr, flush=True)
        finally:
            on_module(None)
    return broken


def check_method(name: str, meta: dict[str, Any]) -> None:
    """What ``@register_method`` insists on: a frozen config dataclass, and ``smoke``, ``quick`` and ``paper``
    presets, each a :class:`~benchbench.config.Preset` or a dict ``{dataset family | "default": Preset}``.

    Raises:
        ConfigError: naming the method and what is missing.
    """
    from benchbench.config import Preset

    config = meta.get("config")
    if config is None or not dataclasses.is_dataclass(config):
        raise ConfigError(f"method {name!r}: register it with config=<a frozen dataclass of its settings>")
    presets = meta.get("presets")
    if not isinstance(presets, dict):
        raise ConfigError(f"method {name!r}: register it with presets={{'smoke': Preset(...), 'quick': ..., "
                          f"'paper': ...}}")
    missing = [p for p in REQUIRED_PRESETS if p not in presets]
    if missing:
        raise ConfigError(f"method {name!r} has no {', '.join(missing)} preset(s); every method needs "
                          f"{', '.join(REQUIRED_PRESETS)} (Preset(model=..., train=TrainConfig(...)))")
    for key, value in presets.items():
        values = value.values() if isinstance(value, dict) else [value]
        if not all(isinstance(v, Preset) for v in values):
            raise ConfigError(f"method {name!r}: preset {key!r} must be a benchbench.config.Preset "
                              f"(or a dict of them by dataset family), got {type(value).__name__}")
