"""One registry class for methods, metrics and datasets.

Entries register themselves with a decorator that carries their facts (a method's config class and
presets, a metric's ``higher_is_better`` and ``needs``, a dataset's ``source``). Built-in modules are
imported on first lookup; third-party methods arrive through the entry-point group
``benchbench.methods`` (each entry point names a module whose import runs the decorator), skipped when
``BENCHBENCH_NO_PLUGINS`` is set (loading, checks and one-line errors: :mod:`benchbench.plugins`).
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from benchbench.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """A registered object and the facts it was registered with."""

    name: str
    obj: Any
    meta: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.meta[key]
        except KeyError:
            raise AttributeError(key) from None


class Registry:
    """Maps a name to an object plus metadata; lookup errors list close matches.

    Args:
        kind: what the entries are ("method", "metric", "dataset"); used in messages.
        builtin: modules imported before the first lookup (importing them runs the decorators).
        group: entry-point group scanned for plugin modules, or None.
        check: ``check(name, meta)`` run at registration (raises on an entry that cannot work).
    """

    def __init__(self, kind: str, builtin: tuple[str, ...], group: str | None = None,
                 check: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.kind = kind
        self._builtin = builtin
        self._group = group
        self._check = check
        self._entries: dict[str, Entry] = {}
        self._loaded = False
        self._plugin: dict[str, Any] | None = None  # the entry point being imported, noted on what it registers
        self.broken: dict[str, str] = {}  # entry point name -> one-line failure

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a duplicate name raises ValueError."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if self._check is not None:
                self._check(name, meta)
            extra = {"plugin": dict(self._plugin)} if self._plugin is not None else {}
            self._entries[name] = Entry(name, obj, {**meta, **extra})
            return obj

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin:
            importlib.import_module(module)
        if self._group is None or os.environ.get("BENCHBENCH_NO_PLUGINS"):
            return
        from benchbench import plugins

        self.broken = plugins.load(self._group, self.kind, self._note_plugin)

    def _note_plugin(self, info: dict[str, Any] | None) -> None:
        self._plugin = info

    def get(self, name: str) -> Entry:
        """Return the entry for ``name``; unknown names raise with close matches and all known names."""
        self._load()
        if name not in self._entries:
            if name in self.broken:
                raise UnknownNameError(f"{self.kind} {name!r}: {self.broken[name]}")
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            other = [r.kind for r in _ALL if r is not self and name in r]  # e.g. the metric "factorvae"
            if other:
                hint = f"{name!r} is a {' and a '.join(other)}, not a {self.kind}; {hint}"
            broken = f"; also {'; '.join(self.broken.values())}" if self.broken else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; {hint}known: {', '.join(sorted(self._entries))}{broken}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        self._load()
        return iter([self._entries[n] for n in sorted(self._entries)])


_ALL: list[Registry] = []  # every registry, for the "is a metric, not a method" hint


def _check_method(name: str, meta: dict[str, Any]) -> None:
    from benchbench.plugins import check_method

    check_method(name, meta)


methods = Registry("method", ("benchbench.baselines", "benchbench.methods"), "benchbench.methods", _check_method)
metrics = Registry("metric", ("benchbench.metrics",))
datasets = Registry("dataset", ("benchbench.datasets",))
_ALL += [methods, metrics, datasets]

register_method = methods.register
register_metric = metrics.register
register_dataset = datasets.register
