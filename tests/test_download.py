"""Dataset downloads against a local HTTP server on 127.0.0.1 (no internet): resume, restart,
checksums, sidecars, one-line errors and atomic placement (benchbench/datasets/download.py and
manifest.py)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchbench.datasets import manifest as manifest_module
from benchbench.datasets.download import fetch
from benchbench.datasets.manifest import MANIFEST, FileEntry, check_file, resolve, sidecar_path, verify_file
from benchbench.errors import DataError, UnknownNameError
from benchbench.store import read_json

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
MD5_ONLY = {"size": None, "sha256": None, "md5": MD5, "min_size": 200_000}  # like dSprites: a published MD5 only


@dataclass
class ServerState:
    """What the handler serves and what it saw.

    Attributes:
        files: URL path (without the leading "/") -> bytes.
        ranges: honour Range requests (False: always answer 200 with the whole file).
        drop_after: on the next GET, send this many body bytes, then close the connection.
        gate: when set, send half the body, set ``halfway`` and wait for ``gate`` before the rest.
        requests: (path, Range header or None) of every GET.
    """

    files: dict[str, bytes]
    ranges: bool = True
    drop_after: int | None = None
    gate: threading.Event | None = None
    halfway: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            state.requests.append((name, rng))
            data = state.files.get(name)
            if data is None:
                self.send_error(404, "Not Found")
                return
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            start = int(m.group(1)) if m and state.ranges else 0
            if start >= len(data) and m and state.ranges:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.drop_after is not None:
                cut, state.drop_after = state.drop_after, None
                self.wfile.write(body[:cut])  # the connection closes short of Content-Length
                return
            if state.gate is not None:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                state.halfway.set()
                state.gate.wait(10)
                body = body[len(body) // 2 :]
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    """A threaded HTTP server on 127.0.0.1:<free port>; yields (base URL, state)."""
    state = ServerState(files={"blob.bin": PAYLOAD, "short.bin": PAYLOAD[:1000]})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", state
    httpd.shutdown()
    httpd.server_close()


def manifest(base: str, **changes: object) -> dict[str, FileEntry]:
    """A one-file manifest for ``blob.bin`` on the local server, with fields overridden by ``changes``."""
    fields = {"file": "blob.bin", "url": base + "blob.bin", "size": len(PAYLOAD), "sha256": SHA, "dataset": "toyset"}
    fields.update(changes)
    entry = FileEntry(**fields)  # type: ignore[arg-type]
    return {entry.file: entry}


def get(tmp_path: Path, base: str, **changes: object) -> Path:
    return fetch("toyset", tmp_path, manifest=manifest(base, **changes), progress=False, timeout=5)


# Section: downloads.


def test_full_download_verifies_and_skips_a_good_copy(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    path = get(tmp_path, base)
    assert path == tmp_path / "blob.bin" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "blob.bin.part").exists()
    assert state.requests == [("blob.bin", None)]
    entry = manifest(base)["blob.bin"]
    assert verify_file(path, entry) == "verified"
    assert sidecar_path(path).is_file()
    get(tmp_path, base)  # already verified: no second request
    assert len(state.requests) == 1
    fetch("toyset", tmp_path, manifest=manifest(base), progress=False, timeout=5, force=True)
    assert len(state.requests) == 2 and path.read_bytes() == PAYLOAD


def test_resume_from_partial_part(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:100_000])
    assert get(tmp_path, base).read_bytes() == PAYLOAD
    assert state.requests == [("blob.bin", "bytes=100000-")]
    assert not (tmp_path / "blob.bin.part").exists()


def test_broken_connection_resumes_with_range(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    state.drop_after = 123_456
    assert get(tmp_path, base).read_bytes() == PAYLOAD
    assert state.requests == [("blob.bin", None), ("blob.bin", "bytes=123456-")]


def test_complete_part_of_unknown_size_is_finished_after_416(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD)
    with pytest.warns(UserWarning, match="no SHA-256 pinned"):
        assert get(tmp_path, base, size=None, sha256=None).read_bytes() == PAYLOAD
    assert state.requests == [("blob.bin", f"bytes={len(PAYLOAD)}-")]


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    state.ranges = False
    (tmp_path / "blob.bin.part").write_bytes(b"garbage that must not survive" * 100)
    assert get(tmp_path, base).read_bytes() == PAYLOAD
    assert state.requests[0][1] is not None  # a Range was asked for, and ignored


@pytest.mark.parametrize("change,why", [({"sha256": "0" * 64}, "checksum"), ({"size": len(PAYLOAD) + 1}, "size")])
def test_mismatch_removes_the_download(
    tmp_path: Path, server: tuple[str, ServerState], change: dict[str, object], why: str
) -> None:
    base, _ = server
    with pytest.raises(DataError) as err:
        get(tmp_path, base, **change)
    msg = str(err.value)
    assert f"{why} mismatch" in msg and "expected" in msg and "got" in msg and "removed" in msg and "\n" not in msg
    if why == "checksum":
        assert SHA in msg and "0" * 64 in msg
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


def test_unpinned_checksum_checks_size_and_records_sidecar(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, _ = server
    change = {"size": None, "sha256": None, "min_size": 200_000}
    with pytest.warns(UserWarning, match="no SHA-256 pinned") as rec:
        path = get(tmp_path, base, **change)
    assert len(rec) == 1 and "\n" not in str(rec[0].message) and SHA in str(rec[0].message)
    side = read_json(sidecar_path(path))
    assert side["sha256"] == SHA and side["size"] == len(PAYLOAD)
    entry = manifest(base, **change)["blob.bin"]
    assert verify_file(path, entry) == "size-only"
    corrupt = bytearray(PAYLOAD)
    corrupt[5] ^= 0xFF
    path.write_bytes(bytes(corrupt))  # same size, new content and mtime
    assert verify_file(path, entry) == "mismatch"
    with pytest.raises(DataError, match="differs from"):
        get(tmp_path, base, **change)  # an existing bad copy is never silently kept or replaced


def test_unpinned_too_small_download_is_rejected(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, _ = server
    with pytest.raises(DataError, match="at least 200000 bytes") as err:
        fetch("toyset", tmp_path, url=base + "short.bin", progress=False, timeout=5,
              manifest=manifest(base, size=None, sha256=None, min_size=200_000))
    assert "removed" in str(err.value) and not list(tmp_path.iterdir())


def test_pinned_md5_verifies_and_records_the_sha256(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a published checksum matched: no "only the size was checked" warning
        path = get(tmp_path, base, **MD5_ONLY)
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "blob.bin.part").exists()
    side = read_json(sidecar_path(path))
    assert side["sha256"] == SHA and side["md5"] == MD5 and side["size"] == len(PAYLOAD)
    entry = manifest(base, **MD5_ONLY)["blob.bin"]
    found = check_file(path, entry)
    assert found.status == "verified" and found.sha256 == SHA and "published" in found.detail
    get(tmp_path, base, **MD5_ONLY)  # already verified: no second request
    assert state.requests == [("blob.bin", None)]
    corrupt = bytearray(PAYLOAD)
    corrupt[5] ^= 0xFF
    path.write_bytes(bytes(corrupt))  # same size, new content
    found = check_file(path, entry)
    assert found.status == "mismatch" and MD5 in found.detail


def test_pinned_md5_mismatch_is_refused(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, _ = server
    with pytest.raises(DataError) as err:
        get(tmp_path, base, **{**MD5_ONLY, "md5": "0" * 32})
    msg = str(err.value)
    assert "\n" not in msg and "checksum mismatch" in msg and "removed" in msg and "by hand" in msg
    assert "expected the published md5 " + "0" * 32 in msg and f"got {MD5}" in msg
    assert not list(tmp_path.iterdir())  # no target, no .part, no sidecar


def test_resumed_download_checks_the_md5_of_the_whole_file(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:100_000])
    path = get(tmp_path, base, **MD5_ONLY)
    assert path.read_bytes() == PAYLOAD and state.requests == [("blob.bin", "bytes=100000-")]
    assert read_json(sidecar_path(path))["md5"] == MD5
    # A damaged prefix held from an earlier attempt: only the tail is transferred, yet the MD5 catches it.
    other = tmp_path / "other"
    other.mkdir()
    held = bytearray(PAYLOAD[:100_000])
    held[7] ^= 0xFF
    (other / "blob.bin.part").write_bytes(bytes(held))
    with pytest.raises(DataError, match="expected the published md5") as err:
        get(other, base, **MD5_ONLY)
    assert "\n" not in str(err.value) and state.requests[-1] == ("blob.bin", "bytes=100000-")
    assert not list(other.iterdir())


def test_pinned_md5_checks_a_hand_placed_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = FileEntry("blob.bin", "http://unused/", **MD5_ONLY, dataset="toyset")  # type: ignore[arg-type]
    path = tmp_path / "blob.bin"
    path.write_bytes(PAYLOAD)
    manifest_module.write_sidecar(path, SHA)  # trust on first download, from before the MD5 was pinned
    calls = []
    real = manifest_module.file_digests
    monkeypatch.setattr(manifest_module, "file_digests", lambda p, progress=False, md5=False: calls.append(md5)
                        or real(p, progress, md5))
    assert verify_file(path, entry) == "verified" and calls == [True]  # the old record is no evidence: MD5 now
    assert read_json(sidecar_path(path))["md5"] == MD5
    assert verify_file(path, entry) == "verified" and calls == [True]  # then the recorded SHA-256 is used
    path.write_bytes(PAYLOAD[::-1])
    found = check_file(path, entry)
    assert found.status == "mismatch" and f"expected the published md5 {MD5}" in found.detail


def test_http_404_is_one_line(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, _ = server
    with pytest.raises(DataError) as err:
        fetch("toyset", tmp_path, url=base + "missing.bin", manifest=manifest(base), progress=False, timeout=5)
    msg = str(err.value)
    assert "\n" not in msg and "404" in msg and base + "missing.bin" in msg
    assert str(tmp_path / "blob.bin") in msg and "toyset-synth" in msg
    assert not list(tmp_path.iterdir())  # no empty .part left behind


def test_connection_refused_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/"
    with pytest.raises(DataError) as err:
        get(tmp_path, base)
    msg = str(err.value)
    assert "\n" not in msg and base + "blob.bin" in msg and "by hand" in msg
    assert not list(tmp_path.iterdir())


def test_target_never_exists_half_written(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    base, state = server
    state.gate = threading.Event()
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(path=get(tmp_path, base)))
    worker.start()
    try:
        assert state.halfway.wait(10)
        part = tmp_path / "blob.bin.part"
        for _ in range(200):  # the client writes what it received shortly after
            if part.exists() and part.stat().st_size > 0:
                break
            threading.Event().wait(0.01)
        assert part.exists() and 0 < part.stat().st_size < len(PAYLOAD)
        assert not (tmp_path / "blob.bin").exists()
    finally:
        state.gate.set()
        worker.join(10)
    assert result["path"] == tmp_path / "blob.bin" and (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    assert not (tmp_path / "blob.bin.part").exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX file locks")
def test_concurrent_download_is_refused(tmp_path: Path, server: tuple[str, ServerState]) -> None:
    import fcntl

    base, state = server
    with open(tmp_path / "blob.bin.part", "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(DataError, match="another process"):
            get(tmp_path, base)
    assert state.requests == [] and (tmp_path / "blob.bin.part").exists()


# Section: verification and the manifest.


def test_verify_file_caches_the_hash_by_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(PAYLOAD)
    entry = FileEntry("blob.bin", "http://unused/", len(PAYLOAD), SHA, "toyset")
    calls = []
    real = manifest_module.sha256_file
    monkeypatch.setattr(manifest_module, "sha256_file", lambda p, progress=False: calls.append(p) or real(p, progress))
    assert verify_file(path, entry) == "verified" and len(calls) == 1
    assert verify_file(path, entry) == "verified" and len(calls) == 1  # from the sidecar
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert verify_file(path, entry) == "verified" and len(calls) == 2  # touched: hashed again
    path.write_bytes(PAYLOAD[::-1])
    found = check_file(path, entry)
    assert found.status == "mismatch" and SHA in found.detail
    assert verify_file(tmp_path / "absent.bin", entry) == "absent"
    assert verify_file(path, FileEntry("blob.bin", "", len(PAYLOAD) - 1, SHA, "toyset")) == "mismatch"


def test_manifest_entries() -> None:
    shapes = resolve("shapes3d")
    assert shapes.file == "3dshapes.h5" and shapes.url == "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
    assert shapes.size == 267_573_662
    assert shapes.sha256 == "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"
    assert resolve("mpi3d").file == "mpi3d_toy.npz"
    real = resolve("mpi3d", variant="real")
    assert real.url == "https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/mpi3d_real.npz"
    assert real.sha256 is None and real.size is None and real.min_size == 1_036_800 * 12_288
    assert resolve("mpi3d_realistic.npz").variant == "realistic"
    assert resolve("shapes3d", variant="toy") is shapes  # variants only matter for multi-file sets
    assert {e.dataset for e in MANIFEST.values()} == {"shapes3d", "mpi3d", "dsprites"}
    with pytest.raises(DataError, match="variant"):
        resolve("mpi3d", variant="complex")
    with pytest.raises(UnknownNameError, match="shapes3d"):
        resolve("shapes3")
    with pytest.raises(DataError, match="nothing to download"):
        resolve("mpi3d-synth")


def test_celeba_needs_manual_placement(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        fetch("celeba", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "celeba-synth" in msg
    for part in ("img_align_celeba", "img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt"):
        assert str(tmp_path / "celeba" / part) in msg
