"""One registry class for methods, metrics and datasets.

Entries register themselves with a decorator that carries their facts (a method's config class and
presets, a metric's ``higher_is_better`` and ``needs``, a dataset's ``source``). Built-in modules are
imported on first lookup; third-party methods arrive through the entry-point group
``benchbench.methods`` (each entry point names a module whose import runs the decorator), skipped when
``BENCHBENCH_NO_PLUGINS`` is set.
"""

from __future__ import annotations

import difflib
import importlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
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
    """

    def __init__(self, kind: str, builtin: tuple[str, ...], group: str | None = None) -> None:
        self.kind = kind
        self._builtin = builtin
        self._group = group
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a duplicate name raises ValueError."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Entry(name, obj, dict(meta))
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
        for ep in entry_points(group=self._group):
            try:
                importlib.import_module(ep.value.split(":")[0])
            except Exception as exc:  # a broken plugin must not take the built-ins down with it
                warnings.warn(f"skipping {self.kind} plugin {ep.name!r}: {exc}", stacklevel=2)

    def get(self, name: str) -> Entry:
        """Return the entry for ``name``; unknown names raise with close matches and all known names."""
        self._load()
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            other = [r.kind for r in _ALL if r is not self and name in r]  # e.g. the metric "factorvae"
            if other:
                hint = f"{name!r} is a {' and a '.join(other)}, not a {self.kind}; {hint}"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; {hint}known: {', '.join(sorted(self._entries))}"
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

methods = Registry("method", ("benchbench.baselines", "benchbench.methods"), "benchbench.methods")
metrics = Registry("metric", ("benchbench.metrics",))
datasets = Registry("dataset", ("benchbench.datasets",))
_ALL += [methods, metrics, datasets]

register_method = methods.register
register_metric = metrics.register
register_dataset = datasets.register
