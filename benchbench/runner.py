"""run(cfg) -> run dir: resolve, build, train, evaluate, store.

Everything that can be checked is checked before anything is written: names, presets, overrides,
the dataset files, the requested metrics and the results folder. Each seed then runs under an
exclusive lock on its folder, so two ``benchbench run`` processes sharing a results folder never
train the same seed twice nor interleave writes; a process killed mid-run releases its lock and the
next run of the same command resumes from the checkpoint.

Every run folder's config hash covers the code of the method (:mod:`benchbench.codeid`); every record carries
that code identity and the invocation (command line, start time, host); each seed keeps a time-stamped
``run.log`` of what the command said about it (:class:`benchbench.progress.RunLog`).
Records that cannot lie: a seed counts as done only when its ``result.json`` proves it
(:func:`benchbench.integrity.seed_problem`); a corrupt one is run again. Any exception while a seed runs (a
BenchbenchError, an out-of-space or read-only OSError, a bug) becomes that seed's ``failed.json`` with the
reason; the other seeds of the command still run, and the command then fails with one line.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchbench import codeid, distributed, integrity, protocols, stages, store, validate
from benchbench import progress as prog
from benchbench.config import RunConfig, config_hash, resolve, to_dict
from benchbench.datasets.base import ImageData
from benchbench.errors import BenchbenchError
from benchbench.evaluate import evaluate, select_metrics
from benchbench.figures import save_figures, save_pmg_figure
from benchbench.latent_stage import check_code_prior, ensure_latent
from benchbench.provenance import invocation, provenance
from benchbench.registry import datasets, methods
from benchbench.train import derive_seed, pick_device, train

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    prog.write(msg)  # above any open progress bar


@dataclass(frozen=True)
class RunSpec:
    """One seed of one configuration, and where it lives."""

    cfg: RunConfig
    cfg_hash: str
    dir: Path
    metrics: tuple[str, ...]
    skipped: dict[str, str]
    out: Path
    code: dict[str, Any] | None = None


@dataclass
class Plan:
    specs: list[RunSpec]
    data: ImageData

    @property
    def skipped(self) -> dict[str, str]:
        return self.specs[0].skipped


def check_writable(out: Path) -> None:
    """Fail early, with the fix, when ``out`` cannot hold results."""
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out / "runs", prefix=".probe"):
            pass
    except OSError as exc:
        raise BenchbenchError(
            f"results folder {out} is not writable ({exc.strerror or type(exc).__name__}); "
            f"choose another with --out"
        ) from None


def build_data(cfg: RunConfig, data_dir: Path | None) -> ImageData:
    return datasets.get(cfg.dataset).obj(cfg.data, data_dir)


def plan(
    method: str,
    dataset: str,
    preset: str,
    seeds: Iterable[int],
    overrides: Iterable[str],
    out: Path,
    data_dir: Path | None = None,
) -> Plan:
    """Resolve and validate every seed's config, the dataset and the metrics before anything is written."""
    overrides = list(overrides)
    seeds = list(seeds)
    if not seeds:
        raise BenchbenchError("--seeds must be at least 1")
    cfgs = [resolve(method, dataset, preset, s, overrides) for s in seeds]
    validate.check_config(cfgs[0])
    data = build_data(cfgs[0], data_dir)
    check = methods.get(method).meta.get("check")  # the method's own (cross-field) config checks, before any stage
    for cfg in cfgs:
        check_code_prior(cfg.model)
        if check is not None:
            check(cfg.model, data.spec)
    validate.check_buildable(cfgs[0], data.spec)
    entry = methods.get(method)
    chosen, skipped = select_metrics(data.spec, cfgs[0].eval, entry.obj)
    code = codeid.method_identity(entry.obj, entry.meta.get("plugin"))
    specs = []
    for cfg in cfgs:
        h = config_hash(cfg, codeid.code_key(code))
        where = store.run_dir(out, dataset, method, preset, h, cfg.seed)
        specs.append(RunSpec(cfg, h, where, tuple(chosen), dict(skipped), Path(out), code))
    return Plan(specs, data)


def _header(spec: RunSpec, data: ImageData) -> dict[str, Any]:
    c = spec.cfg
    return {
        "schema": store.SCHEMA, "method": c.method, "dataset": c.dataset, "preset": c.preset,
        "config_hash": spec.cfg_hash, "seed": c.seed, "source": data.spec.source,
        "data_spec": asdict(data.spec), "code": spec.code, "invocation": invocation(),
    }


def _complete(spec: RunSpec) -> str:
    """The status line of a seed whose result exists: what trained it and, if it differs now, why it is reused."""
    rec = store.read_json(spec.dir / "result.json") or {}
    recorded = rec.get("code")
    line = f"seed {spec.cfg.seed}: complete already, skipped ({spec.dir})"
    if recorded:
        line += f"; trained by {codeid.short(recorded)}"
    note = codeid.reuse_note(recorded, spec.code) if spec.code else None
    return f"{line}; reused although {note}" if note else line


def _expected(spec: RunSpec) -> dict[str, Any]:
    """What a complete record of ``spec`` must carry (see :func:`benchbench.integrity.result_problem`)."""
    c = spec.cfg
    return {"method": c.method, "dataset": c.dataset, "preset": c.preset, "config_hash": spec.cfg_hash,
            "seed": c.seed, "config": to_dict(c)}


def completed(spec: RunSpec) -> bool:
    """Whether the seed's folder holds a result.json that proves the seed complete."""
    return (spec.dir / "result.json").exists() and not integrity.seed_problem(spec.dir, _expected(spec))


def one_line(exc: BaseException) -> str:
    """An exception as one line: a BenchbenchError's message, else ``Type: message``."""
    text = str(exc) if isinstance(exc, BenchbenchError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


class SeedFailed(BenchbenchError):
    """A seed stopped with an error; its failed.json (when it could be written) says why."""


def run_one(spec: RunSpec, data: ImageData, device: torch.device, progress: bool = True,
            log: Log = _stderr) -> str:
    """Train and score one seed; returns a status line. Raises SeedFailed (a BenchbenchError) on any failure,
    after recording it in the seed's ``failed.json``.

    Under torchrun, rank 0 alone takes the lock, decides whether the seed runs, evaluates and writes; every rank
    trains (see :mod:`benchbench.distributed`).
    """
    main = distributed.is_main()
    if distributed.from_main(completed(spec) if main else False):
        return _complete(spec)
    with store.folder_lock(spec.dir) if main else nullcontext(True) as acquired:
        if not distributed.from_main(acquired):
            return f"seed {spec.cfg.seed}: running in another process, skipped ({spec.dir})"
        if distributed.from_main(completed(spec) if main else False):  # finished by another process meanwhile
            return _complete(spec)
        if main:
            log = prog.RunLog(spec.dir / "run.log", echo=log)
            inv = invocation()
            log.file(f"start: {inv['command']} (host {inv['host']}, pid {inv['pid']})")
        log(f"{spec.cfg.method} on {spec.cfg.dataset} ({spec.cfg.preset}, config {spec.cfg_hash}) "
            f"seed {spec.cfg.seed}")
        header = _header(spec, data)
        if not main:
            _train_and_score(spec, data, device, progress, log)
            return f"seed {spec.cfg.seed}: done on rank {distributed.world()[0]}"
        try:
            _prepare(spec, header, log)
            record = _train_and_score(spec, data, device, progress, log)
            store.atomic_write_json(spec.dir / "result.json", {**header, **record, "status": "complete"})
            (spec.dir / "failed.json").unlink(missing_ok=True)
        except KeyboardInterrupt:
            log.file("interrupted (Ctrl-C); the same command resumes from the checkpoint")  # type: ignore[attr-defined]
            raise
        except Exception as exc:
            error = one_line(exc)
            failure = {**header, "status": "failed", "error": error, "exception": type(exc).__name__}
            if not isinstance(exc, BenchbenchError):
                failure["traceback"] = traceback.format_exc()
            try:
                store.atomic_write_json(spec.dir / "failed.json", failure)
            except OSError as write_exc:
                log(f"warning: could not record the failure in {spec.dir / 'failed.json'} ({one_line(write_exc)})")
            log.file(f"failed: {error}")  # type: ignore[attr-defined]
            raise SeedFailed(error) from exc
        log.file("complete: result.json written")  # type: ignore[attr-defined]
    return f"seed {spec.cfg.seed}: done ({spec.dir})"


def _prepare(spec: RunSpec, header: dict[str, Any], log: Log) -> None:
    """Under the seed's lock: drop temporaries a killed writer left, set aside a result.json that does not prove
    the seed complete, and (re)write config.json unless it already holds this config."""
    for p in store.remove_stale_temporaries(spec.dir):
        log(f"removed stale temporary {p.name} ({spec.dir})")
    if (spec.dir / "result.json").exists():
        log(f"warning: seed {spec.cfg.seed}: {integrity.seed_problem(spec.dir, _expected(spec))}; "
            f"the record is corrupt, running the seed again ({spec.dir})")
        (spec.dir / "result.json").unlink()
    if integrity.config_problem(store.read_json(spec.dir / "config.json"), _expected(spec)):
        store.atomic_write_json(spec.dir / "config.json", {
            **header, "config": to_dict(spec.cfg), "metrics_planned": list(spec.metrics),
            "provenance": provenance(),
        })


def _train_and_score(spec: RunSpec, data: ImageData, device: torch.device, progress: bool,
                     log: Log) -> dict[str, Any]:
    cfg = spec.cfg
    entry = methods.get(cfg.method)
    requests = entry.meta["stages"](cfg) if entry.meta.get("stages") else {}
    artifacts = {name: stages.ensure(req, lambda r: data, device, spec.out, log, progress)
                 for name, req in requests.items()}
    torch.manual_seed(derive_seed(cfg.seed, -1))  # seeded initialisation
    model = entry.obj(cfg.model, data.spec, stages=artifacts) if requests else entry.obj(cfg.model, data.spec)
    t0 = time.perf_counter()
    trained = train(model, data, cfg.train, spec.dir, cfg.seed, spec.cfg_hash, device, progress, log,
                    desc=f"training seed {cfg.seed}")
    latent = ensure_latent(cfg, spec.cfg_hash, trained, data, device, spec.out, log, progress)  # the code generator
    if latent is not None:
        artifacts["latent"] = latent
    t1 = time.perf_counter()
    rank, world_size = distributed.world()
    if rank != 0:  # rank 0 scores and writes; wait until it has
        distributed.barrier()
        return {}
    try:
        title = f"{cfg.method} on {cfg.dataset}, seed {cfg.seed}"
        figures = [p.name for p in save_figures(trained, data, spec.dir, cfg.seed, title=title)] \
            if cfg.eval.figures else []
        log(f"scoring seed {cfg.seed} with {', '.join(spec.metrics)}")
        scores = evaluate(trained, data, cfg.eval, list(spec.metrics), device, log, out_dir=spec.dir,
                          progress=progress)
        figures += [p.name for p in save_pmg_figure(spec.dir, title)] if cfg.eval.figures else []
        if (spec.dir / "samples.png").exists() and "samples.png" not in figures:  # FID's own first samples
            figures.append("samples.png")
    finally:
        distributed.barrier()  # release the other ranks even when scoring fails
    t2 = time.perf_counter()
    return {
        **protocols.record(cfg, data.spec, trained, list(spec.metrics)),
        "metrics": scores, "missing": spec.skipped, "figures": figures,
        "stages": {n: a.record() for n, a in artifacts.items()},
        "generator": trained.code_generator() if hasattr(cfg.model, "code_prior") else None,
        "timing": {"train_seconds": round(t1 - t0, 2), "eval_seconds": round(t2 - t1, 2)},
        "device": str(device), "provenance": provenance(),
        "distributed": {"world_size": world_size, "effective_batch_size": cfg.train.batch_size,
                        "per_rank_batch_size": cfg.train.batch_size // world_size},
    }


def build_stages(method: str, dataset: str, preset: str, overrides: Iterable[str], out: Path, device: str = "auto",
                 data_dir: Path | None = None, progress: bool = False, log: Log = _stderr) -> dict[str, str]:
    """Build (or find cached) every stage the configuration needs; returns {name: sha256}. Used by sweeps to build
    shared stages once, in their own job, before the runs that need them."""
    cfg = resolve(method, dataset, preset, 0, list(overrides))
    entry = methods.get(method)
    requests = entry.meta["stages"](cfg) if entry.meta.get("stages") else {}
    if not requests:
        return {}
    data = build_data(cfg, data_dir)
    dev = pick_device(device)
    return {name: stages.ensure(req, lambda r: data, dev, Path(out), log, progress).sha256
            for name, req in requests.items()}


def run(
    method: str,
    dataset: str,
    seeds: int | Iterable[int],
    preset: str | None = "paper",
    overrides: Iterable[str] = (),
    out: Path = Path("results"),
    device: str = "auto",
    data_dir: Path | None = None,
    progress: bool = True,
    log: Log = _stderr,
) -> list[str]:
    """Run seeds 0..seeds-1 (or the listed seeds) of one configuration; returns one status line per seed.

    ``preset=None`` picks one for this machine (:func:`benchbench.defaults.choose_preset`, with a notice). Before
    training it logs the preset, steps and an estimated time; warnings (a skipped metric, a dirty benchbench tree)
    are said once per process.
    """
    from benchbench import quiet
    from benchbench.defaults import choose_preset, estimate, plan_line

    dev = pick_device(device)
    preset, notice = choose_preset(preset, dev)
    p = plan(method, dataset, preset, range(seeds) if isinstance(seeds, int) else seeds, overrides, out, data_dir)
    if distributed.from_main(all(completed(s) for s in p.specs) if distributed.is_main() else False):
        return [_complete(s) for s in p.specs]  # even if read-only
    check_writable(out)
    if notice:  # after the checks: bad input stays one line
        log(notice)
    for name, reason in p.skipped.items():
        quiet.once(f"warning: skipping {name}: {reason}", log)
    code = p.specs[0].code or {}
    if code.get("kind") == "builtin" and code.get("dirty"):
        quiet.once(f"note: benchbench has uncommitted changes; runs are keyed by its commit {code['commit'][:7]}, "
                   f"so these changes alone do not start new runs (commit them to retrain)", log)
    todo = [s for s in p.specs if not completed(s)]
    if todo and distributed.is_main():
        cfg = todo[0].cfg
        rate, how = estimate(cfg, p.data, dev, out, probe=cfg.train.steps > 100 and distributed.world()[1] == 1)
        log(plan_line(cfg, len(todo), rate, how, dev, done=len(p.specs) - len(todo)))
    lines, failures = [], []
    for spec in p.specs:
        try:
            lines.append(run_one(spec, p.data, dev, progress, log))
        except SeedFailed as exc:
            failures.append((spec, str(exc)))
            lines.append(f"seed {spec.cfg.seed}: failed ({spec.dir / 'failed.json'})")
            if len(p.specs) > 1:
                log(f"seed {spec.cfg.seed} failed: {exc}")
    if failures:
        for line in lines:
            log(line)
        if len(failures) == 1 and len(p.specs) == 1:
            raise BenchbenchError(failures[0][1])
        seeds_failed = ", ".join(str(s.cfg.seed) for s, _ in failures)
        raise BenchbenchError(f"{len(failures)} of {len(p.specs)} seeds failed (seeds {seeds_failed}; each "
                              f"failed.json says why); first: {failures[0][1]}")
    return lines

