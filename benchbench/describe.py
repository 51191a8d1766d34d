"""``benchbench describe``: what a run would be, without training anything or reading the dataset's files.

It resolves the config exactly as ``benchbench run`` does, takes the dataset's facts from the registry (real datasets
register ``spec_facts``; synthetic ones are procedural and cheap to open), builds the method with its parameters on
PyTorch's meta device (no memory, no initialisation; buffers and noise schedules stay concrete CPU tensors, so a
method's ``protocol()`` can read its sampler grid; a stage such as PDAE's frozen DPM is built the same way, its random
weights standing in for the trained ones) and reports the config, the protocol and deviation record every
``result.json`` of that run will carry (:mod:`benchbench.protocols`), the metrics it would compute, and the trainable
and frozen parameters of each module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchbench import codeid, protocols, stages
from benchbench.config import config_hash, resolve, to_dict
from benchbench.datasets.base import DataConfig, DataSpec
from benchbench.evaluate import select_metrics
from benchbench.latent_stage import check_code_prior
from benchbench.method import Method
from benchbench.registry import datasets, methods


class _RandomArtifact:
    """Stands in for a built stage artifact: the untrained stage model's state (on the meta device: no values)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state

    def load_state(self, online: bool = False) -> dict[str, torch.Tensor]:
        """The same random state for the EMA and the non-EMA (``online``) weights."""
        del online
        return self.state

    def record(self) -> dict[str, str]:
        return {"kind": "random weights (describe)"}


def offline_spec(dataset: str, data: DataConfig, data_dir: Path | None = None) -> DataSpec:
    """The dataset's DataSpec from registry facts (``spec_facts``), else by opening it without downloading."""
    entry = datasets.get(dataset)
    facts = entry.meta.get("spec_facts")
    if facts is not None:
        return facts(data)
    return entry.obj(replace(data, download=False), data_dir).spec


def _random_stages(requests: dict[str, stages.StageRequest], spec: DataSpec) -> dict[str, _RandomArtifact]:
    """Untrained stand-ins for the stages a method needs (dependencies first)."""
    out = {}
    for name, req in requests.items():
        deps = _random_stages(dict(req.deps), spec)
        out[name] = _RandomArtifact(stages.build_model(req, spec, deps).state_dict())  # type: ignore[arg-type]
    return out


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Every parameter registered meanwhile moves to the meta device as soon as it is made (peak memory: one layer);
    buffers and plain tensors (noise schedules, which ``protocol()`` reads) stay on the CPU."""
    register = nn.Module.register_parameter

    def to_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = to_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


def build(method: str, cfg: Any, spec: DataSpec, device: str = "meta") -> torch.nn.Module:
    """The method of ``cfg`` with random weights (its stages too): parameters on the meta device (shapes only) for
    ``device="meta"``, else on ``device``."""
    entry = methods.get(method)
    with _parameters_on_meta() if device == "meta" else torch.device(device):
        requests = entry.meta["stages"](cfg) if entry.meta.get("stages") else {}
        if requests:
            return entry.obj(cfg.model, spec, stages=_random_stages(requests, spec))
        return entry.obj(cfg.model, spec)


def _counts(name: str, module: torch.nn.Module) -> dict[str, Any]:
    params = list(module.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"module": name, "trainable": trainable, "frozen": sum(p.numel() for p in params) - trainable}


def parameter_table(model: torch.nn.Module) -> list[dict[str, Any]]:
    """One row per top-level module: {"module", "trainable", "frozen"} parameter counts, then a "total" row. A module
    that is itself a model (a stage such as PDAE's frozen DPM or DisDiff's latent DPM) is followed by one row per
    child ("frozen.unet"); those rows are details and do not enter the total."""
    rows = []
    for name, child in model.named_children():
        if next(child.parameters(), None) is None:
            continue
        rows.append(_counts(name, child))
        if isinstance(child, Method):
            rows += [{**_counts(f"{name}.{sub}", grandchild), "detail": True}
                     for sub, grandchild in child.named_children() if next(grandchild.parameters(), None) is not None]
    own = [p for n, p in model.named_parameters(recurse=True) if "." not in n]  # parameters set on the model itself
    if own:
        trainable = sum(p.numel() for p in own if p.requires_grad)
        rows.append({"module": "(own)", "trainable": trainable, "frozen": sum(p.numel() for p in own) - trainable})
    top = [r for r in rows if not r.get("detail")]
    rows.append({"module": "total", "trainable": sum(r["trainable"] for r in top),
                 "frozen": sum(r["frozen"] for r in top)})
    return rows


def describe(method: str, dataset: str, preset: str = "paper", overrides: tuple[str, ...] = (),
             data_dir: Path | None = None) -> dict[str, Any]:
    """Everything ``benchbench run`` would use for seed 0 of this configuration, as one JSON-ready dict.

    Returns:
        {"method", "dataset", "preset", "config_hash", "config" (the resolved RunConfig), "data_spec", "metrics",
        "skipped" (metric -> reason), "protocol", "deviations", "modules" (see :func:`parameter_table`),
        "built_on"}.
    Raises:
        BenchbenchError: unknown names, presets or keys, bad values, a method's own config checks.
    """
    cfg = resolve(method, dataset, preset, 0, list(overrides))
    spec = offline_spec(dataset, cfg.data, data_dir)
    entry = methods.get(method)
    check = entry.meta.get("check")
    if check is not None:
        check(cfg.model, spec)
    check_code_prior(cfg.model)  # as ``run`` checks it
    names, skipped = select_metrics(spec, cfg.eval, entry.obj)
    try:
        model, where = build(method, cfg, spec, "meta"), "meta device (parameters as shapes only, no weights)"
    except (RuntimeError, NotImplementedError):  # an op the meta device lacks: random CPU weights instead
        model, where = build(method, cfg, spec, "cpu"), "cpu (random weights)"
    record = protocols.record(cfg, spec, model, names)
    code = codeid.method_identity(entry.obj, entry.meta.get("plugin"))  # the run folder's hash covers the code
    return {"method": method, "dataset": dataset, "preset": preset,
            "config_hash": config_hash(cfg, codeid.code_key(code)), "code": code,
            "config": to_dict(cfg), "data_spec": to_dict(spec), "metrics": names, "skipped": skipped,
            **record, "modules": parameter_table(model), "built_on": where}


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in d.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def render(info: dict[str, Any]) -> str:
    """The text form of :func:`describe`."""
    lines = [f"{info['method']} on {info['dataset']} (preset {info['preset']}, config {info['config_hash']})",
             f"Code: {codeid.short(info['code'])}" if info.get("code") else "", "", "Config:"]
    cfg = {k: v for k, v in info["config"].items() if k not in ("method", "dataset", "preset", "seed")}
    lines += [f"  {key} = {value!r}" for key, value in _flat(cfg)]
    lines += ["", "Protocol:"] + [f"  {key}: {value}" for key, value in info["protocol"].items()]
    lines += ["", f"Metrics: {', '.join(info['metrics']) or 'none'}"]
    lines += [f"  skipped {name}: {reason}" for name, reason in info["skipped"].items()]
    lines += ["", "Deviations from the paper setting:"] + [f"  - {d}" for d in info["deviations"] or ["none recorded"]]
    lines += ["", f"Modules (built on the {info['built_on']}):", f"  {'module':<24}{'trainable':>15}{'frozen':>15}"]
    lines += [f"  {'  ' * bool(r.get('detail'))}{r['module']:<{24 - 2 * bool(r.get('detail'))}}{r['trainable']:>15,}"
              f"{r['frozen']:>15,}" for r in info["modules"]]
    return "\n".join(lines)
