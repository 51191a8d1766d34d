"""``mpi3d-synth``: a procedural look-alike of MPI3D (datasets.md §5, §5b, §5d).

Not the real data (Gondal et al., "On the Transfer of Inductive Bias from Simulation to the Real
World: a New Disentanglement Dataset", NeurIPS 2019, https://arxiv.org/abs/1906.03292): results on it
are recorded as ``source: synthetic`` with the generator version. Same 7 factors, sizes
[6, 6, 2, 3, 3, 40, 40] and C-order ravel as ``mpi3d`` (§2), 1,036,800 virtual 64x64 images.

Scene (§5b), in pixels, y down: a flat background with a darker (x0.6) platform below a horizon; a
dark grey robot arm (3 px capsule stroke plus a joint disc) hangs from a pivot above the top edge;
its tip position is set by the two arm factors; an object hangs just below the tip. Every edge is
anti-aliased from a signed distance field, ``coverage = clip(0.5 - d / 0.7, 0, 1)``.

Speed (§5b): backgrounds depend only on (background_color, camera_height), 9 images, and object
sprites only on (object_shape, object_size, camera_height), 36 (alpha, shading) pairs; colour enters
linearly, so a sprite stores coverage and coverage x facet shading and is tinted per image. Sprites are
pasted at the integer tip position; the arm is drawn per image from the exact (sub-pixel) tip, so every
arm position gives a different image. The geometry keeps the sprite window inside the frame for all
6 x 2 x 3 x 40 x 40 = 57,600 (shape, size, camera, horizontal, vertical) combinations (§5b says 28,800,
which leaves out the size factor), so pasting never clips.

There is no randomness (the optional ``realism`` noise of §5b is not implemented), so the §5 hash
streams are unused; an image is a pure function of its index.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from benchbench.datasets.base import DataConfig, DataSpec, GroundTruthData
from benchbench.datasets.mpi3d import FACTOR_NAMES, FACTOR_SIZES, NUM_IMAGES, VALUE_NAMES
from benchbench.errors import ConfigError
from benchbench.registry import register_dataset

GEN_VERSION = 1
SIDE = 64  # native resolution; other resolutions are resized from it

# Section: scene constants (§5b). Colours are linear RGB in [0, 1].
BACKGROUND_RGB = np.array([(0.42, 0.30, 0.55), (0.18, 0.55, 0.45), (0.92, 0.55, 0.45)], dtype=np.float32)
OBJECT_RGB = np.array(
    [(0.92, 0.92, 0.92), (0.20, 0.65, 0.25), (0.80, 0.15, 0.15), (0.15, 0.30, 0.80), (0.50, 0.32, 0.16),
     (0.50, 0.50, 0.10)],
    dtype=np.float32,
)  # white, green, red, blue, brown, olive (VALUE_NAMES order)
ARM_RGB = np.array([0.25, 0.25, 0.27], dtype=np.float32)
PLATFORM = 0.6  # brightness of the platform band below the horizon
HORIZON = (22.0, 32.0, 44.0)  # camera top, center, bottom
SCENE_OFFSET = (-4.0, 0.0, 4.0)  # vertical shift of arm and object per camera
ARM_RADIUS, JOINT_RADIUS = 1.5, 2.3
PIVOT_Y = -8.0  # arm pivot (32, PIVOT_Y + offset), above the top edge
TIP_Y0 = 15.0  # tip y at vertical_axis 0, phi 0, camera center
OBJECT_RADIUS = (4.5, 7.0)  # small, large
LIT, SHADE, TOP = 1.0, 0.65, 1.15  # facet shading factors
# Visible top face / underside depth per camera (fraction of the radius): top face shown from the
# top, a thin rim from the center, the underside from the bottom.
CAP = (0.45, 0.12, 0.0)
UNDER = (0.0, 0.0, 0.35)
_AA = 0.7  # px over which an edge ramps (§5b)
# Sprite render window relative to the integer tip (x right, y down), generous; cropped at build time.
_WIN_X, _WIN_Y = (-14, 14), (-7, 23)


def arm_angle(h: np.ndarray) -> np.ndarray:
    """DOF1 swing angle phi [B] in radians for horizontal_axis indices ``h`` [B]: -50 + 100 h / 39 deg."""
    return np.deg2rad(-50.0 + 100.0 * np.asarray(h, dtype=np.float64) / 39.0)


def tip_position(camera: np.ndarray, h: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact arm tip (x [B], y [B]) in pixels for camera_height, horizontal_axis, vertical_axis indices.

    x = 32 + 20 sin(phi); y = y0(camera) + 26 v / 39 - 4 (1 - cos phi) (§5b); both monotone in h, v.
    """
    phi = arm_angle(h)
    y0 = TIP_Y0 + np.asarray(SCENE_OFFSET)[np.asarray(camera)]
    return 32.0 + 20.0 * np.sin(phi), y0 + 26.0 * np.asarray(v) / 39.0 - 4.0 * (1.0 - np.cos(phi))


def _coverage(d: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in px (negative inside)."""
    return np.clip(0.5 - d / _AA, 0.0, 1.0)


# Section: 2-D signed distance fields on point grids x, y (any matching shapes).


def _sd_circle(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.hypot(x - cx, y - cy) - r


def _sd_ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Gradient-normalised ellipse distance (exact on the axes, close elsewhere; enough for anti-aliasing)."""
    px, py = (x - cx) / a, (y - cy) / b
    k0 = np.hypot(px, py)
    k1 = np.hypot(px / a, py / b)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _sd_polygon(x: np.ndarray, y: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
    """Convex polygon (vertices clockwise on screen, y down): max over edges of the outward distance."""
    d = np.full(np.broadcast(x, y).shape, -np.inf)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]):
        ex, ey = x1 - x0, y1 - y0
        n = np.hypot(ex, ey)
        d = np.maximum(d, ((x - x0) * ey - (y - y0) * ex) / n)  # outward normal (ey, -ex) for clockwise order
    return d


def _parallelogram(x0: float, x1: float, y: float, depth: float, skew: float) -> list[tuple[float, float]]:
    """A face on edge (x0..x1, y) reaching ``depth`` px up (depth > 0) or down (< 0), sheared by ``skew``."""
    top = [(x0 + skew, y - depth), (x1 + skew, y - depth), (x1, y), (x0, y)]
    return top if depth > 0 else [(x0, y), (x1, y), (x1 + skew, y - depth), (x0 + skew, y - depth)]


def object_layers(shape: int, r: float, camera: int, x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, object]]:
    """The painted primitives of one object as (signed distance, shading) pairs, back to front.

    ``x``, ``y`` are pixel-centre coordinates relative to the object centre; shading is LIT, SHADE,
    TOP (facets) or a per-pixel array (the sphere's Lambert term). Shapes follow VALUE_NAMES order:
    cone, cube, cylinder, hexagonal prism, pyramid, sphere.
    """
    cap, under = CAP[camera] * r, UNDER[camera] * r
    rim = max(cap, under, 0.12 * r)  # vertical semi-axis of elliptic edges
    layers: list[tuple[np.ndarray, object]] = []
    if shape == 0:  # cone: triangle + elliptic base
        base = 0.75 * r
        layers.append((_sd_ellipse(x, y, 0.0, base, 0.85 * r, rim), SHADE if under else LIT))
        layers.append((_sd_polygon(x, y, [(0.0, -r), (0.85 * r, base), (-0.85 * r, base)]), LIT))
        layers.append((_sd_polygon(x, y, [(0.0, -r), (0.85 * r, base), (0.3 * r, base)]), SHADE))
    elif shape == 1:  # cube: front square + top (or bottom) parallelogram
        h = 0.72 * r
        layers.append((_sd_polygon(x, y, [(-h, -h), (h, -h), (h, h), (-h, h)]), LIT))
        if cap:
            layers.append((_sd_polygon(x, y, _parallelogram(-h, h, -h, cap, 0.6 * cap)), TOP))
        if under:
            layers.append((_sd_polygon(x, y, _parallelogram(-h, h, h, -under, 0.6 * under)), SHADE))
    elif shape == 2:  # cylinder: rectangle + elliptic cap
        w, h = 0.7 * r, 0.8 * r
        layers.append((_sd_ellipse(x, y, 0.0, h, w, rim), SHADE if under else LIT))
        layers.append((_sd_polygon(x, y, [(-w, -h), (w, -h), (w, h), (-w, h)]), LIT))
        layers.append((_sd_polygon(x, y, [(0.35 * w, -h), (w, -h), (w, h), (0.35 * w, h)]), SHADE))
        layers.append((_sd_ellipse(x, y, 0.0, -h, w, rim), TOP if cap else LIT))
    elif shape == 3:  # hexagonal prism: hexagon + top (or bottom) strip
        R = 0.85 * r
        s = R * np.sqrt(3.0) / 2.0
        hexagon = [(-R / 2, -s), (R / 2, -s), (R, 0.0), (R / 2, s), (-R / 2, s), (-R, 0.0)]
        layers.append((_sd_polygon(x, y, hexagon), LIT))
        layers.append((_sd_polygon(x, y, [(R / 2, -s), (R, 0.0), (R / 2, s)]), SHADE))
        if cap:
            layers.append((_sd_polygon(x, y, _parallelogram(-R / 2, R / 2, -s, cap, 0.5 * cap)), TOP))
        if under:
            layers.append((_sd_polygon(x, y, _parallelogram(-R / 2, R / 2, s, -under, 0.5 * under)), SHADE))
    elif shape == 4:  # pyramid: triangle split into two shaded facets; the front edge moves with the camera
        base = 0.8 * r
        front = (0.15 * r, base + (CAP[camera] - UNDER[camera]) * 0.6 * r)
        layers.append((_sd_polygon(x, y, [(0.0, -r), front, (-0.9 * r, base)]), LIT))
        layers.append((_sd_polygon(x, y, [(0.0, -r), (0.9 * r, base), front]), SHADE))
        if under:
            layers.append((_sd_polygon(x, y, [(-0.9 * r, base), front, (0.9 * r, base)]), SHADE * SHADE))
    elif shape == 5:  # sphere: disc with radial Lambert shading; the camera moves the lit side
        light = np.array([-0.4, (-0.3, -0.6, -0.9)[camera], 0.75])
        light /= np.linalg.norm(light)
        nx, ny = x / r, y / r
        nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
        lambert = np.maximum(nx * light[0] + ny * light[1] + nz * light[2], 0.0)
        layers.append((_sd_circle(x, y, 0.0, 0.0, r), 0.3 + 0.85 * lambert))
    else:
        raise ValueError(f"unknown shape index {shape}")
    return layers


def render_sprite(shape: int, size: int, camera: int) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and premultiplied shading [H, W] (float32) of one object on the generous tip-relative window.

    Window pixel (i, j) is image pixel (tip_y + _WIN_Y[0] + i, tip_x + _WIN_X[0] + j) for an integer
    tip; the object centre sits r - 1 px below the tip, so the joint disc overlaps its top.
    """
    r = OBJECT_RADIUS[size]
    x = np.arange(_WIN_X[0], _WIN_X[1], dtype=np.float64)[None, :] + 0.5
    y = np.arange(_WIN_Y[0], _WIN_Y[1], dtype=np.float64)[:, None] + 0.5 - (r - 1.0)
    alpha = np.zeros((len(y), x.shape[1]))
    premult = np.zeros_like(alpha)
    for sd, shading in object_layers(shape, r, camera, x, y):
        c = _coverage(sd)
        alpha = alpha * (1.0 - c) + c
        premult = premult * (1.0 - c) + c * shading
    return alpha.astype(np.float32), premult.astype(np.float32)


@functools.lru_cache(maxsize=1)
def scene_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """The precomputed parts of every image (§5b speed trick), built once per process (~10 ms).

    Returns:
        backgrounds: [9, 64, 64, 3] float32 in 0..255, row background_color * 3 + camera_height.
        alpha: [36, H, W] float32 sprite coverage, row (shape * 2 + size) * 3 + camera_height.
        premult: [36, H, W] float32 coverage x facet shading (multiplied by 255 x object colour).
        origin: (dy, dx) of sprite pixel (0, 0) relative to the integer tip.
    """
    rows = np.arange(SIDE, dtype=np.float32)[:, None] + 0.5
    backgrounds = np.empty((3, 3, SIDE, SIDE, 3), dtype=np.float32)
    for cam, horizon in enumerate(HORIZON):
        shade = 1.0 - (1.0 - PLATFORM) * _coverage(horizon - rows)  # platform: inside below the horizon
        backgrounds[:, cam] = shade[None, :, :, None] * BACKGROUND_RGB[:, None, None, :] * 255.0
    sprites = [render_sprite(s, z, c) for s in range(6) for z in range(2) for c in range(3)]
    alpha = np.stack([a for a, _ in sprites])
    premult = np.stack([p for _, p in sprites]) * np.float32(255.0)
    ys, xs = np.nonzero(alpha.max(axis=0) > 0)  # crop to the union of all sprites
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    alpha, premult = alpha[:, crop[0], crop[1]], premult[:, crop[0], crop[1]]
    origin = (int(ys.min()) + _WIN_Y[0], int(xs.min()) + _WIN_X[0])
    for table in (backgrounds, alpha, premult):
        table.setflags(write=False)
    return backgrounds.reshape(9, SIDE, SIDE, 3), np.ascontiguousarray(alpha), np.ascontiguousarray(premult), origin


def integer_tips(camera: np.ndarray, h: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer tip (x [B], y [B]) where sprites are pasted: the exact tip rounded half up."""
    tx, ty = tip_position(camera, h, v)
    return np.floor(tx + 0.5).astype(np.int64), np.floor(ty + 0.5).astype(np.int64)


def object_bounds(factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-space boxes of the object and of its paste window, from geometry alone (no rendering).

    Args:
        factors: [B, 7] factor indices (colour and background are irrelevant).
    Returns:
        (object_box, window_box), each [B, 4] int64 (top, left, bottom, right), bottom/right exclusive:
        the pixels with nonzero object coverage, and the sprite window ``compose`` blends.
    """
    factors = np.asarray(factors)
    _, alpha, _, (oy, ox) = scene_tables()
    boxes = np.empty((len(alpha), 4), dtype=np.int64)
    for k, a in enumerate(alpha):  # tight box of each sprite, in sprite pixels
        ys, xs = np.nonzero(a > 0)
        boxes[k] = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    itx, ity = integer_tips(factors[:, 3], factors[:, 5], factors[:, 6])
    shift = np.stack([ity + oy, itx + ox, ity + oy, itx + ox], axis=1)
    sprite = (factors[:, 1] * 2 + factors[:, 2]) * 3 + factors[:, 3]
    window = np.array([0, 0, *alpha.shape[1:]], dtype=np.int64)
    return boxes[sprite] + shift, window[None, :] + shift


def compose(factors: np.ndarray) -> np.ndarray:
    """Render uint8 images [B, 64, 64, 3] for factor indices [B, 7] (vectorised over the batch).

    Layers: background (table) -> arm (SDF from the exact tip) -> object sprite (pasted at the
    integer tip, tinted by the object colour). Float32 throughout, then round(clip(x, 0, 1) * 255).
    """
    colour, shape, size, camera, bg, h, v = (np.asarray(factors)[:, k] for k in range(7))
    backgrounds, alpha, premult, (oy, ox) = scene_tables()
    b = len(colour)
    img = backgrounds[bg * 3 + camera]  # [B, 64, 64, 3], a fresh copy
    # Arm: capsule from the pivot to the exact tip, plus the joint disc at the tip.
    tx, ty = tip_position(camera, h, v)
    pivot_y = PIVOT_Y + np.asarray(SCENE_OFFSET)[camera]
    ax, ay = (tx - 32.0).astype(np.float32), (ty - pivot_y).astype(np.float32)  # pivot -> tip vector
    px = np.arange(SIDE, dtype=np.float32)[None, None, :] + np.float32(0.5 - 32.0)  # [1, 1, W] from pivot
    py = np.arange(SIDE, dtype=np.float32)[None, :, None] + (0.5 - pivot_y).astype(np.float32)[:, None, None]
    ax3, ay3 = ax[:, None, None], ay[:, None, None]
    t = np.clip((px * ax3 + py * ay3) / (ax3 * ax3 + ay3 * ay3), 0.0, 1.0)  # [B, H, W] projection
    dx, dy = px - t * ax3, py - t * ay3
    d_arm = np.sqrt(dx * dx + dy * dy) - np.float32(ARM_RADIUS)  # np.hypot is ~5x slower here
    dx, dy = px - ax3, py - ay3
    d_joint = np.sqrt(dx * dx + dy * dy) - np.float32(JOINT_RADIUS)
    cov = np.clip(np.float32(0.5) - np.minimum(d_arm, d_joint) * np.float32(1.0 / _AA), 0.0, 1.0)
    for c, value in enumerate(ARM_RGB * np.float32(255.0)):  # per channel: broadcasting over RGB is ~4x slower
        channel = img[..., c]
        channel += cov * (value - channel)
    # Object: blend the sprite window in place (never clips: see the module docstring).
    sprite = (shape * 2 + size) * 3 + camera
    itx, ity = integer_tips(camera, h, v)
    sh, sw = alpha.shape[1:]
    rr = (ity + oy)[:, None, None] + np.arange(sh)[None, :, None]
    cc = (itx + ox)[:, None, None] + np.arange(sw)[None, None, :]
    bb = np.arange(b)[:, None, None]
    win = img[bb, rr, cc]  # [B, sh, sw, 3]
    a = alpha[sprite][..., None]
    win = win * (1.0 - a) + premult[sprite][..., None] * OBJECT_RGB[colour][:, None, None, :]
    img[bb, rr, cc] = win
    img += np.float32(0.5)  # round half up after the clip below
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


@register_dataset(
    "mpi3d-synth",
    source="synthetic",
    family="mpi3d",
    kind="factors",
    files=(),
    description="procedural MPI3D look-alike (1,036,800 virtual 2-D robot-arm images, same 7 factors), offline",
)
class Mpi3DSynth(GroundTruthData):
    """The procedural MPI3D look-alike (datasets.md §5b); images are a pure function of the index.

    Args:
        cfg: dataset options; ``resolution`` other than 64 resizes the 64x64 render bilinearly (as
            the real loader does). ``size`` must be None or 1,036,800 (the full grid). ``variant``
            is ignored: there is one look-alike for every real variant.
        data_dir: unused (nothing is stored on disk); accepted for the common constructor signature.
    """

    value_names = VALUE_NAMES

    def __init__(self, cfg: DataConfig, data_dir: Path | None = None) -> None:
        del data_dir
        if cfg.resolution < 1:
            raise ConfigError(f"mpi3d-synth: resolution must be positive, got {cfg.resolution}")
        if cfg.size not in (None, NUM_IMAGES):
            raise ConfigError(f"mpi3d-synth is the full 1,036,800-image grid; data.size={cfg.size} is unsupported")
        self.cfg = cfg
        self.spec = DataSpec(
            name="mpi3d-synth",
            channels=3,
            resolution=cfg.resolution,
            source="synthetic",
            factor_names=FACTOR_NAMES,
            factor_sizes=FACTOR_SIZES,
            family="mpi3d",
            version=f"gen{GEN_VERSION}",
        )

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """One array per factor: the indices 0..n-1, as for the real files (see VALUE_NAMES)."""
        return tuple(np.arange(n) for n in FACTOR_SIZES)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images [B, R, R, 3] for flat ``indices`` [B] (any order, repeats allowed)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= NUM_IMAGES):
            raise IndexError(f"mpi3d-synth: flat index out of range [0, {NUM_IMAGES})")
        out = compose(self.index_to_factors(indices))
        if self.cfg.resolution == SIDE:
            return out
        size = (self.cfg.resolution, self.cfg.resolution)
        return np.stack([np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR)) for im in out])

    def __getitem__(self, index: int) -> np.ndarray:
        """One uint8 image [R, R, 3]."""
        return self.images(np.array([index]))[0]
