"""Cartoon-face drawing for ``celeba-synth`` (datasets.md §5c): antialiased signed distance fields.

The design lives on a 64x64 grid (y down); a ``Frame`` maps it to a canvas (R x R, or the real files'
178x218 with the face scaled 2x into the D2C box (25, 57, 153, 185), datasets.md §4). Layers, back to
front (§5c): background -> back hair (Male short, otherwise long past the chin) -> face ellipse -> beard
(lower face, mouth cut out) -> eyes (white + iris) -> brows (thicker for Male) -> nose -> mouth ->
bangs (wavy lower edge) -> glasses (two rings + bridge) -> hat (crown + brim above the bangs line).

Coverage ``clip(0.5 - d / 0.7, 0, 1)`` with d the signed distance in pixels (mpi3d-synth's rule, §5b);
colour = lerp(canvas, colour, coverage). Speed: each feature is evaluated only inside a fixed window
bounding it over every nuisance value (centre jitter, size, tilt), for the whole batch at once, and
optional features (beard, bangs, glasses, hat, open mouth) only for the images that have them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from benchbench.datasets.shapes3d_synth import hue_to_rgb

CENTRE = (32.0, 34.0)  # face centre (x, y) before jitter, design units
JITTER = 2.0  # +- px
HALF_WIDTH = (14.0, 17.0)
HALF_HEIGHT = (18.0, 21.0)
TILT_DEG = 6.0  # +- head tilt
_AA = 0.7  # antialiasing width in pixels
_FAR = np.float32(1e3)


@dataclass(frozen=True)
class Frame:
    """Canvas geometry: pixel = (left, top) + scale * design coordinate."""

    height: int
    width: int
    scale: float
    left: float
    top: float


@functools.lru_cache(maxsize=64)
def window(frame: Frame, box: tuple[float, float, float, float]) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Pixel slices (rows, columns) of ``frame`` covering the design ``box`` (x0, x1, y0, y1), clipped to the
    canvas, and the design coordinates of their pixel centres: Y [h, 1], X [1, w] (float32, read-only)."""
    x0, x1, y0, y1 = box
    j0 = max(0, int(np.floor(frame.left + frame.scale * x0)))
    j1 = max(j0, min(frame.width, int(np.ceil(frame.left + frame.scale * x1))))
    i0 = max(0, int(np.floor(frame.top + frame.scale * y0)))
    i1 = max(i0, min(frame.height, int(np.ceil(frame.top + frame.scale * y1))))
    xs = ((np.arange(j0, j1) + 0.5 - frame.left) / frame.scale).astype(np.float32)[None, :]
    ys = ((np.arange(i0, i1) + 0.5 - frame.top) / frame.scale).astype(np.float32)[:, None]
    xs.setflags(write=False)
    ys.setflags(write=False)
    return slice(i0, i1), slice(j0, j1), ys, xs


def square_frame(resolution: int) -> Frame:
    """The R x R canvas of the 64x64 design."""
    return Frame(resolution, resolution, resolution / 64.0, 0.0, 0.0)


ALIGNED_FRAME = Frame(218, 178, 2.0, 25.0, 57.0)  # design [0, 64]^2 -> the D2C box of a 178x218 image


@dataclass(frozen=True)
class Face:
    """Per-image drawing parameters; every field is an array [B] (colours in HSV: [B, 3]), float32 or bool.

    ``hair``: 0 black, 1 blond, 2 other (brown/auburn by ``hair_shade``). Tones, shades and ``iris`` are
    uniforms in [0, 1); ``tilt`` in radians; ``cx``, ``cy``, ``half_width``, ``half_height`` in design px.
    """

    bangs: np.ndarray
    hair: np.ndarray
    glasses: np.ndarray
    male: np.ndarray
    mouth_open: np.ndarray
    beard: np.ndarray
    pale: np.ndarray
    smiling: np.ndarray
    hat: np.ndarray
    bg_hsv: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    half_width: np.ndarray
    half_height: np.ndarray
    tilt: np.ndarray
    skin_hsv: np.ndarray
    pale_tone: np.ndarray
    hair_shade: np.ndarray
    hair_tone: np.ndarray
    hat_hue: np.ndarray
    iris: np.ndarray
    bangs_phase: np.ndarray
    lip_tone: np.ndarray


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV [..., 3] -> RGB [..., 3] (float32): ``V ((1 - S) + S HSV(H, 1, 1))``."""
    h, s, v = (hsv[..., k : k + 1].astype(np.float32) for k in range(3))
    return v * ((1.0 - s) + s * hue_to_rgb(h[..., 0]))


def _rgb(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


_BLACK, _BLOND = _rgb(0.10, 0.08, 0.08), _rgb(0.93, 0.79, 0.46)
_BROWN, _AUBURN = _rgb(0.36, 0.22, 0.13), _rgb(0.60, 0.27, 0.13)
_PALE = _rgb(0.98, 0.90, 0.86)
_IRIS = np.stack([_rgb(0.35, 0.22, 0.12), _rgb(0.25, 0.45, 0.65), _rgb(0.30, 0.45, 0.28), _rgb(0.15, 0.10, 0.08)])
_WHITE, _INNER, _FRAME = _rgb(0.96, 0.96, 0.96), _rgb(0.25, 0.07, 0.08), _rgb(0.07, 0.07, 0.09)
_LIP_DARK, _LIP_LIGHT = _rgb(0.70, 0.30, 0.32), _rgb(0.82, 0.45, 0.43)


def colours(face: Face) -> dict[str, np.ndarray]:
    """The RGB colour [B, 3] (float32) of every layer."""
    col = lambda t: t.astype(np.float32)[:, None]  # noqa: E731
    shade, tone = col(face.hair_shade), col(face.hair_tone)
    other = (_BROWN + shade * (_AUBURN - _BROWN)) * (0.8 + 0.4 * tone)  # brown to auburn
    hair = np.where(
        col(face.hair == 0),
        _BLACK * (0.8 + 0.5 * tone),
        np.where(col(face.hair == 1), _BLOND * (0.85 + 0.15 * tone), other),
    )
    skin = np.where(col(face.pale), _PALE * (0.97 + 0.03 * col(face.pale_tone)), hsv_to_rgb(face.skin_hsv))
    hat = hsv_to_rgb(np.stack([face.hat_hue, np.full_like(face.hat_hue, 0.6), np.full_like(face.hat_hue, 0.72)], 1))
    return {
        "bg": hsv_to_rgb(face.bg_hsv), "hair": hair, "skin": skin, "beard": 0.9 * hair, "brow": 0.7 * hair,
        "iris": _IRIS[np.minimum((face.iris * 4).astype(np.int64), 3)], "nose": 0.8 * skin,
        "lips": _LIP_DARK + col(face.lip_tone) * (_LIP_LIGHT - _LIP_DARK), "hat": hat, "brim": 0.8 * hat,
    }  # fmt: skip


# Section: signed distances (design units; negative inside).


def _ellipse(u: np.ndarray, v: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Approximate distance to the ellipse (u/a)^2 + (v/b)^2 = 1 (exact on the boundary's normal)."""
    ua, vb = u / a, v / b
    k0 = np.sqrt(ua * ua + vb * vb)
    k1 = np.sqrt((ua / a) ** 2 + (vb / b) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def _box(u: np.ndarray, v: np.ndarray, hu: np.ndarray | float, hv: np.ndarray | float) -> np.ndarray:
    """Distance to the axis-aligned box |u| <= hu, |v| <= hv."""
    qx, qy = np.abs(u) - hu, np.abs(v) - hv
    return np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2) + np.minimum(np.maximum(qx, qy), 0.0)


def _window_box(u0: float, u1: float, v0: float, v1: float) -> tuple[float, float, float, float]:
    """Design box (x0, x1, y0, y1) holding the local box [u0, u1] x [v0, v1] for every centre and tilt."""
    t = np.deg2rad(np.linspace(-TILT_DEG, TILT_DEG, 25))[:, None]
    u, v = np.array([u0, u1, u0, u1]), np.array([v0, v0, v1, v1])
    x, y = u * np.cos(t) - v * np.sin(t), u * np.sin(t) + v * np.cos(t)
    cx, cy = CENTRE
    return (cx - JITTER + x.min() - 1, cx + JITTER + x.max() + 1, cy - JITTER + y.min() - 1, cy + JITTER + y.max() + 1)


# Local bounding boxes (u0, u1, v0, v1) at the largest face (a = 17, b = 21) with margins.
_BOXES = {
    "long_hair": _window_box(-22, 22, -27, 29), "short_hair": _window_box(-20, 20, -27, -3),
    "face": _window_box(-18, 18, -22, 22), "beard": _window_box(-18, 18, 2, 22), "eyes": _window_box(-11, 11, -6, 1),
    "brows": _window_box(-13, 13, -10, -3), "nose": _window_box(-4, 4, -3, 8), "mouth": _window_box(-9, 9, 3, 16),
    "bangs": _window_box(-20, 20, -26, -6), "glasses": _window_box(-13, 13, -9, 4),
    "hat": _window_box(-23, 23, -31, -10),
}  # fmt: skip


class _Painter:
    """A float32 canvas [B, H, W, 3] and the per-image pose; paints one layer per call."""

    def __init__(self, face: Face, frame: Frame, bg: np.ndarray) -> None:
        self.frame = frame
        self.canvas = np.empty((len(face.cx), frame.height, frame.width, 3), dtype=np.float32)
        self.canvas[:] = bg[:, None, None, :]
        p = lambda t: np.asarray(t, dtype=np.float32)[:, None, None]  # noqa: E731
        self.cx, self.cy, self.cos, self.sin = p(face.cx), p(face.cy), p(np.cos(face.tilt)), p(np.sin(face.tilt))
        self.gain = np.float32(frame.scale / _AA)  # design distance -> coverage slope

    def local(self, box: str, sel: np.ndarray | slice) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        """Window slices and face-local coordinates u (right), v (down) [n, h, w] of the images ``sel``."""
        rows, cols, ys, xs = window(self.frame, _BOXES[box])
        dx, dy = xs - self.cx[sel], ys - self.cy[sel]  # [n, 1, w], [n, h, 1]
        c, s = self.cos[sel], self.sin[sel]
        return rows, cols, dx * c + dy * s, dy * c - dx * s

    def paint(self, rows: slice, cols: slice, sel: np.ndarray | slice, d: np.ndarray, colour: np.ndarray) -> None:
        """Blend ``colour`` [B, 3] into the window with coverage clip(0.5 - d_px / 0.7, 0, 1)."""
        cov = np.multiply(d, -self.gain)
        cov += 0.5
        np.clip(cov, 0.0, 1.0, out=cov)
        win = self.canvas[sel, rows, cols]  # a view for slice(None), a copy for an index array
        step = np.subtract(colour[sel][:, None, None, :], win)
        step *= cov[..., None]
        win += step
        if not isinstance(sel, slice):
            self.canvas[sel, rows, cols] = win

    def to_uint8(self) -> np.ndarray:
        """round(clip(x, 0, 1) * 255) as uint8 [B, H, W, 3] (§5 shared rules)."""
        x = np.clip(self.canvas, 0.0, 1.0, out=self.canvas)
        x *= 255.0
        x += 0.5
        return x.astype(np.uint8)


def _pick(mask: np.ndarray) -> np.ndarray | None:
    """Indices of the images with a feature, or None when none has it."""
    sel = np.flatnonzero(mask)
    return sel if sel.size else None


def draw_faces(face: Face, frame: Frame) -> np.ndarray:
    """Render uint8 faces [B, H, W, 3] on ``frame`` from per-image parameters (layer order of §5c)."""
    col = colours(face)
    p = _Painter(face, frame, col["bg"])
    everyone: slice = slice(None)
    a_all = np.asarray(face.half_width, dtype=np.float32)[:, None, None]
    b_all = np.asarray(face.half_height, dtype=np.float32)[:, None, None]

    # Back hair: Male short (a cap cut above the eyes), otherwise long past the chin.
    if (sel := _pick(face.male)) is not None:
        rows, cols, u, v = p.local("short_hair", sel)
        a, b = a_all[sel], b_all[sel]
        d = np.maximum(_ellipse(u, v + 0.15 * b, a + 2.5, 0.95 * b + 2.0), v + 0.2 * b)
        p.paint(rows, cols, sel, d, col["hair"])
    if (sel := _pick(~face.male)) is not None:
        rows, cols, u, v = p.local("long_hair", sel)
        a, b = a_all[sel], b_all[sel]
        d = np.minimum(
            _ellipse(u, v + 0.1 * b, a + 4.0, b + 3.0), _box(u, v - 0.5 * (b + 7.0), a + 4.0, 0.5 * (b + 7.0))
        )
        p.paint(rows, cols, sel, d, col["hair"])
    # Face ellipse.
    rows, cols, u, v = p.local("face", everyone)
    p.paint(rows, cols, everyone, _ellipse(u, v, a_all, b_all), col["skin"])
    # Beard: lower face below 0.15 b, the mouth region cut out.
    if (sel := _pick(face.beard)) is not None:
        rows, cols, u, v = p.local("beard", sel)
        a, b = a_all[sel], b_all[sel]
        d = np.maximum(_ellipse(u, v, a + 0.3, b + 0.3), 0.15 * b - v)
        d = np.maximum(d, -_ellipse(u, v - 0.55 * b, 8.5, 4.0))
        p.paint(rows, cols, sel, d, col["beard"])
    # Eyes (mirrored: |u| folds both onto one): white, then iris.
    rows, cols, u, v = p.local("eyes", everyone)
    uu, dv = np.abs(u) - 0.4 * a_all, v + 0.12 * b_all
    p.paint(rows, cols, everyone, _ellipse(uu, dv, 3.2, 1.9), np.broadcast_to(_WHITE, col["bg"].shape))
    p.paint(rows, cols, everyone, np.sqrt(uu * uu + dv * dv) - 1.4, col["iris"])
    # Brows: arched capsules 4.4 above the eyes, thicker for Male.
    rows, cols, u, v = p.local("brows", everyone)
    uu = np.abs(u) - 0.4 * a_all
    centre = -0.12 * b_all - 4.4 + 0.07 * np.minimum(uu * uu, 9.0)
    radius = np.where(np.asarray(face.male)[:, None, None], np.float32(1.25), np.float32(0.7))
    d = np.sqrt((uu - np.clip(uu, -3.0, 3.0)) ** 2 + (v - centre) ** 2) - radius
    p.paint(rows, cols, everyone, d, col["brow"])
    # Nose: a ridge line and a base.
    rows, cols, u, v = p.local("nose", everyone)
    top, bottom = -0.02 * b_all, 0.27 * b_all
    d = np.minimum(np.sqrt(u * u + (v - np.clip(v, top, bottom)) ** 2) - 0.6, _ellipse(u, v - bottom, 2.2, 0.9))
    p.paint(rows, cols, everyone, d, col["nose"])
    _draw_mouth(p, face, a_all, b_all, col)
    _draw_accessories(p, face, a_all, b_all, col)
    return p.to_uint8()


def _draw_mouth(p: _Painter, face: Face, a_all: np.ndarray, b_all: np.ndarray, col: dict[str, np.ndarray]) -> None:
    """Lips along v = v_m - k u^2: Smiling has k > 0, so (image y down) the corners rise; an open mouth
    widens the lips into a lens and fills it dark."""
    del a_all
    rows, cols, u, v = p.local("mouth", slice(None))
    smile = np.asarray(face.smiling, dtype=np.float32)[:, None, None]
    opened = np.asarray(face.mouth_open)[:, None, None]
    half = 6.0 + smile
    k = 0.055 * smile
    dv = np.abs(v - (0.55 * b_all - k * u * u)) / np.sqrt(1.0 + (2.0 * k * u) ** 2)
    gap = np.where(opened, 1.7 * np.maximum(1.0 - (u / half) ** 2, 0.0), np.float32(0.0))
    ends = np.abs(u) - half
    p.paint(rows, cols, slice(None), np.maximum(dv - (gap + 0.9), ends), col["lips"])
    inner = np.where(opened, np.maximum(dv - gap, ends), _FAR)
    p.paint(rows, cols, slice(None), inner, np.broadcast_to(_INNER, col["bg"].shape))


def _draw_accessories(
    p: _Painter, face: Face, a_all: np.ndarray, b_all: np.ndarray, col: dict[str, np.ndarray]
) -> None:
    """Bangs, glasses and hat, each only on the images that have them."""
    if (sel := _pick(face.bangs)) is not None:  # hair band over the forehead, wavy lower edge
        rows, cols, u, v = p.local("bangs", sel)
        a, b = a_all[sel], b_all[sel]
        phase = np.asarray(face.bangs_phase, dtype=np.float32)[sel][:, None, None]
        wave = 1.3 * u + phase
        edge = -0.5 * b + 1.1 * np.sin(wave)
        d = np.maximum(
            _ellipse(u, v + 0.1 * b, a + 1.5, b + 2.0), (v - edge) / np.sqrt(1.0 + (1.43 * np.cos(wave)) ** 2)
        )
        p.paint(rows, cols, sel, d, col["hair"])
    if (sel := _pick(face.glasses)) is not None:  # two dark rings around the eyes and a bridge
        rows, cols, u, v = p.local("glasses", sel)
        a, b = a_all[sel], b_all[sel]
        uu, dv = np.abs(u) - 0.4 * a, v + 0.12 * b
        ring = np.abs(np.sqrt(uu * uu + dv * dv) - 4.3) - 0.55
        bridge = _box(u, dv + 0.8, 0.4 * a - 4.0, 0.45)
        p.paint(rows, cols, sel, np.minimum(ring, bridge), np.broadcast_to(_FRAME, col["bg"].shape))
    if (sel := _pick(face.hat)) is not None:  # crown and brim above the bangs line
        rows, cols, u, v = p.local("hat", sel)
        a, brim = a_all[sel], -0.62 * b_all[sel]
        p.paint(rows, cols, sel, _box(u, v - (brim - 9.5), a - 4.0, 3.5) - 3.0, col["hat"])
        p.paint(rows, cols, sel, _box(u, v - (brim - 1.5), a + 5.0, 1.5), col["brim"])
