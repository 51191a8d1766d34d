"""Throughput of the Shapes3D datasets on one CPU thread (datasets.md §5a: >= 2,000 images/s required).

Prints the shapes3d-synth geometry precompute time, its images/s for random-index batches of 64 and
256, and the images/s of the real ``shapes3d`` loader on a fixture file (h5 and npz) written from
the look-alike. Everything goes to a temporary folder.

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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
