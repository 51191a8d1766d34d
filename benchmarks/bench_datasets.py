"""Throughput of the Shapes3D datasets on one CPU thread (datasets.md §5a: >= 2,000 images/s required).

Prints the shapes3d-synth geometry precompute time, its images/s for random-index batches of 64 and
256, and the images/s of the real ``shapes3d`` loader on a fixture file (h5 and npz) written from
the look-alike. Everything goes to a temporary folder.

``bench_mpi3d`` then prints the same for mpi3d-synth (datasets.md §5b: >= 1,000 images/s required) and
the memory-mapped ``mpi3d`` loader on a stored ``.npz`` fixture, plus the peak memory of opening that
file (tracemalloc, and peak RSS in a fresh process) against ``np.load`` and the array size.

``bench_celeba`` prints celeba-synth's images/s (datasets.md §5c: >= 1,000 images/s per core at 64x64)
and the real ``celeba`` loader's on a JPEG fixture written from the look-alike: lazy decode+crop,
LRU hits, and the uint8 cache. On a shared machine the CPU-time rate is the per-core figure.

Usage: ``PYTHONPATH=. python benchmarks/bench_datasets.py [--resolution 64] [--seconds 3]``
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # one thread; set before numpy loads its BLAS
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch

from benchbench.datasets import DataConfig
from benchbench.datasets.shapes3d import NUM_IMAGES, Shapes3D
from benchbench.datasets.shapes3d_synth import Shapes3DSynth


def rate(read: Callable[[np.ndarray], np.ndarray], pool: np.ndarray, batch: int, seconds: float) -> float:
    """Images per second of ``read`` on random batches drawn (with replacement) from ``pool``."""
    rng = np.random.default_rng(0)
    read(rng.choice(pool, batch))  # warm-up: opens files, builds caches
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        read(rng.choice(pool, batch))
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--rows", type=int, default=2000, help="rows of the fixture file")
    parser.add_argument("--only", choices=("all", "shapes3d", "mpi3d", "celeba"), default="all")
    args = parser.parse_args()
    if args.only == "mpi3d":
        bench_mpi3d(args.seconds)
        return
    if args.only == "celeba":
        bench_celeba(args.seconds)
        return
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth = Shapes3DSynth(DataConfig(resolution=args.resolution), data_dir=root)
        start = time.perf_counter()
        synth.images(np.array([0]))  # builds and stores the geometry map cache
        print(f"shapes3d-synth r{args.resolution}: precompute {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        Shapes3DSynth(DataConfig(resolution=args.resolution), data_dir=root).images(np.array([0]))
        print(f"shapes3d-synth r{args.resolution}: cache load {time.perf_counter() - start:.3f} s")
        everything = np.arange(NUM_IMAGES)
        for batch in (64, 256):
            r = rate(synth.images, everything, batch, args.seconds)
            print(f"shapes3d-synth r{args.resolution}: batch {batch}: {r:,.0f} images/s")

        rows = np.sort(np.random.default_rng(0).choice(NUM_IMAGES, args.rows, replace=False))
        fixture = Shapes3DSynth(DataConfig(), data_dir=root)
        images, labels = fixture.images(rows), fixture.labels(rows)
        (root / "h5").mkdir()
        (root / "npz").mkdir()
        with h5py.File(root / "h5" / "3dshapes.h5", "w") as f:
            f.create_dataset("images", data=images, chunks=(1, 64, 64, 3), compression="gzip")
            f.create_dataset("labels", data=labels, chunks=True, compression="gzip")
        np.savez(root / "npz" / "3dshapes.npz", images=images, labels=labels)
        for kind in ("h5", "npz"):
            start = time.perf_counter()
            real = Shapes3D(DataConfig(), data_dir=root / kind)
            opened = time.perf_counter() - start
            for batch in (64, 256):
                r = rate(real.images, rows, batch, args.seconds)
                print(
                    f"shapes3d ({kind} fixture, {args.rows} rows, open {opened:.3f} s): batch {batch}: "
                    f"{r:,.0f} images/s"
                )
    if args.only == "all":
        bench_mpi3d(args.seconds)
        bench_celeba(args.seconds)


MPI3D_FIXTURE_SIZES = (2, 2, 1, 3, 3, 20, 20)  # 14,400 rows, 177 MB of pixels
_PEAK_SCRIPT = """
import sys, tracemalloc
from pathlib import Path
import numpy as np
from benchbench.datasets import DataConfig
from benchbench.datasets.mpi3d import Mpi3D
def status(key):  # kB -> bytes, from /proc (Linux)
    return 1024 * int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1])
root, mode, sizes = Path(sys.argv[1]), sys.argv[2], tuple(int(s) for s in sys.argv[3].split(","))
open('/proc/self/clear_refs', 'w').write('5')  # reset the RSS high-water mark (imports peak above it)
base = [status(k) for k in ('VmRSS:', 'RssAnon:', 'RssFile:')]
tracemalloc.start()
if mode == "memmap":  # open, then read one random batch of 64
    ds = Mpi3D(DataConfig(), data_dir=root, factor_sizes=sizes)
    x = ds.images(np.random.default_rng(0).integers(0, len(ds), 64))
else:
    with np.load(root / "mpi3d_toy.npz") as npz:
        x = npz["images"]
peak = tracemalloc.get_traced_memory()[1]
print(peak, status('VmHWM:') - base[0], status('RssAnon:') - base[1], status('RssFile:') - base[2])
"""


def bench_mpi3d(seconds: float) -> None:
    """mpi3d-synth images/s, mpi3d memmap images/s on a stored fixture, and the memory of opening it."""
    import subprocess
    import sys

    from benchbench.datasets.mpi3d import Mpi3D
    from benchbench.datasets.mpi3d_synth import Mpi3DSynth, scene_tables

    torch.set_num_threads(1)
    scene_tables.cache_clear()
    start = time.perf_counter()
    scene_tables()
    print(f"mpi3d-synth: precompute (9 backgrounds, 36 sprites) {time.perf_counter() - start:.3f} s")
    synth = Mpi3DSynth(DataConfig())
    for batch in (64, 256):
        print(f"mpi3d-synth: batch {batch}: {rate(synth.images, np.arange(len(synth)), batch, seconds):,.0f} images/s")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grid = np.stack(np.unravel_index(np.arange(int(np.prod(MPI3D_FIXTURE_SIZES))), MPI3D_FIXTURE_SIZES), axis=1)
        grid[:, 5:] *= 2  # every other arm position of the full grid
        images = np.concatenate([synth.factor_images(part) for part in np.array_split(grid, 64)])
        np.savez(root / "mpi3d_toy.npz", images=images)
        nbytes = images.nbytes
        del images
        start = time.perf_counter()
        real = Mpi3D(DataConfig(), data_dir=root, factor_sizes=MPI3D_FIXTURE_SIZES)
        opened = time.perf_counter() - start
        for batch in (64, 256):
            r = rate(real.images, np.arange(len(real)), batch, seconds)
            print(
                f"mpi3d (stored npz fixture, {len(real):,} rows, {nbytes / 1e6:.0f} MB, open {opened * 1e3:.1f} ms, "
                f"page-cached): batch {batch}: {r:,.0f} images/s"
            )
        sizes = ",".join(map(str, MPI3D_FIXTURE_SIZES))
        for mode in ("memmap", "np.load"):
            out = subprocess.run(
                [sys.executable, "-c", _PEAK_SCRIPT, tmp, mode, sizes], capture_output=True, text=True, check=True
            ).stdout.split()
            peak, rss, anon, file = (int(v) / 2**20 for v in out)
            print(
                f"mpi3d open+read 64 ({mode}): tracemalloc peak {peak:.2f} MiB; RSS peak growth {rss:.1f} MiB "
                f"(anonymous {anon:.1f}, file-backed page cache {file:.1f}); array {nbytes / 2**20:.0f} MiB"
            )


def _wall_and_cpu(read: Callable[[np.ndarray], np.ndarray], pool: np.ndarray, batch: int, seconds: float) -> str:
    """Images/s of ``read`` on random batches from ``pool``, by wall clock and by this process's CPU time."""
    rng = np.random.default_rng(0)
    read(rng.choice(pool, batch))  # warm-up
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        read(rng.choice(pool, batch))
        n += batch
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return f"{n / wall:,.0f} images/s wall, {n / cpu:,.0f} images/s per CPU-second"


def bench_celeba(seconds: float, fixture_images: int = 1024) -> None:
    """celeba-synth images/s; the celeba loader on a JPEG fixture: decode path, LRU hits, uint8 cache."""
    from benchbench.datasets.celeba import CelebA
    from benchbench.datasets.celeba_synth import CelebASynth, split_sizes, write_fixture

    torch.set_num_threads(1)
    synth = CelebASynth(DataConfig())
    everything = np.arange(len(synth))
    for batch in (64, 256):
        print(f"celeba-synth r64: batch {batch}: {_wall_and_cpu(synth.images, everything, batch, seconds)}")
    aligned = CelebASynth(DataConfig(), aligned=True)
    print(f"celeba-synth aligned 178x218: batch 64: {_wall_and_cpu(aligned.images, everything, 64, seconds)}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_fixture(root / "celeba", split_sizes(fixture_images))
        print(f"celeba fixture: {fixture_images} JPEGs written in {time.perf_counter() - start:.2f} s")
        pool = np.arange(fixture_images)
        for crop in ("d2c", "center"):
            start = time.perf_counter()
            real = CelebA(DataConfig(crop=crop), data_dir=root)
            opened = time.perf_counter() - start
            real.lru_size = 0  # every read decodes
            label = f"celeba ({crop}, {fixture_images}-image JPEG fixture, open {opened * 1e3:.0f} ms)"
            for batch in (64, 256):
                print(f"{label}: decode+crop, batch {batch}: {_wall_and_cpu(real.images, pool, batch, seconds)}")
        real = CelebA(DataConfig(), data_dir=root)  # LRU on: the pool fits, so reads after the first are hits
        real.images(pool)
        print(f"celeba (d2c) LRU hits: batch 256: {_wall_and_cpu(real.images, pool, 256, seconds)}")
        start = time.perf_counter()
        real.build_cache(workers=1, progress=False)
        built = time.perf_counter() - start
        print(f"celeba (d2c) build_cache, 1 thread: {built:.2f} s ({fixture_images / built:,.0f} images/s)")
        cached = CelebA(DataConfig(), data_dir=root)
        for batch in (64, 256):
            print(f"celeba (d2c) uint8 cache: batch {batch}: {_wall_and_cpu(cached.images, pool, batch, seconds)}")


if __name__ == "__main__":
    main()
