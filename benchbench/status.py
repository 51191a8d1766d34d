"""``benchbench status``: every run folder under ``OUT/runs`` (whoever started it: ``run`` or a sweep) with its
state and training progress, then every sweep's runs with their job ids.

States, read from the run folder (so they are right whichever process or engine wrote it): ``done``
(result.json), ``failed`` (failed.json), ``running`` (a process holds the folder's lock), ``stopped`` (started,
no process now: the same command resumes it from its checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchbench import store


def _step(run_dir: Path) -> int | None:
    """The last step logged in ``stats.jsonl`` (None before the first log tick)."""
    path = run_dir / "stats.jsonl"
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        return int(json.loads(lines[-1])["step"]) if lines else None
    except (OSError, ValueError, KeyError):
        return None


def _locked(folder: Path) -> bool:
    """Whether a process holds the run folder's lock now (False where the folder cannot be locked: read-only)."""
    try:
        with store.folder_lock(folder) as acquired:
            return not acquired
    except OSError:
        return False


def run_rows(out: Path) -> list[dict[str, Any]]:
    """One row per run folder: dataset, method, config (``preset-hash``), seed, state, step/steps, path, error."""
    rows = []
    for entry in store.iter_runs(out):
        d = entry.path
        cfg = store.read_json(d / "config.json") or {}
        steps = ((cfg.get("config") or {}).get("train") or {}).get("steps")
        if entry.status == "complete":
            state = "done"
        elif entry.status == "failed":
            state = "failed"
        else:
            state = "running" if _locked(d) else "stopped"
        rel = d.relative_to(Path(out) / "runs").parts
        rows.append({"dataset": rel[0], "method": rel[1], "config": rel[2], "seed": cfg.get("seed", rel[3]),
                     "state": state, "step": steps if state == "done" else _step(d), "steps": steps, "path": str(d),
                     "error": " ".join(str(entry.record.get("error", "")).split()) if state == "failed" else ""})
    return rows


def counts(rows: list[dict[str, Any]]) -> str:
    tally: dict[str, int] = {}
    for r in rows:
        tally[r["state"]] = tally.get(r["state"], 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(tally.items()))


def lines(out: Path) -> list[str]:
    """What ``benchbench status`` prints."""
    from benchbench.sweep import status as sweep_status

    runs, sweeps = run_rows(out), sweep_status(out)
    if not runs and not sweeps:
        return [f"nothing under {out}: no runs in {Path(out) / 'runs'}, no sweeps in {Path(out) / 'sweeps'}"]
    text = []
    if runs:
        text.append(f"runs under {Path(out) / 'runs'}:")
        for r in runs:
            progress = ""
            if r["steps"] is not None and r["state"] != "done":
                progress = f"step {r['step'] or 0}/{r['steps']}"
            err = f"  {r['error'][:100]}" if r["error"] else ""
            text.append(f"  {r['dataset']:<16} {r['method']:<14} {r['config']:<16} seed {r['seed']!s:<3} "
                        f"{r['state']:<8} {progress}{err}".rstrip())
        text.append(f"  {counts(runs)}")
    if sweeps:
        text.append(f"sweeps under {Path(out) / 'sweeps'}:")
        for r in sweeps:
            text.append(f"  {r['sweep']}  {r['index']:>4}  {r['method']:<14} {r['dataset']:<16} seed {r['seed']:<3} "
                        f"{r['state']:<8} {r['job']}")
        text.append(counts(sweeps))
    return text
