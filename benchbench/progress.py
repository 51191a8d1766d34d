"""Live progress of long work: one bar per phase on a terminal, throttled plain lines elsewhere.

Every phase of a run (a stage build, training, scoring, FID's sampling) opens one :func:`bar`:

* on a terminal (stderr is a TTY) and with progress enabled: a tqdm bar with rate and ETA; messages written
  meanwhile go through :func:`write`, above the bars, so nothing is printed twice or torn;
* with ``--no-progress``, or when stderr is not a TTY (a log file, a SLURM job, CI): a plain line
  ``training seed0: 350/700 step (50%), 12.3 step/s, ETA 28 s`` at most every ``BENCHBENCH_PROGRESS_SECONDS``
  (default 30) seconds, and a closing line only for phases that printed one. Short phases print nothing; their
  one-line summaries (a metric's value, "built stage ...") say what happened.

A log callable carrying a ``file`` attribute (the run's ``run.log`` writer, :class:`RunLog`) also gets the plain
lines while the terminal shows a bar, so ``run.log`` holds the progress of every phase.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tqdm.auto import tqdm

Log = Callable[[str], None]


def interval() -> float:
    """Seconds between plain progress lines (``BENCHBENCH_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("BENCHBENCH_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def is_tty(stream: Any = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def tqdm_interval() -> float:
    """``mininterval`` for a plain tqdm bar (byte counts of downloads): tqdm's 0.1 s on a terminal, else the plain
    lines' interval, so a log file gets a line every 30 s rather than ten a second."""
    return 0.1 if is_tty() else max(interval(), 0.1)


def write(msg: str) -> None:
    """A line on stderr that does not tear an open tqdm bar."""
    tqdm.write(msg, file=sys.stderr)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class Bar:
    """One phase's progress (use :func:`bar`). ``update(n)``, ``set_postfix(**kw)``, ``close()``; a context manager."""

    def __init__(self, total: int, desc: str, show: bool, log: Log | None, unit: str = "it", initial: int = 0,
                 every: float | None = None) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every = interval() if every is None else every
        self._start_n, self._t0 = initial, time.monotonic()
        self._last = self._t0
        self._printed = False
        self._postfix = ""
        self._tqdm = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                          file=sys.stderr) if show and is_tty() else None
        # Plain lines: to the log when there is no bar; to the log's file (run.log) when there is one.
        self._plain = (getattr(log, "file", None) if self._tqdm is not None else log) if log is not None else None

    def line(self) -> str:
        elapsed = time.monotonic() - self._t0
        done = self.n - self._start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        speed = f", {rate:.3g} {self.unit}/s" if rate else ""
        eta = f", ETA {duration((self.total - self.n) / rate)}" if rate and self.total else ""
        post = f", {self._postfix}" if self._postfix else ""
        return f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}{speed}{eta}{post}"

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        now = time.monotonic()
        if self._plain is not None and now - self._last >= self.every and self.n < self.total:
            self._last = now
            self._printed = True
            self._plain(self.line())

    def set_postfix(self, **kw: Any) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in kw.items())
        if self._tqdm is not None:
            self._tqdm.set_postfix(kw, refresh=True)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        if self._plain is not None and self._printed:
            self._printed = False
            self._plain(f"{self.desc}: {self.n}/{self.total} {self.unit} in {duration(time.monotonic() - self._t0)}")

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def bar(total: int, desc: str, show: bool = True, log: Log | None = None, unit: str = "it", initial: int = 0,
        every: float | None = None) -> Bar:
    """A progress bar for one phase (see the module docstring). ``log=None`` and ``show=False``: silent."""
    return Bar(total, desc, show, log, unit, initial, every)


class RunLog:
    """A log callable writing each message to stderr (above any bar) and, time-stamped, to ``path`` (run.log).

    Its ``file`` attribute writes to ``path`` only (the plain progress lines while a bar is on screen)."""

    def __init__(self, path: Path, echo: Log | None = write) -> None:
        self.path = path
        self.echo = echo

    def file(self, msg: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")

    def __call__(self, msg: str) -> None:
        if self.echo is not None:
            self.echo(msg)
        self.file(msg)
