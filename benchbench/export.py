"""``benchbench export-codes``: the codes of a trained run and the factors (or attributes) of the same images, as
one ``.npz`` for a researcher's own analysis.

The run is rebuilt from its folder: ``config.json`` gives the resolved config (read back into the config
dataclasses by :func:`from_dict`), the method is built as the run built it (with its cached stages), and the
weights come from ``ckpt.pt`` (the EMA copy when the run kept one, as the evaluation used). Codes are the raw
``encode`` output [N, D], before any ``code_postprocess`` (the same arrays ``benchbench score`` expects).

Arrays written: ``codes`` [N, D] float32, ``indices`` [N] (dataset indices), ``factors`` [N, K] int64 and
``factor_names``/``factor_sizes`` on ground-truth datasets, ``attributes`` [N, A] uint8 and ``attr_names`` on
attribute datasets.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbench import store
from benchbench.errors import BenchbenchError


def from_dict(cls: Any, value: Any) -> Any:
    """JSON-ready dict (as :func:`benchbench.config.to_dict` wrote it) -> instance of the dataclass ``cls``; lists
    become tuples where the annotation says tuple. Unknown keys are an error (the code changed since the run)."""
    if dataclasses.is_dataclass(cls) and isinstance(value, dict):
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(value) - names
        if unknown:
            raise BenchbenchError(f"the run's config has keys {sorted(unknown)} that {cls.__name__} no longer has; "
                                  f"the code changed since the run was trained")
        return cls(**{k: from_dict(hints[k], v) for k, v in value.items()})
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(cls):
            if value is None and arg is type(None):
                return None
            if arg is not type(None) and (dataclasses.is_dataclass(arg) or typing.get_origin(arg) is tuple):
                return from_dict(arg, value)
        return value
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(cls)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_dict(args[0], v) for v in value)
        return tuple(from_dict(a, v) for a, v in zip(args, value)) if args else tuple(value)
    return value


def load_run(run_dir: Path, data_dir: Path | None, device: torch.device) -> tuple[Any, Any, torch.nn.Module]:
    """(RunConfig, dataset, trained model in eval mode) of the run folder ``run_dir``."""
    from benchbench import stages
    from benchbench.config import RunConfig, TrainConfig
    from benchbench.datasets.base import DataConfig
    from benchbench.metrics.settings import EvalConfig
    from benchbench.registry import datasets, methods

    record = store.read_json(run_dir / "config.json")
    if record is None or "config" not in record:
        raise BenchbenchError(f"{run_dir} is not a run folder (no readable config.json); pass a seed folder like "
                              f"results/runs/<dataset>/<method>/<preset>-<hash>/seed0 (`benchbench status` lists them)")
    c = record["config"]
    entry = methods.get(c["method"])
    cfg = RunConfig(method=c["method"], dataset=c["dataset"], preset=c["preset"], seed=c["seed"],
                    model=from_dict(entry.meta["config"], c["model"]), train=from_dict(TrainConfig, c["train"]),
                    data=from_dict(DataConfig, c["data"]), eval=from_dict(EvalConfig, c["eval"]))
    ckpt = run_dir / "ckpt.pt"
    if not ckpt.exists():
        raise BenchbenchError(f"{run_dir} has no checkpoint yet; finish the run with the same `benchbench run` command")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if int(state.get("step", -1)) < cfg.train.steps:
        raise BenchbenchError(f"{run_dir} is trained to step {state.get('step')} of {cfg.train.steps}; finish it with "
                              f"the same `benchbench run` command first")
    data = datasets.get(cfg.dataset).obj(cfg.data, data_dir)
    out = run_dir.parents[4]  # <out>/runs/<dataset>/<method>/<preset-hash>/seed<k>
    requests = entry.meta["stages"](cfg) if entry.meta.get("stages") else {}
    artifacts = {}
    for name, req in requests.items():
        found = stages.cached(req, out)
        if found is None:
            raise BenchbenchError(f"stage {req.kind} of this run is not cached under {out / 'stages'}; run the same "
                                  f"`benchbench run` command to rebuild it")
        artifacts[name] = found
    model = entry.obj(cfg.model, data.spec, stages=artifacts) if requests else entry.obj(cfg.model, data.spec)
    try:
        model.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    except RuntimeError as exc:
        raise BenchbenchError(f"the checkpoint of {run_dir} does not fit the current code of {cfg.method!r} "
                              f"({str(exc).splitlines()[0]})") from None
    return cfg, data, model.to(device).eval()


def export_codes(run_dir: Path, dest: Path, num: int | None = 10_000, split: str = "all",
                 data_dir: Path | None = None, device: str = "auto", batch: int = 256) -> dict[str, Any]:
    """Write the codes of ``num`` images (seeded sample, sorted; None or more than there are: all of them) of the
    run in ``run_dir`` to ``dest`` (.npz); returns {array name: shape}.

    ``split``: ``all`` images, or ``train``/``valid``/``test`` of datasets with official splits.
    """
    from benchbench.datasets.base import AttributeData, GroundTruthData
    from benchbench.evaluate import encode_images
    from benchbench.train import pick_device

    dev = pick_device(device)
    if dest.suffix != ".npz":
        raise BenchbenchError(f"--to {dest}: the file name must end in .npz")
    cfg, data, model = load_run(Path(run_dir), data_dir, dev)
    if split == "all":
        pool = np.arange(len(data))
    elif isinstance(data, AttributeData):
        pool = data.split(split)
    else:
        raise BenchbenchError(f"--split {split}: {cfg.dataset} has no official splits; use --split all")
    if num is not None and num < len(pool):
        pool = np.sort(np.random.default_rng(cfg.eval.seed).choice(pool, size=num, replace=False))
    arrays: dict[str, np.ndarray] = {"indices": pool.astype(np.int64),
                                     "codes": encode_images(model.encode, data, pool, batch, dev).astype(np.float32)}
    if isinstance(data, GroundTruthData):
        arrays["factors"] = data.index_to_factors(pool).astype(np.int64)
        arrays["factor_names"] = np.asarray(data.spec.factor_names)
        arrays["factor_sizes"] = np.asarray(data.spec.factor_sizes, dtype=np.int64)
    if isinstance(data, AttributeData):
        arrays["attributes"] = np.asarray(data.attributes(pool), dtype=np.uint8)
        arrays["attr_names"] = np.asarray(data.spec.attr_names)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(dest)
    return {k: tuple(v.shape) for k, v in arrays.items()}
