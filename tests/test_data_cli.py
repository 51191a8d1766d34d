"""`benchbench data info` and `benchbench data fetch` through the CLI (local HTTP server only)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serves the folder ``tmp_path/served`` on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()


def _fixture_h5(path: Path) -> Path:
    labels = np.array([[0.0, 0.0, 0.0, 0.75, 0.0, -30.0], [0.9, 0.9, 0.9, 1.25, 3.0, 30.0]])
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 64, 64, 3), np.uint8))
        f.create_dataset("labels", data=labels)
    return path


def test_info_of_a_synthetic_and_a_present_real_dataset(tmp_path: Path, invoke) -> None:
    code, out, _ = invoke(["data", "info", "mpi3d-synth"])
    assert code == 0 and "object_color (6)" in out and "1,036,800" in out and "synthetic" in out
    _fixture_h5(tmp_path / "3dshapes.h5")
    code, out, _ = invoke(["data", "info", "shapes3d", "--data-dir", str(tmp_path)])
    assert code == 0 and "floor_hue (10)" in out
    assert f"file {tmp_path / '3dshapes.h5'}: mismatch" in out  # a fixture is not the official file


def test_info_of_an_absent_file_names_the_fix(tmp_path: Path, invoke) -> None:
    code, out, _ = invoke(["data", "info", "shapes3d", "--data-dir", str(tmp_path)])
    assert code == 0 and "not usable" in out and "benchbench data fetch shapes3d" in out and ": absent" in out


def test_fetch_rejects_a_file_with_the_wrong_checksum(server, tmp_path: Path, invoke) -> None:
    url, served = server
    _fixture_h5(served / "3dshapes.h5")
    data = tmp_path / "data"
    code, _, err = invoke(["data", "fetch", "shapes3d", "--url", url, "--data-dir", str(data)])
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # besides the progress bar
    assert code != 0 and len(errors) == 1 and "removed" in errors[0] and "Traceback" not in err
    assert not (data / "3dshapes.h5").exists() and not list(data.glob("*.part"))


def test_fetch_of_celeba_gives_instructions(tmp_path: Path, invoke) -> None:
    code, _, err = invoke(["data", "fetch", "celeba", "--data-dir", str(tmp_path)])
    assert code != 0 and "list_attr_celeba.txt" in err and err.strip().count("\n") == 0
