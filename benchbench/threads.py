"""One thread budget for the process: torch's intra-op pool, BLAS and OpenMP pools, and our own workers.

``set_threads(n)`` (the ``--threads`` option of ``run``, ``score`` and ``sweep``) caps every pool at
``n``; without it the budget is the cores this process may run on (``os.sched_getaffinity``), never
``os.cpu_count()`` of a larger machine, and never more than an OMP_NUM_THREADS already set. Metric
workers (DCI and SAP fits) use ``thread_count()``, and
the small logistic regressions of explicitness and the BetaVAE score run inside ``single_blas()`` so
they never spin a BLAS pool on a shared machine. No metric value depends on the thread count.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from benchbench.errors import ConfigError

_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_budget: int | None = None
_limiter = None  # threadpoolctl's limiter, kept alive while the limits hold


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows: no affinity API
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``available_cores()``, or fewer when the environment already asks so (OMP_NUM_THREADS=n)."""
    cores = available_cores()
    try:
        asked = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return cores
    return max(1, min(cores, asked))


def thread_count() -> int:
    """The thread budget: the last ``set_threads`` value, else ``default_threads()``."""
    return _budget if _budget is not None else default_threads()


def set_threads(n: int | None) -> int:
    """Cap torch, BLAS and OpenMP pools (this process and the processes it starts) at ``n`` threads.

    Args:
        n: threads, >= 1; None = ``default_threads()`` (the affinity, capped by OMP_NUM_THREADS if set).
    Returns:
        The budget now in force.
    """
    global _budget, _limiter
    if n is not None and n < 1:
        raise ConfigError(f"--threads must be >= 1, got {n}")
    budget = default_threads() if n is None else int(n)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(budget)
    if _limiter is not None:
        _limiter.restore_original_limits()
    _limiter = threadpool_limits(limits=budget)
    for var in _ENV_VARS:  # workers and subprocesses (data loaders, submitit jobs) inherit these
        os.environ[var] = str(budget)
    _budget = budget
    return budget


@contextlib.contextmanager
def thread_budget(n: int | None) -> Iterator[int]:
    """``set_threads(n)`` for the body of a command, then the pools, variables and budget as they were."""
    global _budget, _limiter
    import torch

    saved = (torch.get_num_threads(), {v: os.environ.get(v) for v in _ENV_VARS}, _budget, _limiter)
    _limiter = None  # keep an outer limiter in force; ours is undone on exit
    try:
        yield set_threads(n)
    finally:
        if _limiter is not None:
            _limiter.restore_original_limits()
        torch.set_num_threads(saved[0])
        for var, value in saved[1].items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        _budget, _limiter = saved[2], saved[3]


@contextlib.contextmanager
def single_blas() -> Iterator[None]:
    """Run the body with one BLAS thread (small dense solves gain nothing from a pool but contention)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
