"""``benchbench sweep``: methods × datasets × seeds as jobs of an existing engine (submitit), never our own scheduler.

A sweep expands into one :class:`SweepRun` per (method, dataset, grid point, seed), numbered in that nested order so
an index names the same run every time the same command is given. A grid (``--grid model.beta=1,4,8``, repeatable:
every combination) adds its point's ``--set`` overrides to the sweep's own. Every configuration is resolved and
validated before anything is submitted. Stages that runs share (a pre-trained DPM, an autoencoder, a latent DPM) are
built by their own jobs first, once per configuration:

* ``slurm``: a job array through submitit's ``AutoExecutor``; run jobs depend on their stage jobs (``afterok``).
* ``local``: submitit's ``LocalExecutor`` (subprocesses): stage jobs, then runs, one per visible GPU at a time, or
  one after another on the CPU.
* ``debug``: submitit's ``DebugExecutor`` (in this process), for debugging and tests.

Preemption: jobs are ``submitit.helpers.Checkpointable``; on a timeout or preemption signal submitit requeues them
(at most ``max_requeue`` times) and the run resumes from its last checkpoint. A run that fails for a reason a retry
would not fix (bad config, missing data, non-finite loss: a :class:`~benchbench.errors.BenchbenchError`) returns
"failed" and is not resubmitted; its ``failed.json`` says why. ``benchbench status`` reads the run folders.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchbench import store
from benchbench.errors import BenchbenchError

LAUNCHERS = ("local", "slurm", "debug")


@dataclass(frozen=True)
class SweepRun:
    """One seed of one configuration, as a job."""

    index: int
    method: str
    dataset: str
    seed: int
    preset: str
    overrides: tuple[str, ...]
    out: str
    dir: str
    device: str = "auto"
    data_dir: str | None = None

    @property
    def config_key(self) -> tuple[str, str, tuple[str, ...]]:
        """(method, dataset, overrides): the runs that share stages (one grid point of one method and dataset)."""
        return self.method, self.dataset, self.overrides


def expand(methods: list[str], datasets: list[str], seeds: int | list[int], preset: str, overrides: list[str],
           out: Path, device: str = "auto", data_dir: Path | None = None,
           grid: list[tuple[str, ...]] | None = None) -> list[SweepRun]:
    """Every (method, dataset, grid point, seed), validated (names, presets, overrides, data files, metrics) before
    anything runs. ``seeds``: N (seeds 0..N-1) or the seeds; ``grid``: override tuples (:func:`~benchbench.cliparse.
    parse_grid`), one per grid point.

    Raises:
        BenchbenchError: the first invalid configuration, naming it.
    """
    from benchbench.runner import plan

    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise BenchbenchError("--seeds must be at least 1")
    if not methods:
        raise BenchbenchError("--methods lists no method; give one or more, e.g. --methods betavae,infovae")
    if not datasets:
        raise BenchbenchError("--datasets lists no dataset; give one or more, e.g. --datasets shapes3d-synth")
    runs = []
    for method in methods:
        for dataset in datasets:
            for point in grid or [()]:
                sets = [*overrides, *point]
                try:
                    p = plan(method, dataset, preset, seed_list, sets, out, data_dir)
                except BenchbenchError as exc:
                    where = f" with {' '.join(point)}" if point else ""
                    raise BenchbenchError(f"{method} on {dataset}{where}: {exc}") from None
                for spec in p.specs:
                    runs.append(SweepRun(len(runs), method, dataset, spec.cfg.seed, preset, tuple(sets), str(out),
                                         str(spec.dir), device, None if data_dir is None else str(data_dir)))
    return runs


def _checkpointable() -> type:
    from submitit.helpers import Checkpointable

    return Checkpointable


class RunJob(_checkpointable()):  # type: ignore[misc]
    """A submitit job running one sweep run (requeued on preemption; resumes from its checkpoint)."""

    def __init__(self, run: SweepRun) -> None:
        self.run = run

    def __call__(self) -> str:
        from benchbench import distributed, runner

        r = self.run
        device = _join_job_ranks(r.device)
        log = runner._stderr if distributed.is_main() else (lambda msg: None)
        try:
            (line,) = runner.run(r.method, r.dataset, [r.seed], r.preset, r.overrides, Path(r.out), device,
                                 None if r.data_dir is None else Path(r.data_dir), progress=False, log=log)
        except BenchbenchError as exc:  # a retry would not fix it: report, do not requeue
            return f"run {r.index} failed: {exc}"
        finally:
            distributed.finish()
        return f"run {r.index}: {line}"


def _join_job_ranks(device: str) -> str:
    """In a submitit job with several tasks (``--gpus-per-task K`` on SLURM: K tasks, one GPU each), export the
    torch.distributed environment submitit knows and join the process group; otherwise ``device`` unchanged."""
    import submitit

    from benchbench import distributed

    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (the debug executor runs in this process)
        return device
    if env.num_tasks <= 1:
        return device
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return distributed.init_from_env(device)


class StageJob(_checkpointable()):  # type: ignore[misc]
    """A submitit job building the stages one (method, dataset) configuration needs."""

    def __init__(self, run: SweepRun) -> None:
        self.run = run

    def __call__(self) -> dict[str, str]:
        from benchbench import runner

        r = self.run
        return runner.build_stages(r.method, r.dataset, r.preset, r.overrides, Path(r.out), r.device,
                                   None if r.data_dir is None else Path(r.data_dir))


def needs_stages(run: SweepRun) -> bool:
    from benchbench.registry import methods

    return bool(methods.get(run.method).meta.get("stages"))


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_task: int = 1  # > 1: that many data-parallel ranks per run, one per GPU
    cpus_per_task: int = 8
    mem_gb: int = 64
    array_parallelism: int = 64
    max_requeue: int = 3


def executor(launcher: str, folder: Path, slurm: SlurmOptions | None = None, gpus: int = 0) -> Any:
    """The submitit executor of ``launcher`` with its parameters."""
    import submitit

    if launcher == "debug":
        return submitit.DebugExecutor(folder)
    if launcher == "local":
        ex = submitit.LocalExecutor(folder, max_num_timeout=(slurm or SlurmOptions()).max_requeue)
        ex.update_parameters(timeout_min=(slurm or SlurmOptions()).time_min, gpus_per_node=min(gpus, 1))
        return ex
    if launcher == "slurm":
        o = slurm or SlurmOptions()
        try:
            ex = submitit.AutoExecutor(folder, cluster="slurm", slurm_max_num_timeout=o.max_requeue)
        except RuntimeError as exc:
            raise BenchbenchError(f"--launcher slurm: no SLURM on this machine ({exc}); use --launcher local") from None
        params: dict[str, Any] = {"timeout_min": o.time_min, "gpus_per_node": o.gpus_per_task,
                                  "tasks_per_node": max(o.gpus_per_task, 1),  # one rank per GPU (DDP within a run)
                                  "cpus_per_task": o.cpus_per_task, "mem_gb": o.mem_gb,
                                  "slurm_array_parallelism": o.array_parallelism, "name": "benchbench"}
        if o.partition:
            params["slurm_partition"] = o.partition
        ex.update_parameters(**params)
        return ex
    raise BenchbenchError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")


def submit(runs: list[SweepRun], launcher: str, out: Path, slurm: SlurmOptions | None = None, gpus: int = 0,
           wait: bool = True, log: Any = print) -> dict[str, Any]:
    """Submit the stage jobs, then the run jobs; record the sweep under ``out/sweeps``; return that record.

    ``local`` and ``debug`` wait for every job (``local`` runs ``max(gpus, 1)`` jobs at a time); ``slurm`` returns
    after submitting unless ``wait``.
    """
    folder = new_sweep_folder(Path(out))
    ex = executor(launcher, folder / "submitit", slurm, gpus)
    first_of_config: dict[tuple[str, str], SweepRun] = {}
    for r in runs:
        if needs_stages(r):
            first_of_config.setdefault(r.config_key, r)
    record: dict[str, Any] = {"launcher": launcher, "runs": [asdict(r) for r in runs], "stage_jobs": {},
                              "run_jobs": {}}
    store.atomic_write_json(folder / "sweep.json", record)
    stage_jobs = {key: ex.submit(StageJob(r)) for key, r in first_of_config.items()}
    per_pair: dict[tuple[str, str], int] = {}
    for m, d, _ in stage_jobs:
        per_pair[(m, d)] = per_pair.get((m, d), 0) + 1
    record["stage_jobs"] = {f"{m}/{d}" + (f" [{' '.join(o)}]" if per_pair[(m, d)] > 1 else ""): j.job_id
                            for (m, d, o), j in stage_jobs.items()}
    if launcher != "slurm":
        for key, job in stage_jobs.items():
            log(f"stages for {key[0]} on {key[1]}: {job.result()}")
    results = []
    if launcher == "slurm":
        # One job array per configuration, so that all its runs wait on its stage job (afterok) and nothing else.
        groups: dict[tuple[str, str], list[SweepRun]] = {}
        for r in runs:
            groups.setdefault(r.config_key, []).append(r)
        jobs, order = [], []
        for key, members in groups.items():
            dep = stage_jobs.get(key)
            ex.update_parameters(slurm_additional_parameters={"dependency": f"afterok:{dep.job_id}"} if dep else {})
            with ex.batch():
                batch = [ex.submit(RunJob(r)) for r in members]
            jobs += batch
            order += members
        record["run_jobs"] = {str(r.index): j.job_id for r, j in zip(order, jobs, strict=True)}
        store.atomic_write_json(folder / "sweep.json", record)
        log(f"submitted {len(jobs)} runs and {len(stage_jobs)} stage jobs; `benchbench status` follows them")
        if wait:
            results = [j.result() for j in jobs]
    else:
        parallel = max(gpus, 1) if launcher == "local" else 1
        pending = list(runs)
        while pending:
            batch, pending = pending[:parallel], pending[parallel:]
            jobs = []
            for slot, r in enumerate(batch):
                if launcher == "local" and gpus:
                    ex.update_parameters(visible_gpus=[slot])
                jobs.append(ex.submit(RunJob(r)))
                record["run_jobs"][str(r.index)] = jobs[-1].job_id
            store.atomic_write_json(folder / "sweep.json", record)
            for job in jobs:
                results.append(job.result())
                log(results[-1])
    record["results"] = results
    store.atomic_write_json(folder / "sweep.json", record)
    return record


def new_sweep_folder(out: Path) -> Path:
    """``out/sweeps/<YYYYmmdd-HHMMSS>``, or ``...-2``, ``-3``, ... when another sweep took that name: the folder is
    created with ``mkdir`` (atomic), so two sweeps started in the same second never share one."""
    root = out / "sweeps"
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1, 10_000):
        folder = root / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise BenchbenchError(f"cannot create a new sweep folder under {root}; remove old sweeps")


def status(out: Path) -> list[dict[str, Any]]:
    """Every run of every sweep under ``out/sweeps`` with its state: done, failed, running, started (a checkpoint,
    no process) or queued; read from the run folders, so it is right whichever engine ran them."""
    rows = []
    from benchbench.integrity import seed_problem

    for path in sorted((Path(out) / "sweeps").glob("*/sweep.json")):
        record = store.read_json(path)
        runs = record.get("runs") if isinstance(record, dict) else None
        if not isinstance(runs, list):  # torn or hand-damaged: say so, keep going with the other sweeps
            rows.append({"sweep": path.parent.name, "index": "-", "method": "?", "dataset": "?", "seed": "?",
                         "state": "unreadable", "job": f"{path.name} is not a valid sweep record"})
            continue
        for r in runs:
            if not isinstance(r, dict) or not {"dir", "index", "method", "dataset", "seed"} <= set(r):
                continue
            d = Path(r["dir"])
            if (d / "result.json").exists():
                state = "done" if not seed_problem(d) else "corrupt"
            elif (d / "failed.json").exists():
                state = "failed"
            elif d.exists() and _locked(d):
                state = "running"
            elif (d / "ckpt.pt").exists():
                state = "started"
            else:
                state = "queued"
            rows.append({"sweep": path.parent.name, "index": r["index"], "method": r["method"],
                         "dataset": r["dataset"], "seed": r["seed"], "state": state,
                         "job": (record.get("run_jobs") or {}).get(str(r["index"]), "")})
    return rows


def _locked(folder: Path) -> bool:
    """Whether a process holds the run folder's lock right now."""
    with store.folder_lock(folder) as acquired:
        return not acquired
