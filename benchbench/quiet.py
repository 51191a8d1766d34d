"""Saying a thing once: per-command warnings and summarised library warnings.

* :func:`once`: a warning (FID's missing weights, a dirty working tree) logged the first time this process
  says it, never again in the same command, whatever the number of seeds, runs or tables.
* :func:`summarised`: sklearn's ``ConvergenceWarning`` (a linear probe of DCI, SAP or the BetaVAE score that
  hit its iteration cap; one per factor and seed otherwise) is counted while a metric runs and reported as one
  line with the first message; other warnings pass through untouched.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Log = Callable[[str], None]

_said: set[str] = set()


def once(msg: str, log: Log) -> bool:
    """Log ``msg`` unless this process logged it already; returns whether it was logged."""
    if msg in _said:
        return False
    _said.add(msg)
    log(msg)
    return True


def _convergence_warning() -> type[Warning] | None:
    try:
        from sklearn.exceptions import ConvergenceWarning
    except ImportError:  # scikit-learn is a dependency; tolerate its absence here anyway
        return None
    return ConvergenceWarning


@contextmanager
def summarised(label: str, log: Log) -> Iterator[None]:
    """Count sklearn ConvergenceWarnings raised inside the block; log ``label: N ... (first: ...)`` once after."""
    category = _convergence_warning()
    if category is None:
        yield
        return
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:  # type: ignore[assignment]
            warnings.simplefilter("always", category)
            yield
    finally:
        ours = [w for w in caught if issubclass(w.category, category)]
        for w in caught:  # everything else goes on as if never caught
            if not issubclass(w.category, category):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        if ours:
            first = " ".join(str(ours[0].message).split())
            if len(first) > 90:
                first = first[:87] + "..."
            log(f"  {label}: {len(ours)} sklearn ConvergenceWarning{'s' * (len(ours) > 1)} (first: {first})")
