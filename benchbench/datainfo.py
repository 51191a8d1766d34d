"""``benchbench data info``: what a dataset is, where its files are, and whether they check out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchbench.datasets.base import DataConfig, data_root
from benchbench.errors import DataError
from benchbench.registry import datasets


def describe(name: str, data_dir: Path | None = None, variant: str | None = None) -> list[str]:
    """Lines describing dataset ``name``: source, factors or attributes, size, files and their status."""
    from benchbench.datasets.manifest import check_file, entries, sidecar_path

    entry = datasets.get(name)
    root = data_root(data_dir)
    cfg = entry.meta.get("data_defaults", DataConfig())
    cfg = replace(cfg, download=False, variant=variant or cfg.variant)
    lines = [f"{name}: {entry.meta.get('description', '')}".rstrip(),
             f"  source: {entry.meta.get('source')}  (family {entry.meta.get('family')})"]
    try:
        data = entry.obj(cfg, data_dir)
    except DataError as exc:
        lines.append(f"  status: not usable: {exc}")
        data = None
    if data is not None:
        spec = data.spec
        present = _present(data)
        if present < len(data):
            lines.append(f"  images: {present:,} present of the {len(data):,} of the full factor grid, at "
                         f"{spec.resolution}x{spec.resolution}, version {spec.version}")
            lines.append(f"  subset: this file holds only {present:,} images; training and the metrics sample the "
                         f"whole grid, so `benchbench run` needs the full file (`benchbench data fetch {name}`)")
        else:
            lines.append(f"  images: {len(data):,} at {spec.resolution}x{spec.resolution}, version {spec.version}")
        if spec.factor_sizes:
            lines.append("  factors: " + ", ".join(f"{n} ({s})" for n, s in zip(spec.factor_names, spec.factor_sizes)))
        if spec.attr_names:
            lines.append(f"  attributes ({len(spec.attr_names)}): " + ", ".join(spec.attr_names))
            for split in ("train", "valid", "test"):
                lines.append(f"  split {split}: {len(data.split(split)):,} images")
        if hasattr(data, "verify"):  # CelebA: md5 of the text files
            for fname, check in data.verify().items():
                lines.append(f"  {fname}: {'verified' if check.ok else 'md5 mismatch'} ({check.path})")
    if entry.meta.get("source") == "real":
        for e in entries(name):
            path = root / e.file
            status = check_file(path, e).status
            if status == "verified" and e.sha256 is None:  # only an MD5 is published (manifest.FileEntry.md5)
                status += (f" (the published md5 matched at download or first check; later checks use the sha256 "
                           f"recorded then in {sidecar_path(path).name})")
            if status == "mismatch" and data is not None and _present(data) < len(data):
                status += f" (a {_present(data):,}-image subset, not the published file)"
            lines.append(f"  file {path}: {status}")
    else:
        lines.append("  files: none (rendered on demand)")
    return lines


def _present(data: object) -> int:
    """Images the files actually hold: a subset file of a ground-truth set lists its ``available_indices``."""
    available = getattr(data, "available_indices", None)
    return len(available) if available is not None else len(data)  # type: ignore[arg-type]
