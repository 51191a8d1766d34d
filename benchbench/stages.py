"""Cached, checksummed prerequisite artifacts: a pre-trained DPM, an autoencoder, a latent DPM.

A stage is a model trained once per (kind, dataset, data options, stage config, stage seed) through the
same training loop as every method, then frozen and reused by every run and seed that asks for it:

    results/stages/<kind>/<dataset>/<hash>-seed<s>/
        config.json     what was built (the request), written first
        ckpt.pt         training checkpoint while the stage is being built (an interrupted build resumes)
        artifact.pt     the final weights (EMA when the stage trains with EMA), written atomically
        artifact-online.pt  the final non-EMA weights, when the stage trains with EMA (DisDiff's reference freezes
                        those: methods.md §6.3, ``load_ema_ckpt``)
        artifact.json   SHA-256 of artifact.pt (and of artifact-online.pt), provenance, build time

``ensure`` takes an exclusive lock on the stage folder, so two runs that need the same stage at once build
it once: the second waits, then reuses it. An artifact whose checksum no longer matches is rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchbench import distributed, integrity, store
from benchbench.config import to_dict
from benchbench.datasets.base import DEFAULT_OMITTED, NOT_IDENTITY, DataConfig, ImageData
from benchbench.errors import BenchbenchError, TrainingError
from benchbench.provenance import provenance
from benchbench.registry import Registry

# Stage builders register here: kind -> class built as cls(config, spec, deps) with a ``train`` config.
stage_kinds = Registry("stage", ("benchbench.methods",))
register_stage = stage_kinds.register

Log = Callable[[str], None]


@dataclass(frozen=True)
class StageRequest:
    """What a method needs built before it can train.

    Attributes:
        kind: registered stage kind ("ddpm", ...).
        dataset: dataset the stage trains on.
        data: dataset options (only those that change the data enter the identity).
        config: the stage model's frozen config; must have a ``train`` field (a TrainConfig).
        seed: the stage's own seed (independent of the run seed, so every run seed shares it).
        deps: stages this one builds on (e.g. a latent DPM on an autoencoder), by name.
    """

    kind: str
    dataset: str
    data: DataConfig
    config: Any
    seed: int = 0
    deps: tuple[tuple[str, StageRequest], ...] = field(default=())

    def identity(self) -> dict[str, Any]:
        data = to_dict(self.data)
        for key in NOT_IDENTITY:
            data.pop(key, None)
        for key, default in DEFAULT_OMITTED.items():
            if data.get(key) == default:
                data.pop(key)
        return {"kind": self.kind, "dataset": self.dataset, "data": data, "config": to_dict(self.config),
                "seed": self.seed, "deps": {name: dep.hash() for name, dep in self.deps}}

    def hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    def dir(self, out: Path) -> Path:
        return Path(out) / "stages" / self.kind / self.dataset / f"{self.hash()}-seed{self.seed}"


@dataclass(frozen=True)
class Artifact:
    """A built stage: where its weights are and their checksum."""

    kind: str
    path: Path
    sha256: str
    hash: str
    online_sha256: str | None = None

    @property
    def online_path(self) -> Path:
        """The non-EMA weights: ``artifact-online.pt``, or artifact.pt itself for a stage trained without EMA."""
        return self.path if self.online_sha256 == self.sha256 else self.path.with_name(ONLINE)

    def record(self) -> dict[str, str]:
        return {"kind": self.kind, "path": str(self.path), "sha256": self.sha256, "hash": self.hash}

    def load_state(self, online: bool = False) -> dict[str, Any]:
        """The artifact's state dict (``online``: the non-EMA weights), after checking its checksum again."""
        path, sha = (self.online_path, self.online_sha256) if online else (self.path, self.sha256)
        if sha is None:
            raise TrainingError(
                f"stage {self.path.parent} has no non-EMA weights (built without EMA, or before benchbench kept "
                f"them); delete the folder to rebuild it, or use its EMA weights")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise TrainingError(f"stage artifact {path} changed since it was checked; run again to rebuild it")
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


ONLINE = "artifact-online.pt"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached(req: StageRequest, out: Path) -> Artifact | None:
    """The artifact of ``req`` if it is built and its checksum matches, else None."""
    d = req.dir(out)
    meta = store.read_json(d / "artifact.json")
    if meta is None or not (d / "artifact.pt").exists():
        return None
    if _sha256(d / "artifact.pt") != meta.get("sha256"):
        return None
    online = meta.get("online_sha256")
    if online not in (None, meta["sha256"]) and (not (d / ONLINE).exists() or _sha256(d / ONLINE) != online):
        return None
    return Artifact(req.kind, d / "artifact.pt", meta["sha256"], req.hash(), online)


def build_model(req: StageRequest, spec: Any, deps: dict[str, Artifact]) -> torch.nn.Module:
    """An untrained (or, with its artifact, trained) stage model from the registered builder."""
    return stage_kinds.get(req.kind).obj(req.config, spec, deps)


def ensure(
    req: StageRequest,
    data_for: Callable[[StageRequest], ImageData],
    device: torch.device,
    out: Path,
    log: Log,
    progress: bool = True,
) -> Artifact:
    """Return the artifact of ``req``, building it (and its dependencies) first if needed.

    Args:
        req: the stage to provide.
        data_for: the training data of a stage (the run's dataset, or a latent view of it).
        device: where to train.
        out: results folder (stages live in ``out/stages``).
    """
    from benchbench.train import derive_seed, train

    deps = {name: ensure(dep, data_for, device, out, log, progress) for name, dep in req.deps}
    d = req.dir(out)
    label = f"{req.kind}/{req.dataset}/{d.name}"
    main = distributed.is_main()  # under torchrun rank 0 locks, decides and writes; every rank trains
    lock = store.folder_lock(d, on_wait=lambda: log(f"waiting for another process building stage {label}")) \
        if main else nullcontext(True)
    with lock:
        found = None
        if main:
            store.remove_stale_temporaries(d)  # left by a writer killed in this folder; we hold its lock
            meta = store.read_json(d / "artifact.json")
            if (d / "artifact.pt").exists() or meta is not None:
                found = cached(req, out)
                if found is not None:
                    log(f"reusing cached stage {label} (sha256 {found.sha256[:12]}, built {meta.get('built', '?')})")
                else:
                    log(f"stage {label}: artifact missing or checksum mismatch; rebuilding it")
                    for name in ("artifact.pt", ONLINE, "artifact.json"):
                        (d / name).unlink(missing_ok=True)
            if found is None and not (d / "config.json").exists():
                store.atomic_write_json(d / "config.json", {**req.identity(), "provenance": provenance()})
        found = distributed.from_main(found)
        if found is not None:
            return found
        data = data_for(req)
        torch.manual_seed(derive_seed(req.seed, -2))
        model = build_model(req, data.spec, deps)
        log(f"building stage {label} ({req.config.train.steps} steps)")
        t0 = time.perf_counter()
        try:
            trained = train(model, data, req.config.train, d, req.seed, req.hash(), device, progress, log,
                            desc=f"stage {req.kind}")
        except TrainingError as exc:
            if "cannot be read" not in str(exc):
                raise
            log(f"stage {label}: unreadable checkpoint; starting the stage again")
            integrity.discard(d / "ckpt.pt")
            trained = train(model, data, req.config.train, d, req.seed, req.hash(), device, progress, log,
                            desc=f"stage {req.kind}")
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in trained.state_dict().items()}, buf)
        sha = hashlib.sha256(buf.getvalue()).hexdigest()
        online_buf, online_sha = None, sha  # without EMA the weights are the non-EMA ones
        if trained is not model:  # trained with EMA: keep the non-EMA weights too
            online_buf = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, online_buf)
            online_sha = hashlib.sha256(online_buf.getvalue()).hexdigest()
        if main:
            if online_buf is not None:
                store.atomic_write_bytes(d / ONLINE, online_buf.getvalue())
            store.atomic_write_bytes(d / "artifact.pt", buf.getvalue())
            store.atomic_write_json(d / "artifact.json", {
                "sha256": sha, "online_sha256": online_sha, "built": time.strftime("%Y-%m-%d %H:%M:%S"),
                "seconds": round(time.perf_counter() - t0, 1),
                "deps": {name: a.record() for name, a in deps.items()}, "provenance": provenance()})
            integrity.discard(d / "ckpt.pt")  # the artifact supersedes it (and its digest)
        sha = distributed.from_main(sha)  # every rank returns rank 0's artifact (and waits until it is written)
        log(f"built stage {label} in {time.perf_counter() - t0:.0f} s (sha256 {sha[:12]})")
        return Artifact(req.kind, d / "artifact.pt", sha, req.hash(), online_sha)


def list_stages(out: Path) -> list[dict[str, Any]]:
    """Every stage folder under ``out/stages`` with its status (built, building/incomplete)."""
    rows = []
    for cfg_path in sorted((Path(out) / "stages").glob("*/*/*/config.json")):
        d = cfg_path.parent
        meta = store.read_json(d / "artifact.json")
        size = (d / "artifact.pt").stat().st_size if (d / "artifact.pt").exists() else 0
        rows.append({"kind": d.parent.parent.name, "dataset": d.parent.name, "id": d.name,
                     "status": "built" if meta else "incomplete", "built": (meta or {}).get("built", ""),
                     "seconds": (meta or {}).get("seconds"), "size_mb": round(size / 2**20, 1), "path": str(d)})
    return rows


def remove(path: Path) -> None:
    """Delete one stage folder (used by tests and by users clearing the cache)."""
    if not (path / "config.json").exists():
        raise BenchbenchError(f"{path} is not a stage folder")
    shutil.rmtree(path)
