"""A vectorised cartoon face renderer (numpy, all frames at once).

Every shape is a soft (anti-aliased) signed-distance region evaluated on the
[T, H, W] pixel grid in head-local coordinates, so head translation, scale and
tilt move everything together. Frame coordinates run over [-1, 1] on both
axes, y pointing down.
"""

import dataclasses

import numpy as np

from avjax.data.synth import speakers

_MOUTH_Y = 0.58      # mouth centre, in units of head_h below the head centre
_EYE_Y = -0.12       # eye line, in units of head_h
BROW_RAISE_RANGE = (-1.0, 1.0)   # the brows' lowest and highest positions
BROW_TILT_MAX = 1.0              # the brows' largest |tilt|
EYE_OPEN_MAX = 1.6               # the eyes' widest opening


@dataclasses.dataclass(frozen=True)
class FaceControls:
  """Per-frame face state ([T] float arrays)."""
  cx: np.ndarray
  cy: np.ndarray
  scale: np.ndarray
  tilt: np.ndarray        # radians
  jaw: np.ndarray         # 0 closed .. 1 wide open
  lip_width: np.ndarray   # 0 narrow .. 1 spread
  rounding: np.ndarray    # 0 .. 1 protruded / rounded
  smile_l: np.ndarray     # mouth-corner lift, left / right (-1 .. 1)
  smile_r: np.ndarray
  brow_raise: np.ndarray  # -1 lowered .. 1 raised (BROW_RAISE_RANGE)
  brow_tilt: np.ndarray   # -1 inner ends down (anger) .. 1 inner up (sadness)
  eye_open: np.ndarray    # 0 closed .. EYE_OPEN_MAX wide
  gaze_x: np.ndarray
  gaze_y: np.ndarray


def _soft(d, px):
  """Coverage of a region with signed distance `d` (negative inside)."""
  return np.clip(0.5 - d / px, 0.0, 1.0)


def _ellipse(u, v, a, b):
  """Approximate signed distance to an axis-aligned ellipse at the origin."""
  q = np.sqrt((u / a) ** 2 + (v / b) ** 2) + 1e-6
  grad = np.sqrt((u / a ** 2) ** 2 + (v / b ** 2) ** 2) / q + 1e-6
  return (q - 1.0) / grad


def _over(img, alpha, colour, shade=None):
  """Paints `colour` [3] (times `shade`, like alpha) over `img` in place.

  Works on the bounding box of the painted pixels over all frames only.
  """
  hit = alpha > 0
  rows, cols = np.flatnonzero(hit.any((0, 2))), np.flatnonzero(hit.any((0, 1)))
  if not len(rows):
    return img
  box = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
  colour = np.asarray(colour, np.float32)
  if shade is not None:
    colour = shade[box][..., None] * colour
  img[box] += alpha[box][..., None] * (colour - img[box])
  return img


def _background(sess: speakers.Session, size: int) -> np.ndarray:
  """The static session background [1, H, W, 3]."""
  y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
  y, x = y[None], x[None]
  t = (y[..., None] + 1.0) / 2.0
  img = (1 - t) * np.array(sess.bg_top) + t * np.array(sess.bg_bottom)
  px, py, hw, hh = sess.panel
  d = np.maximum(np.abs(x - px) - hw, np.abs(y - py) - hh)
  img = _over(img, _soft(d, 2.0 / size), sess.bg_panel)
  return _over(img, 0.25 * _soft(np.abs(d) - 0.02, 2.0 / size), (0.1, 0.1, 0.1))


def mouth_box(ctl: FaceControls, face: speakers.Face, size: int) -> np.ndarray:
  """(y0, x0, y1, x1) int32 [T, 4] pixel box around the mouth."""
  my = _MOUTH_Y * face.head_h * ctl.scale
  cx = ctl.cx - np.sin(ctl.tilt) * my
  cy = ctl.cy + np.cos(ctl.tilt) * my
  half_w = (1.45 * face.mouth_w + 0.03) * ctl.scale
  half_h = 0.13 * ctl.scale
  to_px = lambda z: (z + 1.0) * size / 2.0
  box = np.stack([to_px(cy - half_h), to_px(cx - half_w),
                  to_px(cy + half_h), to_px(cx + half_w)], -1)
  return np.clip(np.round(box), 0, size).astype(np.int32)


def _pixel(ctl: FaceControls, u, v, size: int):
  """Row and column [T] (pixel centres at integers) of the head-local (u, v)."""
  c, s = np.cos(ctl.tilt), np.sin(ctl.tilt)
  to_px = lambda z: (z + 1.0) * (size - 1) / 2.0
  return (to_px(ctl.cy + ctl.scale * (s * u + c * v)),
          to_px(ctl.cx + ctl.scale * (c * u - s * v)))


def eyes_box(ctl: FaceControls, face: speakers.Face, size: int) -> np.ndarray:
  """(y0, x0, y1, x1) int32 [T, 4] pixel box around both eyes and brows.

  It follows the head (position, scale, tilt) but not the expression: it holds
  the brows anywhere in `BROW_RAISE_RANGE` at any tilt up to `BROW_TILT_MAX`,
  and the eyes (with their shadows and lids) open up to `EYE_OPEN_MAX`, plus a
  pixel for anti-aliasing. Ends are exclusive.
  """
  hh, ea = face.head_h, 0.075 * face.eye_size
  ey = _EYE_Y * hh
  brow_b = 0.022 * face.brow_thick
  ends = 0.45 * BROW_TILT_MAX * 1.3 * ea   # a tilted brow's end, up or down
  top = ey - (0.10 + 0.09 * BROW_RAISE_RANGE[1]) * hh - ends - 0.01 * 1.3 ** 2 - brow_b
  bottom = max(ey + 0.62 * ea * EYE_OPEN_MAX + 0.012,
               ey - (0.10 + 0.09 * BROW_RAISE_RANGE[0]) * hh + ends + brow_b)
  half_w = face.eye_sep + 1.3 * ea
  corners = [_pixel(ctl, u, v, size) for u in (-half_w, half_w) for v in (top, bottom)]
  ys, xs = np.stack([c[0] for c in corners]), np.stack([c[1] for c in corners])
  box = np.stack([np.floor(ys.min(0) - 1), np.floor(xs.min(0) - 1),
                  np.ceil(ys.max(0) + 1) + 1, np.ceil(xs.max(0) + 1) + 1], -1)
  return np.clip(box, 0, size).astype(np.int32)


def render(face: speakers.Face, sess: speakers.Session, ctl: FaceControls,
           size: int) -> np.ndarray:
  """Video uint8 [T, H, W, 3]."""
  f32 = lambda a: np.asarray(a, np.float32)[:, None, None]
  lin = np.linspace(-1.0, 1.0, size, dtype=np.float32)
  x, y = lin[None, None, :], lin[None, :, None]
  s, th = f32(ctl.scale), f32(ctl.tilt)
  dx, dy = x - f32(ctl.cx), y - f32(ctl.cy)
  u = (np.cos(th) * dx + np.sin(th) * dy) / s
  v = (-np.sin(th) * dx + np.cos(th) * dy) / s
  px = 2.0 / size / s
  hw, hh = face.head_w, face.head_h

  t = len(ctl.jaw)
  img = np.repeat(_background(sess, size).astype(np.float32), t, 0)
  skin, hair = np.array(face.skin), np.array(face.hair)
  # Body, long hair behind the head (not below the chin), neck.
  img = _over(img, _soft(_ellipse(u, v - 1.5 * hh, 1.9 * hw, 0.62 * hh), px),
              face.shirt)
  if face.hair_len > 0.35:
    back = _ellipse(u, v - 0.35 * face.hair_len * hh, 1.2 * hw,
                    (1.0 + 0.45 * face.hair_len) * hh)
    gap = np.maximum(np.abs(u) - 0.55 * hw, 0.4 * hh - v)
    img = _over(img, _soft(np.maximum(back, -gap), px), hair * 0.85)
  img = _over(img, _soft(_ellipse(u, v - 0.85 * hh, 0.42 * hw, 0.5 * hh), px),
              skin * 0.8)
  # The face itself only needs the pixels the head can reach.
  reach = 1.3 * max(hw, hh) * ctl.scale
  to_px = lambda z: (z + 1.0) * size / 2.0
  rows = slice(max(int(to_px(np.min(ctl.cy - reach))), 0),
               int(np.ceil(to_px(np.max(ctl.cy + reach)))) + 1)
  cols = slice(max(int(to_px(np.min(ctl.cx - reach))), 0),
               int(np.ceil(to_px(np.max(ctl.cx + reach)))) + 1)
  _paint_head(img[:, rows, cols], u[:, rows, cols], v[:, rows, cols], px,
              face, sess, ctl)
  img *= sess.light_gain * np.array(sess.light_tint, np.float32)
  return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _paint_head(img, u, v, px, face, sess, ctl):
  """Paints ears, head, hair, eyes, brows, nose and mouth in place."""
  f32 = lambda a: np.asarray(a, np.float32)[:, None, None]
  hw, hh = face.head_w, face.head_h
  jaw = f32(ctl.jaw)
  skin, hair = np.array(face.skin), np.array(face.hair)
  # Ears, head with shading (the jaw drops the chin).
  for side in (-1.0, 1.0):
    img = _over(img, _soft(_ellipse(u - side * 0.98 * hw, v + 0.02, 0.14 * hw,
                                    0.22 * hh), px), skin * 0.9)
  chin = hh * (1.0 + 0.06 * jaw * (v > 0))
  head = _ellipse(u, v, hw * (1.0 + (face.jaw_w - 1.0) * np.clip(v / hh, 0, 1)),
                  chin)
  lx, ly = sess.light_dir
  shade = 1.0 + 0.35 * (lx * u / hw + ly * v / hh) - 0.2 * (u / hw) ** 2
  img = _over(img, _soft(head, px), skin, shade)
  # Hair on top: the head cap above a curved hairline.
  cap = _ellipse(u, v + 0.05 * hh, 1.06 * hw, 1.02 * hh)
  line = v - (-face.hairline - 0.22 * (u / hw) ** 2) * hh * 2.0
  img = _over(img, _soft(np.maximum(cap, line), px), hair)
  # Eyes and brows.
  eye_open = f32(ctl.eye_open)
  ey = _EYE_Y * hh
  es, ea = face.eye_sep, 0.075 * face.eye_size
  for side in (-1.0, 1.0):
    eu, ev = u - side * es, v - ey
    img = _over(img, 0.35 * _soft(_ellipse(eu, ev + 0.02, 1.3 * ea, 0.9 * ea), px),
                skin * 0.7)
    eb = np.maximum(0.62 * ea * eye_open, 0.04 * ea)
    # Cut at the eye's ends: a closed eye's flat ellipse leaks along its axis.
    eye = np.maximum(_ellipse(eu, ev, ea, eb), np.abs(eu) - ea)
    img = _over(img, _soft(eye, px), (0.95, 0.95, 0.93))
    iu, iv = eu - 0.35 * ea * f32(ctl.gaze_x), ev - 0.2 * ea * f32(ctl.gaze_y)
    iris = np.sqrt(iu ** 2 + iv ** 2)
    img = _over(img, _soft(np.maximum(iris - 0.55 * ea, eye), px), face.iris)
    img = _over(img, _soft(np.maximum(iris - 0.25 * ea, eye), px), (0.03, 0.03, 0.03))
    lid = np.maximum(np.abs(eye) - 0.012, np.abs(eu) - ea)
    img = _over(img, 0.9 * _soft(lid, px), (0.15, 0.1, 0.08))
    slope = 0.45 * f32(ctl.brow_tilt) * side
    bv = ev + (0.10 + 0.09 * f32(ctl.brow_raise)) * hh + slope * eu
    brow = _ellipse(eu, bv + 0.05 * (eu / ea) ** 2 * 0.2, 1.3 * ea,
                    0.022 * face.brow_thick)
    img = _over(img, _soft(brow, px), hair * 0.8)
  # Beard / stubble on the lower face.
  if face.beard > 0.2:
    low = np.maximum(head, 0.3 * hh - v)
    _over(img, face.beard * 0.7 * _soft(low, 3 * px), hair * 0.9)
  # Nose.
  nu, nv = u, v - 0.2 * hh
  img = _over(img, 0.35 * _soft(_ellipse(nu + 0.01, nv, 0.03, face.nose_len), px),
              skin * 0.7)
  for side in (-1.0, 1.0):
    img = _over(img, 0.7 * _soft(_ellipse(nu - side * 0.028, nv - 0.85 * face.nose_len,
                                          0.016, 0.009), px), skin * 0.45)
  # Mouth: lips, dark interior, upper teeth; corners follow the smile.
  mw = face.mouth_w * (0.75 + 0.4 * f32(ctl.lip_width) - 0.3 * f32(ctl.rounding))
  mh = 0.008 + 0.075 * jaw
  mu = u / mw
  corner = np.where(u < 0, f32(ctl.smile_l), f32(ctl.smile_r))
  mv = v - _MOUTH_Y * hh * (1.0 + 0.05 * jaw) + 0.055 * corner * mu ** 2
  lips = _ellipse(u, mv, mw + 0.012, mh + 0.018 + 0.01 * f32(ctl.rounding))
  img = _over(img, _soft(lips, px), face.lips)
  inner = _ellipse(u, mv, 0.92 * mw, mh)
  img = _over(img, _soft(inner, px), (0.22, 0.04, 0.06))
  teeth = np.maximum(inner, mv + mh - 0.025)
  _over(img, _soft(teeth, px) * np.clip(jaw * 4.0, 0, 1), (0.92, 0.9, 0.85))
