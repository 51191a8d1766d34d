"""Registry: decorators, duplicate names, close-match errors."""

from __future__ import annotations

import pytest

from benchbench.errors import UnknownNameError
from benchbench.registry import Registry, methods


def test_register_get_and_duplicates() -> None:
    reg = Registry("thing", ())
    reg.register("alpha", higher_is_better=True)(len)
    entry = reg.get("alpha")
    assert entry.obj is len and entry.higher_is_better is True
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(len)


def test_unknown_name_lists_close_matches() -> None:
    reg = Registry("thing", ())
    for name in ("betavae", "infovae", "random"):
        reg.register(name)(len)
    with pytest.raises(UnknownNameError) as info:
        reg.get("betavea")
    msg = str(info.value)
    assert "did you mean betavae" in msg and "known: betavae, infovae, random" in msg
    assert "\n" not in msg and not msg.startswith("'")


def test_builtin_methods_are_registered() -> None:
    for name in ("betavae", "infovae", "random"):
        entry = methods.get(name)
        assert {"smoke", "quick", "paper"} <= set(entry.presets)
