"""Run records -> one long pandas frame (one row per run and metric), run labels, filters.

Reads only :mod:`benchbench.store` (and the registry for display names and preset defaults).

Row labels (issue 17.1): a run group is named by its method's display name (``β-VAE``; a plugin can register
``display_name=``) followed by what its configuration changes relative to the method's preset for that dataset,
e.g. ``β-VAE β=8`` or ``Diff-AE lr=0.0002``. When the preset default cannot be resolved (an unregistered plugin,
a record without its config), the label names what differs from the other groups of the same method instead; a
label still shared by two groups in one table gets the config hash appended.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from benchbench import registry, store
from benchbench.errors import BenchbenchError

# Values a metric stores in its extras that the report shows as their own column: (metric, extra) -> (column, label).
EXTRA_COLUMNS = {("tad", "attrs"): ("attrs", "ATTRS")}
COLUMNS = ["dataset", "method", "preset", "config_hash", "seed", "metric", "value", "settings",
           "higher_is_better", "label", "mode", "source", "missing", "degenerate", "variant", "run_dir"]
GROUP = ["dataset", "method", "preset", "config_hash"]

# Display names of the built-in methods (and of the disentanglement_lib family, issue 13); plugins register
# ``display_name=`` with their method or are shown by their registry name.
DISPLAY = {"betavae": "β-VAE", "infovae": "InfoVAE", "random": "random floor", "diffae": "Diff-AE",
           "pdae": "PDAE", "disdiff": "DisDiff", "infodiffusion": "InfoDiffusion", "betatcvae": "β-TCVAE",
           "factor-vae": "FactorVAE (method)", "factorvae-model": "FactorVAE", "dipvae1": "DIP-VAE-I",
           "dipvae2": "DIP-VAE-II", "annealedvae": "AnnealedVAE"}
# Config leaf names shown as symbols in labels.
SYMBOLS = {"beta": "β", "gamma": "γ", "alpha": "α", "lambda_": "λ", "lam": "λ", "lambda_od": "λ_od",
           "lambda_d": "λ_d", "learning_rate": "lr"}
# A metric's extras that make its value a fallback rather than a measurement: metric -> (extra, bad value, reason).
DEGENERATE = {"factorvae": ("num_active_dims", 0, "no active code dimension (every std < the prune threshold); "
                                                  "the score is the 0 fallback, not a measurement")}


def display_name(method: str) -> str:
    """The human name of a method: its registered ``display_name``, the built-in table, else the registry name."""
    if method in registry.methods:
        name = registry.methods.get(method).meta.get("display_name")
        if name:
            return str(name)
    return DISPLAY.get(method, method)


def is_reference(method: str) -> bool:
    """True for a reference method (the ``random`` floor): shown in every table, never ranked."""
    if method in registry.methods:
        return bool(registry.methods.get(method).meta.get("reference", False))
    return method == "random"


def _identity(entry: store.RunEntry, out: Path) -> dict[str, Any]:
    """(dataset, method, preset, config_hash, seed) of a run, from its record or else from its path."""
    rel = entry.path.relative_to(Path(out) / "runs").parts  # <dataset>/<method>/<preset>-<hash>/seed<k>
    preset, _, cfg_hash = rel[2].rpartition("-")
    from_path = {"dataset": rel[0], "method": rel[1], "preset": preset, "config_hash": cfg_hash,
                 "seed": int(rel[3][4:]) if rel[3][4:].isdigit() else rel[3]}
    ident = {k: v if entry.record.get(k) is None else entry.record[k] for k, v in from_path.items()}
    return {k: v if k == "seed" else str(v) for k, v in ident.items()}


def relpath(path: Path, out: Path) -> str:
    try:
        return Path(path).relative_to(out).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return {k.rstrip("."): v for k, v in out.items()}


def _value_text(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_value_text(x) for x in v) + ")"
    return str(v)


def _default_config(method: str, dataset: str, preset: str) -> dict[str, Any] | None:
    from benchbench.config import resolve, to_dict

    try:
        return _flatten(to_dict(resolve(method, dataset, preset, 0)))
    except Exception:  # an unregistered plugin or a renamed preset: fall back to comparing siblings
        return None


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Dotted keys -> the shortest unambiguous names (leaf name, else the full key), with symbols."""
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: SYMBOLS.get(leaf, leaf) if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves)}


def variants(configs: dict[tuple[str, ...], dict[str, Any] | None]) -> dict[tuple[str, ...], str]:
    """``{group key (dataset, method, preset, hash): flattened config or None}`` -> ``{key: "β=8, lr=0.001"}``.

    A group's text lists the config entries that differ from its preset's default (see the module docstring);
    ``seed`` and the identity fields never count.
    """
    skip = {"seed", "method", "dataset", "preset", "eval.metrics", "eval.figures"}  # these never change a number
    defaults = {k[:3]: _default_config(k[1], k[0], k[2]) for k in configs}  # key: (dataset, method, preset, hash)
    diffs: dict[tuple[str, ...], dict[str, Any]] = {}
    for key, cfg in configs.items():
        ref = defaults[key[:3]]
        if cfg is None:
            diffs[key] = {}
            continue
        if ref is None:  # compare with the other groups of this method instead
            sibs = [c for k, c in configs.items() if k[:3] == key[:3] and c is not None]
            ref = {k: v for k, v in cfg.items() if all(s.get(k) == v for s in sibs)}
        diffs[key] = {k: v for k, v in cfg.items() if k.split(".")[0] not in skip and k not in skip
                      and ref.get(k, object()) != v and not k.startswith("eval.seed")}
    names = _short_keys(sorted({k for d in diffs.values() for k in d}))
    return {key: ", ".join(f"{names[k]}={_value_text(v)}" for k, v in sorted(d.items(), key=lambda kv: names[kv[0]]))
            for key, d in diffs.items()}


def load_frame(out: Path) -> pd.DataFrame:
    """Every metric of every complete run below ``out`` as one long frame.

    Returns:
        One row per (run, metric) with columns ``dataset, method, preset, config_hash, seed, metric, value,
        settings`` (sorted-key JSON), ``higher_is_better, label, mode`` (settings' or extras' ``mode``, or
        ""), ``source``, ``missing`` (the reason, for a metric listed in the run's ``missing``; its ``value`` is
        then NaN; non-finite or non-numeric values count as missing), ``degenerate`` (why the value is a fallback,
        see ``DEGENERATE``, or ""), ``variant`` (what the run's config changes, see :func:`variants`) and
        ``run_dir`` (the seed folder relative to ``out``).
    """
    out = Path(out)
    rows: list[dict[str, Any]] = []
    configs: dict[tuple[str, ...], dict[str, Any] | None] = {}
    for entry in store.iter_runs(out):
        if entry.status != "complete":
            continue
        ident, rec = _identity(entry, out), entry.record
        key = tuple(ident[k] for k in GROUP)
        if key not in configs:
            cfg = (store.read_json(entry.path / "config.json") or {}).get("config")
            configs[key] = _flatten(cfg) if isinstance(cfg, dict) else None
        base = {**ident, "source": str(rec.get("source", "")), "run_dir": relpath(entry.path, out), "degenerate": ""}
        metrics = rec.get("metrics") or {}
        for name, m in sorted(metrics.items()):
            value = m.get("value")
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            settings = m.get("settings") or {}
            extras = m.get("extras") or {}
            mode = settings.get("mode", extras.get("mode", ""))
            bad = DEGENERATE.get(name)
            degenerate = bad[2] if ok and bad and extras.get(bad[0]) == bad[1] else ""
            rows.append({**base, "metric": name, "value": float(value) if ok else math.nan,
                         "settings": json.dumps(settings, sort_keys=True, default=str),
                         "higher_is_better": m.get("higher_is_better"), "label": m.get("label") or name,
                         "mode": str(mode or ""), "missing": "" if ok else "value not finite",
                         "degenerate": degenerate})
            for (metric, extra_key), (column, label) in EXTRA_COLUMNS.items():
                extra = extras.get(extra_key)
                if metric == name and ok and isinstance(extra, (int, float)) and not isinstance(extra, bool):
                    rows.append({**base, "metric": column, "value": float(extra),
                                 "settings": json.dumps(settings, sort_keys=True, default=str),
                                 "higher_is_better": True, "label": label, "mode": str(mode or ""), "missing": ""})
        for name, reason in sorted((rec.get("missing") or {}).items()):
            if name not in metrics:
                known = registry.metrics.get(name).meta if name in registry.metrics else {}
                rows.append({**base, "metric": name, "value": math.nan, "settings": "{}",
                             "higher_is_better": known.get("higher_is_better"), "label": known.get("label", name),
                             "mode": "", "missing": " ".join(str(reason).split())})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    labels = variants(configs)
    frame["variant"] = [labels.get(k, "") for k in frame[GROUP].itertuples(index=False, name=None)]
    return frame


def incomplete_and_failed(out: Path) -> list[str]:
    """One line per unfinished run: ``incomplete: <path>`` first, then ``corrupt: <path>: <reason>`` (a result.json
    that does not prove the run complete), then ``failed: <path>: <error>``.

    Paths are relative to ``out``, e.g. ``runs/shapes3d-synth/betavae/quick-ab12cd34/seed2``.
    """
    runs = list(store.iter_runs(out))
    lines = [f"incomplete: {relpath(e.path, out)}" for e in runs if e.status == "incomplete"]
    lines += [f"corrupt: {relpath(e.path, out)}: {e.record['corrupt']} (not counted; `benchbench run` redoes it)"
              for e in runs if e.status == "corrupt"]
    for e in runs:
        if e.status == "failed":
            error = " ".join(str(e.record.get("error") or "no error message recorded").split())
            lines.append(f"failed: {relpath(e.path, out)}: {error}")
    return lines


def _names(text: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if not text:
        return []
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in str(t).split(",")]
    return [t.strip() for t in items if t.strip()]


def select(frame: pd.DataFrame, presets: Any = None, methods: Any = None, datasets: Any = None,
           metrics: Any = None) -> pd.DataFrame:
    """The rows matching every given filter (comma-separated names or lists; None keeps all).

    ``metrics`` names table columns (``tad`` brings its ATTRS column along). An unknown name raises
    :class:`BenchbenchError` listing what the results folder holds; so does a selection that leaves nothing.
    """
    for column, wanted in (("preset", presets), ("method", methods), ("dataset", datasets), ("metric", metrics)):
        names = _names(wanted)
        if not names:
            continue
        have = sorted(set(frame[column]))
        unknown = [n for n in names if n not in have]
        if unknown:
            flag = "metrics" if column == "metric" else column
            raise BenchbenchError(f"report --{flag}: no {column} {', '.join(map(repr, unknown))} in these results; "
                                  f"they hold {', '.join(have) or 'nothing'}")
        if column == "metric":
            names += [col for (m, _), (col, _) in EXTRA_COLUMNS.items() if m in names]
        frame = frame[frame[column].isin(names)]
    return frame
