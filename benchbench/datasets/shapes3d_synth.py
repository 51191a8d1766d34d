"""``shapes3d-synth``: a procedural look-alike of DeepMind's 3D Shapes (datasets.md §5, §5a).

Not the real data (Burgess & Kim 2018, https://github.com/deepmind/3d-shapes): results on it are
recorded as ``source: synthetic`` with the generator version. Same factors, sizes, ravel order and
label values as ``shapes3d`` (§1), so the same index/label code paths run on both.

Scene (§5a): floor y=0, back wall z=2.6 facing the camera, one axis-aligned object on the floor at
the origin; a pinhole camera (vertical FOV 56 deg) orbits the vertical axis by the orientation
angle. Analytic ray intersections, Lambert shading with one directional light, floor/wall shadows
cast by the object, 2x2 supersampling, albedos HSV(hue, 1, 1).

Speed (§5a): an image is linear in the three albedos, and geometry depends only on (scale, shape,
orientation), 480 combinations. ``geometry_maps`` renders, per combination and surface class,
coverage x intensity [R*R, 3]; they are cached on disk (float16) and a batch is composed as one
batched matrix product of the maps [B, R*R, 3 classes] with the colours [B, 3 classes, 3 RGB].
"""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import numpy as np

from benchbench import integrity
from benchbench import progress as prog
from benchbench.datasets.base import DataConfig, DataSpec, GroundTruthData, data_root
from benchbench.datasets.shapes3d import FACTOR_NAMES, FACTOR_SIZES, FACTOR_VALUES, factors_to_labels
from benchbench.errors import ConfigError
from benchbench.registry import register_dataset

GEN_VERSION = 1
NUM_GEOMETRIES = 8 * 4 * 15  # (scale, shape, orientation): the last three factors of the ravel
_NUM_HUES = FACTOR_SIZES[0]


def hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """HSV(hue, S=1, V=1) -> RGB [..., 3] (float32); hue in [0, 1), 0 = red (§5a)."""
    h6 = (np.asarray(hue, dtype=np.float64) % 1.0) * 6.0
    # Each channel is a clipped triangle wave: R peaks at h=0, G at 1/3, B at 2/3.
    rgb = [np.clip(np.abs((h6 - c) % 6.0 - 3.0) - 1.0, 0.0, 1.0) for c in (0.0, 2.0, 4.0)]
    return np.stack(rgb, axis=-1).astype(np.float32)


_PALETTE = hue_to_rgb(FACTOR_VALUES[0])  # [10, 3]: one RGB albedo per hue index

# Section: scene constants (§5a), world units, y up.
_FOV_DEG = 56.0
_CAM_RADIUS, _CAM_HEIGHT = 3.4, 1.05
_TARGET = np.array([0.0, 0.55, 0.0])
_WALL_Z = 2.6
_LIGHT = np.array([-0.35, 0.85, -0.4]) / np.linalg.norm([-0.35, 0.85, -0.4])  # direction toward the light
_AMBIENT, _DIFFUSE, _SHADOW = 0.45, 0.55, 0.35
_EPS = 1e-6
_MISS = np.inf
FLOOR, WALL, OBJECT = 0, 1, 2  # surface classes, the rows of a colour matrix


@functools.lru_cache(maxsize=FACTOR_SIZES[5])
def camera_rays(orientation_deg: float, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Eye [3] and unit ray directions [(2R)^2, 3], row-major over a 2x2-supersampled grid, top row first.

    The camera sits at (3.4 sin a, 1.05, -3.4 cos a) for azimuth a = orientation and looks at (0, 0.55, 0).
    Memoised per orientation (the arrays are read-only).
    """
    a = np.deg2rad(orientation_deg)
    eye = np.array([_CAM_RADIUS * np.sin(a), _CAM_HEIGHT, -_CAM_RADIUS * np.cos(a)])
    forward = (_TARGET - eye) / np.linalg.norm(_TARGET - eye)
    right = np.cross([0.0, 1.0, 0.0], forward)
    right /= np.linalg.norm(right)
    up = np.cross(forward, right)
    sub = 2 * resolution
    c = ((np.arange(sub) + 0.5) / sub * 2.0 - 1.0) * np.tan(np.deg2rad(_FOV_DEG) / 2)  # sub-pixel centres
    x, y = np.meshgrid(c, -c)  # image rows run downward
    d = forward + x.reshape(-1, 1) * right + y.reshape(-1, 1) * up
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    eye.setflags(write=False)
    d.setflags(write=False)
    return eye, d


def _hit_box(o: np.ndarray, d: np.ndarray, half: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Slab test for the box |x|, |z| <= half, 0 <= y <= height: distances [N] (inf: miss), normals [N, 3]."""
    d = np.where(d == 0.0, 1e-12, d)
    lo, hi = np.array([-half, 0.0, -half]), np.array([half, height, half])
    t1, t2 = (lo - o) / d, (hi - o) / d
    t_in, t_out = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(t_in, axis=1)
    near, far = t_in.max(axis=1), t_out.min(axis=1)
    t = np.where((near <= far) & (near > _EPS), near, _MISS)
    n = np.zeros_like(d)
    rows = np.arange(len(d))
    n[rows, axis] = -np.sign(d[rows, axis])
    return t, n


def _hit_sphere(o: np.ndarray, d: np.ndarray, cy: float, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest positive root of |o + t d - (0, cy, 0)|^2 = r^2 (unit d): distances [N], normals [N, 3]."""
    oc = o - np.array([0.0, cy, 0.0])
    b = np.einsum("ij,ij->i", oc, d) if oc.ndim == 2 else d @ oc
    disc = b * b - (np.sum(oc * oc, axis=-1) - r * r)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    t = np.where((disc >= 0.0) & (t > _EPS), t, _MISS)
    n = (o + np.where(np.isfinite(t), t, 0.0)[:, None] * d - np.array([0.0, cy, 0.0])) / r
    return t, n


def _hit_tube(o: np.ndarray, d: np.ndarray, r: float, y0: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    """Side of the vertical cylinder x^2 + z^2 = r^2, y0 <= y <= y1 (entry point only)."""
    ox, oy, oz = (o[..., k] for k in range(3))
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = ox * d[:, 0] + oz * d[:, 2]
    disc = b * b - a * (ox * ox + oz * oz - r * r)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    y = oy + t * d[:, 1]
    t = np.where((disc >= 0.0) & (a > 0.0) & (t > _EPS) & (y >= y0) & (y <= y1), t, _MISS)
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    n = np.stack([p[:, 0] / r, np.zeros_like(t), p[:, 2] / r], axis=1)
    return t, n


def _hit_disc(o: np.ndarray, d: np.ndarray, r: float, y: float, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal cap disc of radius r at height y, facing ``sign`` (+1 up, -1 down)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (y - o[..., 1]) / d[:, 1]
    t = np.where(np.isfinite(t) & (t > _EPS), t, _MISS)
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    t = np.where(p[:, 0] ** 2 + p[:, 2] ** 2 <= r * r, t, _MISS)
    n = np.zeros_like(d)
    n[:, 1] = sign
    return t, n


def _nearest(hits: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The nearest of several (distances [N], normals [N, 3]) hits, per ray."""
    ts = np.stack([t for t, _ in hits])
    k = np.argmin(ts, axis=0)
    rows = np.arange(ts.shape[1])
    return ts[k, rows], np.stack([n for _, n in hits])[k, rows]


def hit_object(o: np.ndarray, d: np.ndarray, scale: float, shape: int) -> tuple[np.ndarray, np.ndarray]:
    """Intersect rays (origins [3] or [N, 3], unit directions [N, 3]) with the object (§5a sizes x scale).

    Shapes: 0 cube (edge 1), 1 cylinder (radius 0.5, height 1), 2 sphere (radius 0.55),
    3 capsule (radius 0.38, total height 1.3), all resting on the floor at the origin.
    """
    s = scale
    if shape == 0:
        return _hit_box(o, d, 0.5 * s, 1.0 * s)
    if shape == 1:
        r, h = 0.5 * s, 1.0 * s
        return _nearest(
            [_hit_tube(o, d, r, 0.0, h), _hit_disc(o, d, r, h, 1.0), _hit_disc(o, d, r, 0.0, -1.0)]
        )
    if shape == 2:
        return _hit_sphere(o, d, 0.55 * s, 0.55 * s)
    if shape == 3:
        r, h = 0.38 * s, 1.3 * s
        return _nearest([_hit_tube(o, d, r, r, h - r), _hit_sphere(o, d, r, r), _hit_sphere(o, d, h - r, r)])
    raise ValueError(f"unknown shape index {shape}")


def class_maps(scale: float, shape: int, orientation_deg: float, resolution: int) -> np.ndarray:
    """Coverage x intensity [3 classes, R, R] (float32) of floor, wall and object for one geometry.

    Lambert: intensity = 0.45 + 0.55 max(0, n.l), the diffuse term x0.35 where a floor or wall point's
    ray toward the light hits the object (exact test); the mean over 2x2 sub-pixels gives coverage.
    """
    eye, d = camera_rays(orientation_deg, resolution)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < 0.0, -eye[1] / d[:, 1], _MISS)
        t_wall = np.where(d[:, 2] > 0.0, (_WALL_Z - eye[2]) / d[:, 2], _MISS)
    t_obj, n_obj = hit_object(eye, d, scale, shape)
    ts = np.stack([t_floor, t_wall, t_obj])
    cls = np.argmin(ts, axis=0)  # FLOOR, WALL, OBJECT: nearest hit wins
    ndotl = np.where(cls == FLOOR, _LIGHT[1], np.where(cls == WALL, -_LIGHT[2], n_obj @ _LIGHT))
    diffuse = np.maximum(ndotl, 0.0)
    scene = cls != OBJECT
    p = eye + ts[cls, np.arange(len(cls))][scene, None] * d[scene]
    t_shadow, _ = hit_object(p, np.broadcast_to(_LIGHT, p.shape), scale, shape)
    diffuse[scene] *= np.where(np.isfinite(t_shadow), _SHADOW, 1.0)
    intensity = _AMBIENT + _DIFFUSE * diffuse
    maps = np.stack([np.where(cls == c, intensity, 0.0) for c in (FLOOR, WALL, OBJECT)])
    return maps.reshape(3, resolution, 2, resolution, 2).mean(axis=(2, 4)).astype(np.float32)


def geometry_maps(geometries: np.ndarray, resolution: int, progress: bool = False) -> np.ndarray:
    """Render coverage x intensity maps [G, R*R, 3 classes] (float32) for geometry ids [G].

    A geometry id is ``(scale * 4 + shape) * 15 + orientation``, i.e. ``flat_index % 480``.
    """
    geometries = np.asarray(geometries, dtype=np.int64)
    out = np.empty((len(geometries), resolution * resolution, 3), dtype=np.float32)
    by_camera = np.argsort(geometries % FACTOR_SIZES[5], kind="stable")  # each camera's rays built once
    with prog.bar(len(by_camera), "shapes3d-synth geometry", progress, prog.write if progress else None,
                  unit="map") as bar:
        for i in by_camera:
            scale, shape, orient = np.unravel_index(int(geometries[i]), FACTOR_SIZES[3:])
            maps = class_maps(
                float(FACTOR_VALUES[3][scale]), int(shape), float(FACTOR_VALUES[5][orient]), resolution
            )
            out[i] = maps.reshape(3, -1).T
            bar.update(1)
    camera_rays.cache_clear()  # the rays of a large resolution are big; keep nothing around
    return out


def compose(maps: np.ndarray, geometry: np.ndarray, hues: np.ndarray) -> np.ndarray:
    """Compose uint8 images [B, R, R, 3] from geometry maps and hue indices (§5a speed trick).

    Args:
        maps: [480, R*R, 3] float32 coverage x intensity per class (floor, wall, object).
        geometry: [B] geometry ids (rows of ``maps``).
        hues: [B, 3] hue indices of floor, wall and object.
    """
    colours = _PALETTE[hues] * np.float32(255.0)  # [B, 3 classes, 3 RGB]
    x = np.matmul(maps[geometry], colours)  # [B, R*R, 3]: one batched product
    x += np.float32(0.5)  # round half up; x <= 255 because coverage x intensity <= 1 per pixel
    np.clip(x, 0.0, 255.0, out=x)
    side = int(round(np.sqrt(maps.shape[1])))
    return x.astype(np.uint8).reshape(len(geometry), side, side, 3)


def cache_path(root: Path, resolution: int) -> Path:
    """Where the geometry maps of ``resolution`` live: keyed by GEN_VERSION and resolution."""
    return root / "synth-cache" / f"shapes3d-synth-gen{GEN_VERSION}-r{resolution}.npy"


def load_or_build_maps(root: Path, resolution: int) -> np.ndarray:
    """All 480 geometry maps [480, R*R, 3] (float32), read from the disk cache or built and stored.

    The file holds float16 (11.8 MB at 64x64, §5d) and is written atomically (temp file + os.replace),
    so concurrent builders never leave a half-written cache. Its SHA-256 is recorded in ``<file>.sha256``
    (:mod:`benchbench.integrity`); a cache that fails it is rebuilt after a warning. An unwritable folder only warns.
    """
    path = cache_path(root, resolution)
    expected = (NUM_GEOMETRIES, resolution * resolution, 3)
    try:
        verdict = integrity.check(path) if path.is_file() else "absent"
        if verdict == "corrupt":
            warnings.warn(f"shapes3d-synth: the map cache {path} fails its SHA-256 check; rebuilding it",
                          stacklevel=2)
        else:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == expected and cached.dtype == np.float16:
                if verdict == "unrecorded":  # written before checksums existed: adopt it
                    integrity.record(path, integrity.sha256_file(path), keep_current=False)
                return cached.astype(np.float32)
    except (OSError, ValueError, EOFError):
        pass  # missing or damaged: rebuild below
    maps = geometry_maps(np.arange(NUM_GEOMETRIES), resolution, progress=True)
    try:
        buf = io.BytesIO()
        np.save(buf, maps.astype(np.float16))
        integrity.write_checked(path, buf.getvalue())  # digest first, then the file, both atomic
    except OSError as exc:
        warnings.warn(f"shapes3d-synth: could not write the map cache {path}: {exc}", stacklevel=2)
    return maps.astype(np.float16).astype(np.float32)  # identical numbers whether cached or not


@register_dataset(
    "shapes3d-synth",
    source="synthetic",
    family="shapes3d",
    kind="factors",
    files=(),
    description="procedural 3D Shapes look-alike (480,000 virtual renders, same factors and labels), offline",
)
class Shapes3DSynth(GroundTruthData):
    """The procedural Shapes3D look-alike (datasets.md §5a); images are a pure function of the index.

    Args:
        cfg: dataset options; ``resolution`` sets the image side (64 matches the real set).
            ``size`` must be None or 480,000: the set is always the full factor grid.
        data_dir: data folder; the geometry map cache goes to ``data_root(data_dir)/synth-cache/``.
    """

    def __init__(self, cfg: DataConfig, data_dir: Path | None = None) -> None:
        if cfg.resolution < 2:
            raise ConfigError(f"shapes3d-synth: resolution must be at least 2, got {cfg.resolution}")
        if cfg.size not in (None, int(np.prod(FACTOR_SIZES))):
            raise ConfigError(
                f"shapes3d-synth is the full 480,000-image grid; data.size={cfg.size} is unsupported"
            )
        self.cfg = cfg
        self._root = data_root(data_dir)
        self._maps: np.ndarray | None = None  # built lazily on the first images() call
        self.spec = DataSpec(
            name="shapes3d-synth",
            channels=3,
            resolution=cfg.resolution,
            source="synthetic",
            factor_names=FACTOR_NAMES,
            factor_sizes=FACTOR_SIZES,
            family="shapes3d",
            version=f"gen{GEN_VERSION}",
        )

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """One array of label values per factor, identical to the real file's (§1 table)."""
        return FACTOR_VALUES

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """The real file's label values [B, 6] (float64) for flat ``indices`` [B]."""
        return factors_to_labels(self.index_to_factors(indices))

    def _split(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices [B] -> geometry ids [B] and hue indices [B, 3] (ravel order, §1)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"shapes3d-synth: flat index out of range [0, {len(self)})")
        hue_flat, geometry = np.divmod(indices, NUM_GEOMETRIES)
        hues = np.stack(np.unravel_index(hue_flat, (_NUM_HUES,) * 3), axis=1)
        return geometry, hues

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, R, R, 3] for flat ``indices`` [B] (any order, repeats allowed)."""
        if self._maps is None:
            self._maps = load_or_build_maps(self._root, self.cfg.resolution)
        geometry, hues = self._split(indices)
        return compose(self._maps, geometry, hues)

    def render(self, indices: np.ndarray) -> np.ndarray:
        """Like ``images`` but rendered directly (float32 maps, no cache): slow, for checks and fixtures."""
        geometry, hues = self._split(indices)
        unique, inverse = np.unique(geometry, return_inverse=True)
        return compose(geometry_maps(unique, self.cfg.resolution), inverse.reshape(-1), hues)

    def __getstate__(self) -> dict[str, object]:  # spawned workers reload the maps from the disk cache
        return {**self.__dict__, "_maps": None}

    def __getitem__(self, index: int) -> np.ndarray:
        """One uint8 image [R, R, 3]."""
        return self.images(np.array([index]))[0]
