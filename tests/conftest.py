"""Hermetic tests: no plugins, a private data folder, CPU only, two threads."""

from __future__ import annotations

import os
import tempfile

os.environ["BENCHBENCH_NO_PLUGINS"] = "1"
os.environ.setdefault("BENCHBENCH_DATA", tempfile.mkdtemp(prefix="benchbench-test-data-"))
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
