"""``cars3d-synth``: a procedural look-alike of Cars3D (Reed et al. 2015), ray-cast on demand.

Not the real data: results on it are recorded as ``source: synthetic`` with the generator version. Same factors,
sizes and ravel order as ``cars3d``: elevation 4, azimuth 24, object 183 (17,568 images, 64x64 RGB).

Each object id is a parametric car: a body box, a cabin box on top and four wheels (cylinders across the car), whose
length, width, body and cabin heights, cabin length and position, wheel size and body colour come from counter-based
uniforms ``u(object, stream)`` (SplitMix64 on fixed stream ids, datasets.md §5), so an object's shape is a pure
function of its id. The camera orbits the car at distance 10 (vertical field of view 30 deg) looking at (0, 0.55, 0):
azimuth 15 deg · k (k = 0..23), elevation 0, 10, 20 or 30 deg (the real set's angles are not recorded in its files;
these are our choice). Lambert shading under one fixed light, white background, one ray per pixel.

Speed: all 96 views of an object are cast as one batch, only the rays entering its bounding box tested against its
parts (~0.5 s per car on one core); the whole set is rendered on first use (a minute or two) and cached on disk
(``synth-cache/``, 216 MB at 64x64, keyed by GEN_VERSION and resolution), then memory-mapped.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchbench.datasets.base import DataConfig, DataSpec, GroundTruthData, data_root
from benchbench.datasets.cars3d import FACTOR_NAMES, FACTOR_SIZES
from benchbench.datasets.celeba_synth import uniform
from benchbench.errors import ConfigError
from benchbench.registry import register_dataset

GEN_VERSION = 1
ELEVATIONS = np.array([0.0, 10.0, 20.0, 30.0])  # degrees
AZIMUTHS = np.arange(24) * 15.0  # degrees
_SEED = 0
STREAMS = {"length": 0, "width": 1, "body_height": 2, "cabin_length": 3, "cabin_offset": 4, "cabin_height": 5,
           "wheel": 6, "hue": 7, "saturation": 8, "value": 9}
_DIST, _FOV, _TARGET = 9.0, 30.0, np.array([0.0, 0.55, 0.0])
_LIGHT = np.array([0.35, 0.85, 0.4]) / np.linalg.norm([0.35, 0.85, 0.4])
_AMBIENT, _DIFFUSE = 0.4, 0.6
_WINDOW, _TYRE, _BACKGROUND = np.array([0.16, 0.19, 0.26]), np.array([0.08, 0.08, 0.08]), np.array([1.0, 1.0, 1.0])


def car_parameters(obj: int) -> dict[str, float]:
    """The car of object id ``obj``: sizes in world units (x along the car, y up, z across) and its body colour."""
    u = {k: float(uniform(_SEED, np.array([obj]), s)[0]) for k, s in STREAMS.items()}
    length, width = 3.6 + 1.4 * u["length"], 1.55 + 0.45 * u["width"]
    wheel = 0.28 + 0.14 * u["wheel"]
    cabin_length = length * (0.32 + 0.38 * u["cabin_length"])
    free = (length - cabin_length) / 2
    return {
        "length": length, "width": width, "wheel": wheel, "bottom": 0.75 * wheel,
        "body_height": 0.4 + 0.35 * u["body_height"], "cabin_length": cabin_length,
        "cabin_center": free * (2 * u["cabin_offset"] - 1) * 0.8, "cabin_height": 0.3 + 0.35 * u["cabin_height"],
        "hue": u["hue"], "saturation": 0.45 + 0.5 * u["saturation"], "value": 0.5 + 0.45 * u["value"],
    }


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    rgb = [np.clip(abs((h * 6.0 - c) % 6.0 - 3.0) - 1.0, 0.0, 1.0) for c in (0.0, 2.0, 4.0)]
    return np.float32(v) * ((1 - np.float32(s)) + np.float32(s) * np.array(rgb, dtype=np.float32))


def camera_rays(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Eyes [96, 3] and unit directions [96, R·R, 3] (float32) for every (azimuth, elevation), row ``a · 4 + e``."""
    views = [(a, e) for a in AZIMUTHS for e in ELEVATIONS]
    c = ((np.arange(resolution) + 0.5) / resolution * 2 - 1) * np.tan(np.deg2rad(_FOV) / 2)
    x, y = np.meshgrid(c, -c)
    eyes, dirs = [], []
    for a, e in views:
        a, e = np.deg2rad(a), np.deg2rad(e)
        eye = _TARGET + _DIST * np.array([np.cos(e) * np.cos(a), np.sin(e), np.cos(e) * np.sin(a)])
        fwd = (_TARGET - eye) / np.linalg.norm(_TARGET - eye)
        right = np.cross(fwd, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        d = fwd + x.reshape(-1, 1) * right + y.reshape(-1, 1) * up
        eyes.append(eye)
        dirs.append(d / np.linalg.norm(d, axis=1, keepdims=True))
    return np.asarray(eyes, np.float32), np.asarray(dirs, np.float32)


def _box(o: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slab test: distances [...] (inf: miss) and outward normals [..., 3] of rays o [..., 3] + t d [..., 3]."""
    inv = 1.0 / np.where(d == 0, np.float32(1e-9), d)
    t1, t2 = (lo - o) * inv, (hi - o) * inv
    tin, tout = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(tin, axis=-1)
    near, far = tin.max(-1), tout.min(-1)
    t = np.where((near <= far) & (near > 1e-4), near, np.inf).astype(np.float32)
    n = -np.sign(np.take_along_axis(d, axis[..., None], -1)) * (np.arange(3) == axis[..., None])
    return t, n.astype(np.float32)


def _wheel(o: np.ndarray, d: np.ndarray, cx: float, cy: float, r: float, z0: float, z1: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Cylinder (x − cx)² + (y − cy)² = r² across the car (z0 <= z <= z1), side and flat caps."""
    px, py = o[..., 0] - cx, o[..., 1] - cy
    a = d[..., 0] ** 2 + d[..., 1] ** 2
    b = px * d[..., 0] + py * d[..., 1]
    disc = b * b - a * (px * px + py * py - r * r)
    with np.errstate(invalid="ignore", divide="ignore"):
        ts = (-b - np.sqrt(np.maximum(disc, 0))) / a
    zs = o[..., 2] + ts * d[..., 2]
    ts = np.where((disc >= 0) & (a > 0) & (ts > 1e-4) & (zs >= z0) & (zs <= z1), ts, np.inf)
    ns = np.stack([px + ts * d[..., 0], py + ts * d[..., 1], np.zeros_like(ts)], -1) / r
    best, normal = ts, ns
    for z, sign in ((z0, -1.0), (z1, 1.0)):
        with np.errstate(invalid="ignore", divide="ignore"):
            tc = (z - o[..., 2]) / d[..., 2]
        hx, hy = px + tc * d[..., 0], py + tc * d[..., 1]
        tc = np.where(np.isfinite(tc) & (tc > 1e-4) & (hx * hx + hy * hy <= r * r), tc, np.inf)
        closer = tc < best
        best = np.where(closer, tc, best)
        normal = np.where(closer[..., None], np.array([0.0, 0.0, sign], np.float32), normal)
    return best.astype(np.float32), np.nan_to_num(normal).astype(np.float32)


def render_object(obj: int, rays: tuple[np.ndarray, np.ndarray], resolution: int) -> np.ndarray:
    """All 96 views of object ``obj``: uint8 [96, R, R, 3], row ``azimuth · 4 + elevation`` (as the real files).

    Only rays that enter the car's bounding box are tested against its parts."""
    p = car_parameters(obj)
    eyes, dirs = rays
    hl, hw = p["length"] / 2, p["width"] / 2
    top = p["bottom"] + p["body_height"]
    c0 = p["cabin_center"] - p["cabin_length"] / 2
    r, wx = p["wheel"], hl - 0.35 - p["wheel"]
    o_all = np.broadcast_to(eyes[:, None, :], dirs.shape)
    t_box, _ = _box(o_all, dirs, np.array([-hl - 0.05, 0.0, -hw - 0.05], np.float32),
                    np.array([hl + 0.05, top + p["cabin_height"] + 0.05, hw + 0.05], np.float32))
    sel = np.isfinite(t_box)
    o, d = o_all[sel], dirs[sel]  # [M, 3]
    hits = [
        (_box(o, d, np.array([-hl, p["bottom"], -hw], np.float32), np.array([hl, top, hw], np.float32)),
         _hsv(p["hue"], p["saturation"], p["value"])),
        (_box(o, d, np.array([c0, top - 0.01, -0.85 * hw], np.float32),
              np.array([c0 + p["cabin_length"], top + p["cabin_height"], 0.85 * hw], np.float32)), _WINDOW),
    ]
    for x in (-wx, wx):
        for z0, z1 in ((-hw - 0.02, -hw + 0.3), (hw - 0.3, hw + 0.02)):
            hits.append((_wheel(o, d, x, r, r, z0, z1), _TYRE))
    ts = np.stack([t for (t, _), _ in hits])  # [P, M]
    k = np.argmin(ts, axis=0)
    rows = np.arange(len(k))
    hit = np.isfinite(ts[k, rows])
    n = np.stack([n for (_, n), _ in hits])[k, rows]  # [M, 3]
    albedo = np.stack([c for _, c in hits]).astype(np.float32)[k]  # [M, 3]
    shade = _AMBIENT + _DIFFUSE * np.maximum(n @ _LIGHT.astype(np.float32), 0)
    rgb = np.empty(dirs.shape, np.float32)
    rgb[...] = _BACKGROUND.astype(np.float32)
    rgb[sel] = np.where(hit[:, None], albedo * shade[:, None], _BACKGROUND.astype(np.float32))
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8).reshape(96, resolution, resolution, 3)


def cache_path(root: Path, resolution: int) -> Path:
    """Where the rendered set lives: keyed by GEN_VERSION and resolution."""
    return root / "synth-cache" / f"cars3d-synth-gen{GEN_VERSION}-r{resolution}.npy"


def load_or_render(root: Path, resolution: int) -> np.ndarray:
    """Every image [17,568, R, R, 3] uint8 in ravel order, memory-mapped from the disk cache or rendered and stored
    (atomically; an unwritable folder only warns and keeps the array in memory)."""
    path = cache_path(root, resolution)
    shape = (int(np.prod(FACTOR_SIZES)), resolution, resolution, 3)
    try:
        cached = np.load(path, mmap_mode="r")
        if cached.shape == shape and cached.dtype == np.uint8:
            return cached
    except (OSError, ValueError, EOFError):
        pass
    rays = camera_rays(resolution)
    out = np.empty((4, 24, FACTOR_SIZES[2], resolution, resolution, 3), np.uint8)
    for obj in tqdm(range(FACTOR_SIZES[2]), desc="cars3d-synth: rendering once", unit="car"):
        out[:, :, obj] = render_object(obj, rays, resolution).reshape(24, 4, resolution, resolution, 3).swapaxes(0, 1)
    out = out.reshape(shape)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, out)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        warnings.warn(f"cars3d-synth: could not write the image cache {path}: {exc}", stacklevel=2)
    return out


@register_dataset(
    "cars3d-synth",
    source="synthetic",
    family="cars3d",
    kind="factors",
    files=(),
    description="procedural Cars3D look-alike (17,568 ray-cast cars: elevation 4, azimuth 24, object 183), offline",
)
class Cars3DSynth(GroundTruthData):
    """The procedural Cars3D look-alike (module doc); images are a pure function of the index.

    Args:
        cfg: dataset options; ``resolution`` (64 as the real set), ``repeat`` (DisDiff's 10x training pool).
        data_dir: unused (rendered views stay in memory).
    """

    def __init__(self, cfg: DataConfig, data_dir: Path | None = None) -> None:
        if cfg.resolution < 4:
            raise ConfigError(f"cars3d-synth: resolution must be at least 4, got {cfg.resolution}")
        if cfg.size not in (None, int(np.prod(FACTOR_SIZES))):
            raise ConfigError(f"cars3d-synth is the full 17,568-image grid; data.size={cfg.size} is unsupported")
        self.cfg = cfg
        self._root = data_root(data_dir)
        self._images: np.ndarray | None = None  # rendered (or mapped from the cache) on the first images() call
        self.spec = DataSpec(name="cars3d-synth", channels=3, resolution=cfg.resolution, source="synthetic",
                             factor_names=FACTOR_NAMES, factor_sizes=FACTOR_SIZES, family="cars3d",
                             version=f"gen{GEN_VERSION}")

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """Elevation and azimuth in degrees, object ids."""
        return ELEVATIONS, AZIMUTHS, np.arange(FACTOR_SIZES[2])

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, R, R, 3] for flat ``indices`` [B]."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"cars3d-synth: flat index out of range [0, {len(self)})")
        if self._images is None:
            self._images = load_or_render(self._root, self.cfg.resolution)
        unique, inverse = np.unique(indices, return_inverse=True)
        return np.asarray(self._images[unique])[inverse.reshape(-1)]

    def render(self, indices: np.ndarray) -> np.ndarray:
        """Like ``images`` but rendered directly (no cache): slow, for checks."""
        f = self.index_to_factors(np.asarray(indices, dtype=np.int64).reshape(-1))
        rays = camera_rays(self.cfg.resolution)
        return np.stack([render_object(int(o), rays, self.cfg.resolution)[a * 4 + e] for e, a, o in f])

    def training_pool(self) -> np.ndarray | None:
        """DisDiff's training pool: every image ``repeat`` times (None, every image once, when repeat is 1); the
        FID reference set and the factor metrics still see each image once."""
        return None if self.cfg.repeat == 1 else np.tile(np.arange(len(self)), self.cfg.repeat)

    def __getstate__(self) -> dict[str, object]:  # spawned workers map the disk cache again
        return {**self.__dict__, "_images": None}

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images(np.array([index]))[0]
