"""Parsing of the CLI's compact arguments: seed sets (``--seeds``) and hyperparameter grids (``--grid``)."""

from __future__ import annotations

import itertools
import re

from benchbench.errors import ConfigError

_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_seeds(text: str | int) -> list[int]:
    """``--seeds``: ``N`` (one number) means seeds 0..N-1; ``3-7`` is 3, 4, 5, 6, 7; ``0,2,5`` is a list; parts
    combine (``0,3-5``). Duplicates are dropped, order is kept.

    >>> parse_seeds("3"), parse_seeds("3-5"), parse_seeds("0,2,5"), parse_seeds("0,3-4")
    ([0, 1, 2], [3, 4, 5], [0, 2, 5], [0, 3, 4])

    Raises:
        ConfigError: anything else (negative seeds, empty or backwards ranges, zero seeds).
    """
    text = str(text).strip()
    if re.fullmatch(r"\d+", text):
        n = int(text)
        if n < 1:
            raise ConfigError("--seeds 0: N means seeds 0..N-1, so at least 1; for seed 0 alone write --seeds 1 "
                              "(ranges 3-7 and lists 0,2,5 name seeds)")
        return list(range(n))
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ConfigError(f"--seeds {text!r}: range {part!r} runs backwards; write {hi}-{lo}")
            seeds += range(lo, hi + 1)
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise ConfigError(f"--seeds {text!r}: expected N (seeds 0..N-1), a range like 3-7 or a list like 0,2,5")
    return list(dict.fromkeys(seeds))


def split_values(text: str) -> list[str]:
    """Split ``1,4,8`` or ``(0.9,0.99),(0.5,0.9)`` at the commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += ch
    parts.append(cur.strip())
    return parts


def parse_grid(items: tuple[str, ...] | list[str]) -> list[tuple[str, ...]]:
    """``--grid model.beta=1,4,8 --grid train.lr=1e-4,1e-3`` -> every combination as ``--set`` overrides
    (here 6 tuples like ``("model.beta=1", "train.lr=1e-4")``); no ``--grid``: one empty combination.

    Raises:
        ConfigError: an item without ``=``, a key given twice, or an empty value.
    """
    axes: list[list[str]] = []
    keys: set[str] = set()
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. --grid model.beta=1,4,8")
        if key in keys:
            raise ConfigError(f"--grid {key} is given twice; list all its values once: --grid {key}=V1,V2")
        keys.add(key)
        vals = split_values(values)
        if any(not v for v in vals):
            raise ConfigError(f"--grid {item!r}: empty value; list values like {key}=1,4,8")
        axes.append([f"{key}={v}" for v in vals])
    return [tuple(c) for c in itertools.product(*axes)]
