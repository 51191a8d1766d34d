"""Hermetic tests: no plugins, a private data folder, CPU only, two threads."""

from __future__ import annotations

import os
import tempfile

os.environ["BENCHBENCH_NO_PLUGINS"] = "1"
os.environ.setdefault("BENCHBENCH_DATA", tempfile.mkdtemp(prefix="benchbench-test-data-"))
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


import sys  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable[[list[str]], tuple]:
    """Run the ``benchbench`` entry point in-process: invoke(args) -> (exit code, stdout, stderr)."""
    from benchbench.cli import main

    def run(args: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["benchbench", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test (tiny models: faster than two, far faster on a shared, busy CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Inception state dict in torch-fidelity's format (FID tests: the cost and code path are real,
    the features are not)."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as inc

    torch.manual_seed(0)
    with mock.patch.object(inc, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        net = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("weights") / "inception-random.pth"
    torch.save(net.state_dict(), path)
    return path
