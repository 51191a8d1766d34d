"""CelebA's two text files: exact formatting, fast validated parsing and md5 checks (datasets.md §3).

Reference: Liu, Luo, Wang & Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015,
https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html. ``list_attr_celeba.txt``: a count line, the 40
attribute names with a trailing space, then per image its name, one space, the first value and every
later value right-aligned in 3 characters, CRLF. ``list_eval_partition.txt``: ``"<name> <split>"``, CRLF.
Parsing splits on arbitrary whitespace and drops empty tokens (torchvision's csv reader keeps a spurious
empty name from the trailing space), vectorised over the bytes because the real file has 8.3M tokens.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchbench.errors import DataError

ATTR_FILE, PARTITION_FILE = "list_attr_celeba.txt", "list_eval_partition.txt"
MD5 = {ATTR_FILE: "75e246fa4810816ffd6ee81facbd244c", PARTITION_FILE: "d32c9cbf5e040fd4025c592c306e6668"}
ATTR_NAMES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip


def one_line(text: object) -> str:
    """Collapse whitespace so error messages stay on one line."""
    return re.sub(r"\s+", " ", str(text)).strip()


def format_attr_file(names: Sequence[str], values: np.ndarray) -> bytes:
    """The bytes of ``list_attr_celeba.txt`` in the official layout (§3).

    Count line; the attribute names joined by single spaces with a trailing space; per image the file
    name, one space, the first value, then every later value right-aligned in 3 characters; CRLF.

    Args:
        names: N image file names (``000001.jpg`` ...).
        values: [N, 40] integers in {-1, 1}, columns in ``ATTR_NAMES`` order.
    """
    values = np.asarray(values)
    rows = [
        f"{name} {row[0]}{''.join(f'{v:>3d}' for v in row[1:])}\r\n"
        for name, row in zip(names, values.tolist(), strict=True)
    ]
    return (f"{len(rows)}\r\n" + " ".join(ATTR_NAMES) + " \r\n" + "".join(rows)).encode("ascii")


def format_partition_file(names: Sequence[str], splits: np.ndarray) -> bytes:
    """The bytes of ``list_eval_partition.txt``: ``"<name> <split>"`` per line, CRLF, no header (§3)."""
    return "".join(f"{n} {s}\r\n" for n, s in zip(names, np.asarray(splits).tolist(), strict=True)).encode()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"celeba: cannot read {path} ({one_line(exc)})") from exc


def _tokens(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Whitespace-separated tokens of ``data``, vectorised (the real attribute file has 8.3M tokens).

    Returns:
        The bytes as uint8 [L], token starts [T], token ends [T] (exclusive) and the 0-based line of each
        token [T]; lines end at LF, CRLF or a lone CR, and empty tokens never occur.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    newline = (arr == 10) | ((arr == 13) & (np.append(arr[1:], 10) != 10))
    blank = newline | (arr == 32) | ((arr >= 9) & (arr <= 13))
    edges = np.diff(np.concatenate(([0], (~blank).astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return arr, starts, ends, np.searchsorted(np.flatnonzero(newline), starts)


def _text(data: bytes, start: int, end: int) -> str:
    return data[start:end].decode("ascii", "replace")


def _rows(
    tokens: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], path: Path, first_line: int, width: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Token starts and ends [N, width] of the non-blank lines from ``first_line`` on (``tokens`` from
    ``_tokens``), each line with ``width`` tokens (a DataError names the first line with another count)."""
    _, starts, ends, line = tokens
    keep = line >= first_line
    starts, ends, line = starts[keep], ends[keep], line[keep]
    per_line = np.bincount(line - first_line) if len(line) else np.zeros(0, dtype=np.int64)
    present = np.flatnonzero(per_line)
    wrong = present[per_line[present] != width]
    if len(wrong):
        k = int(wrong[0])
        raise DataError(f"celeba: {path} line {k + first_line + 1} has {per_line[k] - 1} {what}, expected {width - 1}")
    return starts.reshape(-1, width), ends.reshape(-1, width)


def parse_attr_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt`` (§3) into image names [N] and attributes [N, 40] (uint8 in {0, 1}).

    Raises:
        DataError: a bad count line, attribute names other than CelebA's 40, a row with the wrong number
            of values or a value outside {-1, 1}, or a row count that disagrees with the count line.
    """
    data = _read(path)
    tokens = _tokens(data)
    arr, starts, ends, line = tokens
    first = [_text(data, s, e) for s, e in zip(starts[line == 0], ends[line == 0], strict=True)]
    if len(first) != 1 or not first[0].isdigit():
        raise DataError(f"celeba: {path} line 1 must be the image count alone, found {' '.join(first)[:40]!r}")
    count = int(first[0])
    header = [_text(data, s, e) for s, e in zip(starts[line == 1], ends[line == 1], strict=True)]
    if tuple(header) != ATTR_NAMES:
        k = next((k for k, (a, b) in enumerate(zip(header, ATTR_NAMES)) if a != b), min(len(header), 40))
        found = header[k] if k < len(header) else "<end of line>"
        raise DataError(
            f"celeba: {path} line 2 must name CelebA's 40 attributes in order; it has {len(header)} names, "
            f"name {k + 1} is {found!r}, expected {ATTR_NAMES[k] if k < 40 else '<end of line>'!r}"
        )
    st, en = _rows(tokens, path, 2, 41, "values")
    if len(st) != count:
        raise DataError(f"celeba: {path} line 1 announces {count} images but {len(st)} rows follow")
    vs, size = st[:, 1:], en[:, 1:] - st[:, 1:]
    c0, c1 = arr[vs], arr[np.minimum(vs + 1, len(arr) - 1)]
    ones = (size == 1) & (c0 == ord("1"))
    valid = ones | ((size == 2) & (c0 == ord("-")) & (c1 == ord("1")))
    if not valid.all():
        r, c = (int(x) for x in np.argwhere(~valid)[0])
        raise DataError(
            f"celeba: {path} line {r + 3} ({_text(data, st[r, 0], en[r, 0])}) has {ATTR_NAMES[c]}="
            f"{_text(data, vs[r, c], en[r, c + 1])!r}; values must be -1 or 1"
        )
    return [_text(data, s, e) for s, e in zip(st[:, 0], en[:, 0], strict=True)], ones.astype(np.uint8)


def parse_partition_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse ``list_eval_partition.txt`` into image names [N] and split codes [N] (int8: 0, 1, 2)."""
    data = _read(path)
    tokens = _tokens(data)
    arr = tokens[0]
    st, en = _rows(tokens, path, 0, 2, "split codes after the name")
    code = arr[st[:, 1]].astype(np.int8) - ord("0")
    bad = np.flatnonzero((en[:, 1] - st[:, 1] != 1) | (code < 0) | (code > 2))
    if len(bad):
        r = int(bad[0])
        raise DataError(
            f"celeba: {path} row {r + 1} ({_text(data, st[r, 0], en[r, 0])}) has split "
            f"{_text(data, st[r, 1], en[r, 1])!r}; splits must be 0 (train), 1 (valid) or 2 (test)"
        )
    return [_text(data, s, e) for s, e in zip(st[:, 0], en[:, 0], strict=True)], code


# Section: checksums.


class FileCheck(NamedTuple):
    """Result of comparing one file's md5 with the known value (§3 table)."""

    path: Path
    md5: str
    expected: str

    @property
    def ok(self) -> bool:
        return self.md5 == self.expected


def file_md5(path: Path) -> str:
    """Hex md5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
