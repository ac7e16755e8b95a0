"""avsynth scenes: moving objects on a textured set, one of which makes the sound.

A scene holds exactly one sounding object, whose type is the action class, 1
to `max_silent` silent movers of any type (the same kinds of motion, no
sound), so motion alone does not locate the sound, and some static clutter.
Every sound is synthesised from the motion that causes it, on the audio
clock: motion is computed per audio sample and video frame k shows the state
at sample k * samples_per_frame, so impacts, strokes and rings land on the
exact samples where the picture shows contact.

  ball          bounces; a thud and click at each floor contact, loud as the fall
  drum          stick strokes; a membrane hit when the stick reaches the head
  saw           blade slides over a log; rasping noise loud as the blade's speed
  fan           spinning blades; a whirr whose pitch and level follow spin rate
  pulsing_blob  grows and shrinks; a hum whose level follows its size
  bell          swings on a rope; rings at both extremes of the swing
  talker        a drawn face; mouth opening follows a babble voice's envelope
  bubbling_pot  bubbles grow and pop on the surface; a bloop at each pop

`render_clip` gives the stored fields; `sample_scene` and `composite` expose
the scene itself (objects, their layers and per-frame `drive`, the motion
quantity that makes each one's sound) for tests and analysis.
"""

import dataclasses
import zlib

import numpy as np

from avjax.data import ops

ACTIONS = ('ball', 'drum', 'saw', 'fan', 'pulsing_blob', 'bell', 'talker', 'bubbling_pot')


@dataclasses.dataclass(frozen=True)
class ScenesConfig:
  """Sizes of the scenes world. Clips per split are balanced over ACTIONS."""
  sample_rate: int = 16000
  fps: int = 25
  frame_size: int = 64
  duration_s: float = 4.0
  train_clips: int = 800
  validation_clips: int = 96
  test_clips: int = 96
  max_silent: int = 3         # Silent movers per scene: 1..max_silent.
  max_clutter: int = 3        # Static clutter per scene: 0..max_clutter.
  snr_db_range: tuple[float, float] = (5.0, 30.0)  # Source vs background noise.
  lighting_depth: float = 0.1  # Relative amplitude of slow lighting changes.

  @property
  def samples_per_frame(self):
    return self.sample_rate // self.fps

  @property
  def num_frames(self):
    return int(round(self.duration_s * self.fps))


PRESETS = {
    'scenes': ScenesConfig(),
    'scenes_tiny': ScenesConfig(frame_size=32, duration_s=2.0, train_clips=24,
                                validation_clips=8, test_clips=8),
}


@dataclasses.dataclass(frozen=True)
class SceneObject:
  """One object: flat-coloured layers drawn back to front, and its sound.

  layers: ((alpha [T or 1, H, W] float32 coverage, rgb [3] in [0, 1]), ...).
  drive: [T] the motion quantity that makes its sound (event strengths in the
    frame's audio window for impacts, strokes, rings and pops; speed, spin
    rate, size or mouth opening for the continuous kinds).
  sound: [S] float the sound its motion makes; heard only if `sounding`.
  """
  kind: str
  sounding: bool
  layers: tuple
  drive: np.ndarray
  sound: np.ndarray


@dataclasses.dataclass(frozen=True)
class Scene:
  """A sampled scene. `objects` are back to front; `audio` is the final mix."""
  background: np.ndarray  # [H, W, 3] float32, unlit.
  light: np.ndarray       # [T, H, W] float32 multiplicative lighting.
  objects: tuple
  action: int
  snr_db: float
  audio: np.ndarray       # [S] float32 in [-1, 1).


@dataclasses.dataclass(frozen=True)
class _Stage:
  """Clock and pixel grid shared by the object generators."""
  size: int
  num_frames: int
  sample_rate: int
  samples_per_frame: int

  @property
  def t(self):
    return np.arange(self.num_frames * self.samples_per_frame) / self.sample_rate

  @property
  def grid(self):
    yy, xx = np.mgrid[:self.size, :self.size].astype(np.float32)
    return yy[None], xx[None]

  def at_frames(self, x):
    """Per-sample motion -> the state shown in each video frame."""
    return np.asarray(x)[::self.samples_per_frame]

  def frame_mean(self, x):
    """Per-sample signal -> its mean over each frame's audio window."""
    return np.asarray(x).reshape(self.num_frames, self.samples_per_frame).mean(axis=1)

  def events_per_frame(self, times, strengths):
    """Sums event strengths into the frame whose audio window holds them."""
    drive = np.zeros(self.num_frames)
    index = np.floor(np.asarray(times) * self.sample_rate / self.samples_per_frame).astype(int)
    keep = (index >= 0) & (index < self.num_frames)
    np.add.at(drive, index[keep], np.asarray(strengths)[keep])
    return drive


def split_sizes(config):
  """Clips per split: {'train', 'validation', 'test'}."""
  return {'train': config.train_clips, 'validation': config.validation_clips,
          'test': config.test_clips}


# ---------------------------------------------------------------- drawing


def _col(x):
  return np.asarray(x, np.float32).reshape(-1, 1, 1)


def _disc(grid, cy, cx, r):
  yy, xx = grid
  return np.clip(_col(r) - np.hypot(yy - _col(cy), xx - _col(cx)) + 0.5, 0, 1)


def _rotated(grid, cy, cx, angle):
  """Pixel coordinates (u along `angle`, v across it) around a centre."""
  yy, xx = grid
  dy, dx = yy - _col(cy), xx - _col(cx)
  c, s = _col(np.cos(angle)), _col(np.sin(angle))
  return dx * c + dy * s, dy * c - dx * s


def _box(grid, cy, cx, half_h, half_w, angle=0.0):
  u, v = _rotated(grid, cy, cx, angle)
  return np.clip(np.minimum(_col(half_w) - np.abs(u), _col(half_h) - np.abs(v)) + 0.5, 0, 1)


def _ellipse(grid, cy, cx, ry, rx, angle=0.0):
  u, v = _rotated(grid, cy, cx, angle)
  rx, ry = _col(rx), _col(ry)
  d = np.hypot(u / rx, v / ry)
  return np.clip((1 - d) * np.minimum(rx, ry) + 0.5, 0, 1)


def _segment(grid, y0, x0, y1, x1, width):
  """A capsule from (y0, x0) to (y1, x1)."""
  yy, xx = grid
  y0, x0, y1, x1 = map(_col, (y0, x0, y1, x1))
  dy, dx = y1 - y0, x1 - x0
  h = np.clip(((yy - y0) * dy + (xx - x0) * dx) / np.maximum(dy * dy + dx * dx, 1e-6), 0, 1)
  return np.clip(width / 2 - np.hypot(yy - y0 - h * dy, xx - x0 - h * dx) + 0.5, 0, 1)


def _colour(rng, sat=(0.45, 0.9), val=(0.45, 0.95), hue=None):
  """A random colour from hue, saturation and value ranges, rgb float32."""
  h = rng.uniform(0, 1) if hue is None else hue
  s, v = rng.uniform(*sat), rng.uniform(*val)
  rgb = np.clip(np.abs((h * 6 + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
  return (v * (1 - s + s * rgb)).astype(np.float32)


def _lighter(rgb, amount):
  return (rgb + (1 - rgb) * amount).astype(np.float32)


# ------------------------------------------------------------------ sound


def _smooth(rng, t, max_hz, num=3):
  """A smooth random signal in [0, 1], a clipped sum of slow sines."""
  freqs = rng.uniform(0.1, max_hz, num)
  phases = rng.uniform(0, 2 * np.pi, num)
  coarse = np.linspace(t[0], t[-1], len(t) // 32 + 2)  # Slow: sample coarsely, interpolate.
  wave = np.sin(2 * np.pi * freqs * coarse[:, None] + phases).mean(axis=1) * np.sqrt(2)
  return np.interp(t, coarse, np.clip(0.5 + 0.5 * wave, 0, 1))


def _shape_spectrum(x, sample_rate, gain):
  """Filters `x` by a zero-phase magnitude response `gain(freqs_hz)`."""
  spectrum = np.fft.rfft(x)
  return np.fft.irfft(spectrum * gain(np.fft.rfftfreq(len(x), 1 / sample_rate)), n=len(x))


def _band_noise(rng, n, sample_rate, lo, hi):
  return _shape_spectrum(rng.normal(size=n), sample_rate,
                         lambda f: ((f >= lo) & (f <= hi)).astype(float))


def _place(times, strengths, kernel, num_samples, sample_rate):
  """Adds `kernel` scaled by each strength starting at each event's sample."""
  out = np.zeros(num_samples + len(kernel))
  for time, strength in zip(times, strengths):
    i = int(round(time * sample_rate))
    if 0 <= i < num_samples:
      out[i:i + len(kernel)] += strength * kernel
  return out[:num_samples]


def _decay(sample_rate, seconds, tau):
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  return t, np.exp(-t / tau)


def _reflect(x, lo, hi):
  """Folds `x` into [lo, hi] as a point bouncing between two walls."""
  span = hi - lo
  y = np.mod(x - lo, 2 * span)
  return lo + np.where(y > span, 2 * span - y, y)


def _events_between(start, durations, duration_s):
  """Event times start, start + d0, start + d0 + d1, ... up to duration_s."""
  times = start + np.concatenate([[0.0], np.cumsum(durations)])
  return times[times <= duration_s + durations.max()]


# ---------------------------------------------------------------- objects
# Each maker takes (rng, stage, scale, cx, base) and returns an object's
# (layers, drive, sound); `scale` is its size in pixels, `base` the y of its
# ground contact (or of its centre, for floating objects).


def _ball(rng, st, s, cx, base):
  t, sr = st.t, st.sample_rate
  r = s * rng.uniform(0.6, 0.9)
  durations = rng.uniform(0.3, 0.8, int(st.t[-1] / 0.3) + 3)
  contacts = _events_between(-rng.uniform(0, durations[0]), durations, t[-1])
  durations = durations[:len(contacts)]
  heights = np.minimum(base, st.size * rng.uniform(0.5, 0.9)) * (durations / 0.8) ** 2
  i = np.clip(np.searchsorted(contacts, t, side='right') - 1, 0, len(contacts) - 1)
  tau = (t - contacts[i]) / durations[i]
  y = base - r - heights[i] * 4 * tau * (1 - tau)
  x = _reflect(cx + rng.uniform(-0.3, 0.3) * st.size * t, 0, st.size)
  fy, fx = st.at_frames(y), st.at_frames(x)
  colour = _colour(rng)
  layers = ((_disc(st.grid, fy, fx, r), colour),
            (_disc(st.grid, fy - 0.35 * r, fx - 0.35 * r, 0.3 * r), _lighter(colour, 0.5)))
  strengths = durations[:-1] / 0.8  # Impact speed grows with the fall's duration.
  size = r / (0.07 * st.size)  # Bigger balls thud lower and longer.
  k_t, env = _decay(sr, 0.2, 0.035 * size)
  thud = np.sin(2 * np.pi * rng.uniform(90, 220) / size * k_t) * env
  kernel = thud + 0.5 * rng.normal(size=len(k_t)) * np.exp(-k_t / 0.002)
  sound = _place(contacts[1:], strengths, kernel, len(t), sr)
  return layers, st.events_per_frame(contacts[1:], strengths), sound


def _drum(rng, st, s, cx, base):
  t, sr, grid = st.t, st.sample_rate, st.grid
  side = rng.choice([-1.0, 1.0])
  head_y = base - 1.3 * s
  intervals = rng.uniform(0.22, 0.7, int(t[-1] / 0.22) + 3)
  strikes = _events_between(-rng.uniform(0, intervals[0]), intervals, t[-1])
  intervals = intervals[:len(strikes)]
  lifts = rng.uniform(0.5, 1.1, len(strikes))
  i = np.clip(np.searchsorted(strikes, t, side='right') - 1, 0, len(strikes) - 1)
  phi = np.deg2rad(150) + lifts[i] * np.sin(np.pi * (t - strikes[i]) / intervals[i])
  length = 1.8 * s
  tip_y, tip_x = head_y, cx + side * 0.3 * s
  pivot_y = tip_y - length * np.sin(np.deg2rad(150))
  pivot_x = tip_x - side * length * np.cos(np.deg2rad(150))
  phi_f = st.at_frames(phi)
  end_y, end_x = pivot_y + length * np.sin(phi_f), pivot_x + side * length * np.cos(phi_f)
  body, wood = _colour(rng), _colour(rng, sat=(0.4, 0.7), val=(0.35, 0.6), hue=0.08)
  layers = ((_box(grid, base - 0.65 * s, cx, 0.65 * s, s), body),
            (_ellipse(grid, head_y, cx, 0.3 * s, s), _lighter(body, 0.7)),
            (_segment(grid, pivot_y, pivot_x, end_y, end_x, max(1.0, 0.22 * s)), wood))
  strengths = lifts[:-1] / intervals[:-1] / 3  # Stick speed at the head.
  k_t, env = _decay(sr, 0.3, rng.uniform(0.08, 0.15))
  f0 = rng.uniform(90, 180)
  tone = np.sin(2 * np.pi * f0 * (k_t + 0.01 * (1 - np.exp(-k_t / 0.02)))) * env
  kernel = tone + 0.6 * _band_noise(rng, len(k_t), sr, 200, 4000) * np.exp(-k_t / 0.03)
  sound = _place(strikes[1:], strengths, kernel, len(t), sr)
  return layers, st.events_per_frame(strikes[1:], strengths), sound


def _saw(rng, st, s, cx, base):
  t, sr, grid = st.t, st.sample_rate, st.grid
  side = rng.choice([-1.0, 1.0])
  rate = rng.uniform(0.7, 1.8) * (0.4 + 1.2 * _smooth(rng, t, 0.4))
  phase = 2 * np.pi * np.cumsum(rate) / sr + rng.uniform(0, 2 * np.pi)
  reach = rng.uniform(0.5, 0.9) * s
  x = cx + reach * np.sin(phase)
  speed = reach * 2 * np.pi * rate * np.cos(phase)  # Pixels per second, signed.
  fx = st.at_frames(x)
  log, wood = _colour(rng, sat=(0.4, 0.7), val=(0.3, 0.55), hue=0.07), _colour(rng)
  blade_y = base - 1.4 * s
  layers = ((_box(grid, base - 0.6 * s, cx, 0.6 * s, 1.6 * s), log),
            (_ellipse(grid, base - 0.6 * s, cx - 1.6 * s, 0.6 * s, 0.3 * s), _lighter(log, 0.4)),
            (_box(grid, blade_y, fx, 0.28 * s, 1.2 * s, 0.12 * side), _colour(rng, sat=(0, 0.1), val=(0.6, 0.85))),
            (_box(grid, blade_y - 0.15 * side * s, fx + side * 1.35 * s, 0.4 * s, 0.3 * s), wood))
  loudness = np.abs(speed) * np.where(speed * side > 0, 1.0, 0.6) / (2 * np.pi * s)
  rasp = _band_noise(rng, len(t), sr, rng.uniform(1000, 2000), rng.uniform(4000, 7000))
  return layers, st.frame_mean(np.abs(speed)) / s, rasp * loudness


def _fan(rng, st, s, cx, base):
  t, sr, grid = st.t, st.sample_rate, st.grid
  spin = 0.5 + 3.0 * _smooth(rng, t, 0.4)  # Revolutions per second.
  angle = 2 * np.pi * np.cumsum(spin) / sr * rng.choice([-1.0, 1.0]) + rng.uniform(0, 2 * np.pi)
  num_blades = int(rng.integers(3, 5))
  cy, length = base, 1.3 * s
  fa = st.at_frames(angle)
  blades = [fa + 2 * np.pi * j / num_blades for j in range(num_blades)]

  def blade(a):
    return _ellipse(grid, cy + 0.55 * length * np.sin(a), cx + 0.55 * length * np.cos(a),
                    0.2 * length, 0.48 * length, a)

  colour = _colour(rng)
  layers = ((_box(grid, cy + 1.2 * s, cx, 1.2 * s, 0.15 * s), _colour(rng, sat=(0, 0.2), val=(0.2, 0.5))),
            (np.max([blade(a) for a in blades[1:]], axis=0), colour),
            (blade(blades[0]), _lighter(colour, 0.6)),
            (_disc(grid, cy, cx, 0.3 * s), _colour(rng, sat=(0, 0.2), val=(0.2, 0.4))))
  pitch = rng.uniform(60, 100) * spin
  motor = sum(np.sin(h * 2 * np.pi * np.cumsum(pitch) / sr) / h for h in range(1, 6))
  air = _band_noise(rng, len(t), sr, 100, 2500) * (1 + 0.6 * np.cos(num_blades * angle))
  return layers, st.frame_mean(spin), (0.5 * motor + air) * spin / 3.5


def _pulsing_blob(rng, st, s, cx, base):
  t, sr, grid = st.t, st.sample_rate, st.grid
  size = _smooth(rng, t, rng.uniform(0.8, 2.5), num=4) ** 2
  r = st.at_frames(s * (0.55 + 0.75 * size))
  wobble = 0.12 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * st.at_frames(t))
  ang = rng.uniform(0, np.pi)
  colour = _colour(rng)
  layers = ((_ellipse(grid, base, cx, r * (1 - wobble), r * (1 + wobble), ang), colour),
            (_disc(grid, base, cx, 0.45 * r), _lighter(colour, 0.45)))
  f0 = rng.uniform(80, 220) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
  phase = 2 * np.pi * np.cumsum(f0) / sr
  hum = sum(np.sin(h * phase) * 0.7 ** h for h in range(1, 7))
  return layers, st.frame_mean(size), hum * size


def _bell(rng, st, s, cx, base):
  t, sr, grid = st.t, st.sample_rate, st.grid
  rate = rng.uniform(0.6, 1.3) * (0.85 + 0.3 * _smooth(rng, t, 0.3))
  phase = 2 * np.pi * np.cumsum(rate) / sr + rng.uniform(0, 2 * np.pi)
  amplitude = rng.uniform(0.3, 0.6) * (0.5 + 0.5 * _smooth(rng, t, 0.3))
  swing = amplitude * np.sin(phase)
  extremes = np.nonzero(np.diff(np.floor((phase - np.pi / 2) / np.pi)))[0] + 1
  times, strengths = t[extremes], amplitude[extremes] / 0.6
  length = rng.uniform(1.0, 1.8) * s
  pivot_y = base - length
  fs = st.at_frames(swing)
  by, bx = pivot_y + length * np.cos(fs), cx + length * np.sin(fs)
  metal = _colour(rng, sat=(0.5, 0.8), val=(0.6, 0.9), hue=rng.uniform(0.08, 0.15))
  rim_y, rim_x = pivot_y + (length + 0.6 * s) * np.cos(fs), cx + (length + 0.6 * s) * np.sin(fs)
  layers = ((_box(grid, pivot_y - 0.1 * s, cx, 0.15 * s, 0.6 * s), _colour(rng, sat=(0, 0.2), val=(0.2, 0.4))),
            (_segment(grid, pivot_y, cx, by, bx, max(1.0, 0.12 * s)), _colour(rng, val=(0.3, 0.6))),
            (_ellipse(grid, by, bx, 0.75 * s, 0.55 * s, -fs), metal),
            (_box(grid, rim_y, rim_x, 0.18 * s, 0.8 * s, -fs), _lighter(metal, 0.3)))
  k_t = np.arange(sr) / sr
  f0 = rng.uniform(450, 1000)
  ratios = np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.5, 2.67])
  amps = np.array([0.5, 1.0, 0.6, 0.4, 0.35, 0.2, 0.15])
  kernel = (amps * np.sin(2 * np.pi * f0 * ratios * k_t[:, None])
            * np.exp(-k_t[:, None] * 3 * np.sqrt(ratios))).sum(axis=1)
  sound = _place(times, strengths, kernel, len(t), sr)
  return layers, st.events_per_frame(times, strengths), sound


_VOWELS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (660, 1720), (570, 840), (440, 1020))


def _babble(rng, t, sr):
  """A babble voice and its amplitude envelope: syllables of vowels on a pulse train."""
  f0 = rng.uniform(100, 230) * (0.85 + 0.3 * _smooth(rng, t, 1.5))
  glottal = 2 * np.mod(np.cumsum(f0) / sr, 1.0) - 1 + 0.05 * rng.normal(size=len(t))
  voice, envelope = np.zeros(len(t)), np.zeros(len(t))
  start = -rng.uniform(0, 0.3)
  while start < t[-1]:
    dur = rng.uniform(0.12, 0.3)
    i0, i1 = max(int(start * sr), 0), min(int((start + dur) * sr), len(t))
    if i1 > i0:
      env = rng.uniform(0.5, 1.0) * np.clip(np.sin(np.pi * (t[i0:i1] - start) / dur), 0, 1) ** 0.7
      f1, f2 = _VOWELS[rng.integers(len(_VOWELS))]
      formants = lambda f, f1=f1, f2=f2: (1 / (1 + ((f - f1) / 80) ** 2)
                                          + 0.5 / (1 + ((f - f2) / 120) ** 2))
      voice[i0:i1] = _shape_spectrum(glottal[i0:i1], sr, formants) * env
      envelope[i0:i1] = env
    start += dur + rng.uniform(0.03, 0.12) + (rng.uniform(0.2, 0.6) if rng.uniform() < 0.2 else 0)
  return voice, envelope


def _talker(rng, st, s, cx, base):
  t, sr, grid = st.t, st.sample_rate, st.grid
  voice, envelope = _babble(rng, t, sr)
  mouth = np.convolve(st.frame_mean(envelope), [0.25, 0.5, 0.25], mode='same')
  cy = base + 0.06 * s * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * st.at_frames(t))
  cx = cx + 0.06 * s * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * st.at_frames(t))
  skin = _colour(rng, sat=(0.25, 0.6), val=(0.45, 0.95), hue=rng.uniform(0.03, 0.1))
  dark = _colour(rng, sat=(0.2, 0.6), val=(0.1, 0.3))
  eyes = np.maximum(_disc(grid, cy - 0.3 * s, cx - 0.38 * s, 0.14 * s),
                    _disc(grid, cy - 0.3 * s, cx + 0.38 * s, 0.14 * s))
  layers = ((_ellipse(grid, cy - 0.75 * s, cx, 0.65 * s, 1.05 * s), _colour(rng, val=(0.15, 0.6))),
            (_ellipse(grid, cy, cx, 1.25 * s, s), skin),
            (eyes, dark),
            (_ellipse(grid, cy + 0.55 * s, cx, 0.06 * s + 0.32 * s * mouth, 0.38 * s),
             np.array([0.45, 0.08, 0.1], np.float32)))
  return layers, st.frame_mean(envelope), voice


def _bubbling_pot(rng, st, s, cx, base):
  t, sr, grid = st.t, st.sample_rate, st.grid
  top = base - 1.4 * s
  count = rng.poisson(rng.uniform(3, 7) * (t[-1] + 0.5))
  pops = np.sort(rng.uniform(0, t[-1] + 0.5, count))
  radii = s * rng.uniform(0.15, 0.35, count)
  lives = rng.uniform(0.15, 0.4, count)
  xs = cx + s * rng.uniform(-0.85, 0.85, count)
  liquid = _colour(rng)
  bubbles = np.zeros((st.num_frames, st.size, st.size), np.float32)
  frame_t = st.at_frames(t)
  for pop, radius, life, x in zip(pops, radii, lives, xs):
    alive = np.nonzero((frame_t >= pop - life) & (frame_t < pop))[0]
    if len(alive):
      grow = radius * (frame_t[alive] - pop + life) / life
      disc = _disc(grid, top - 0.3 * grow, x, grow)
      bubbles[alive] = np.maximum(bubbles[alive], disc)
  layers = ((_box(grid, base - 0.7 * s, cx, 0.7 * s, 1.2 * s), _colour(rng, sat=(0, 0.3), val=(0.2, 0.5))),
            (_ellipse(grid, top, cx, 0.25 * s, 1.1 * s), liquid),
            (bubbles, _lighter(liquid, 0.5)))
  strengths = radii / (0.35 * s)
  k_t, env = _decay(sr, 0.12, rng.uniform(0.015, 0.035))
  sound = np.zeros(len(t))
  for pop, strength in zip(pops, strengths):  # Smaller bubbles ring higher (Minnaert).
    f0 = rng.uniform(300, 500) / strength
    kernel = np.sin(2 * np.pi * f0 * (k_t + rng.uniform(4, 12) * k_t ** 2)) * env
    sound += _place([pop], [strength], kernel, len(t), sr)
  return layers, st.events_per_frame(pops, strengths), sound


_MAKERS = {'ball': _ball, 'drum': _drum, 'saw': _saw, 'fan': _fan,
           'pulsing_blob': _pulsing_blob, 'bell': _bell, 'talker': _talker,
           'bubbling_pot': _bubbling_pot}
_FLOATING = ('fan', 'pulsing_blob', 'bell', 'talker')  # Placed anywhere, not on the floor.


# ------------------------------------------------------------------ scene


def _background(rng, size):
  """A wall of jittered tiles or bricks over a floor of planks, and the floor's y."""
  yy, xx = np.mgrid[:size, :size]
  unit = size / 64
  horizon = int(size * rng.uniform(0.45, 0.65))
  th, tw = (max(2, int(unit * rng.uniform(a, b))) for a, b in ((5, 10), (8, 16)))
  offset = (yy // th % 2) * (tw // 2 if rng.uniform() < 0.6 else 0)
  row, col = yy // th, (xx + offset) // tw
  jitter = 1 + 0.05 * rng.normal(size=(row.max() + 1, col.max() + 1))
  mortar = np.where((yy % th == 0) | ((xx + offset) % tw == 0), 0.8, 1.0)
  wall = _colour(rng, sat=(0.05, 0.4), val=(0.5, 0.9)) * (jitter[row, col] * mortar)[..., None]
  plank = max(2, int(unit * rng.uniform(3, 6)))
  bands = 1 + 0.06 * rng.normal(size=size // plank + 1)
  floor = _colour(rng, sat=(0.1, 0.5), val=(0.3, 0.7)) * bands[yy // plank][..., None]
  image = np.where((yy >= horizon)[..., None], floor, wall)
  return image.astype(np.float32), horizon


def _lighting(rng, st, depth):
  """Slow global brightness changes times a fixed spatial gradient."""
  temporal = 1 + depth * (2 * _smooth(rng, st.at_frames(st.t), 0.5) - 1)
  yy, xx = st.grid
  a = rng.uniform(0, 2 * np.pi)
  spatial = 1 + 0.15 * ((xx - st.size / 2) * np.cos(a) + (yy - st.size / 2) * np.sin(a)) / st.size
  return (temporal[:, None, None] * spatial).astype(np.float32)


def _clutter(rng, st):
  s = st.size * rng.uniform(0.05, 0.12)
  cy, cx = rng.uniform(0, st.size), rng.uniform(0, st.size)
  if rng.uniform() < 0.5:
    alpha = _box(st.grid, cy, cx, s * rng.uniform(0.5, 1.5), s * rng.uniform(0.5, 1.5), rng.uniform(0, np.pi))
  else:
    alpha = _disc(st.grid, cy, cx, s)
  return SceneObject('clutter', False, ((alpha, _colour(rng, sat=(0.1, 0.7))),),
                     np.zeros(st.num_frames), np.zeros(0))


def _mover(rng, st, kind, sounding, horizon):
  s = st.size * rng.uniform(0.08, 0.13)
  cx = rng.uniform(0.05, 0.95) * st.size
  if kind in _FLOATING:
    base = rng.uniform(0.15, 0.85) * st.size
  else:
    base = rng.uniform(horizon + 0.05 * st.size, 1.02 * st.size)
  layers, drive, sound = _MAKERS[kind](rng, st, s, cx, base)
  layers = tuple((a.astype(np.float32), np.asarray(c, np.float32)) for a, c in layers)
  return SceneObject(kind, sounding, layers, drive.astype(np.float32), sound)


def _stable_hash(text):
  return zlib.crc32(text.encode('utf-8'))


def sample_scene(config, split, index, seed=0):
  """Samples the scene of clip `index` of `split`; deterministic in the args."""
  sizes = split_sizes(config)
  if split not in sizes:
    raise ValueError(f'unknown split {split!r}; known: {sorted(sizes)}')
  if not 0 <= index < sizes[split]:
    raise ValueError(f'index {index} out of range for {split!r} ({sizes[split]} clips)')
  rng = np.random.default_rng([seed, _stable_hash(split), index])
  st = _Stage(config.frame_size, config.num_frames, config.sample_rate, config.samples_per_frame)
  background, horizon = _background(rng, st.size)
  light = _lighting(rng, st, config.lighting_depth)
  action = index % len(ACTIONS)
  kinds = [ACTIONS[action]] + list(rng.choice(ACTIONS, rng.integers(1, config.max_silent + 1)))
  movers = [_mover(rng, st, kind, i == 0, horizon) for i, kind in enumerate(kinds)]
  clutter = [_clutter(rng, st) for _ in range(rng.integers(0, config.max_clutter + 1))]
  objects = tuple(clutter) + tuple(movers[i] for i in rng.permutation(len(movers)))
  source = movers[0].sound / max(ops.rms(movers[0].sound), 1e-9) * 0.1
  noise = _shape_spectrum(rng.normal(size=len(source)), st.sample_rate,
                          lambda f, slope=rng.uniform(0, 1): 1 / np.maximum(f, 50) ** slope)
  snr = float(rng.uniform(*config.snr_db_range))
  mixture = ops.add_noise(source, noise, snr)
  mixture *= rng.uniform(0.3, 0.9) / np.abs(mixture).max()
  return Scene(background, light, objects, action, snr, mixture.astype(np.float32))


def composite(scene):
  """Draws the scene: (video uint8 [T, H, W, 3], source_mask uint8 [T, H, W]).

  The mask is 1 where the sounding object's visible coverage exceeds 1/2
  (objects in front of it hide it).
  """
  t = len(scene.light)
  canvas = np.broadcast_to(scene.background, (t,) + scene.background.shape).copy()
  visible = np.zeros(canvas.shape[:3], np.float32)
  for obj in scene.objects:
    for alpha, rgb in obj.layers:
      covered = np.any(alpha > 0, axis=0)  # Draw only inside the layer's bounding box.
      rows, cols = np.nonzero(covered.any(axis=1))[0], np.nonzero(covered.any(axis=0))[0]
      if not len(rows):
        continue
      box = np.s_[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
      a, region = alpha[box], canvas[box]
      region += a[..., None] * (rgb - region)
      visible[box] *= 1 - a
      if obj.sounding:
        visible[box] += a
  video = np.clip(canvas * scene.light[..., None] * 255 + 0.5, 0, 255).astype(np.uint8)
  return video, (visible > 0.5).astype(np.uint8)


def render_clip(config, split, index, seed=0):
  """Renders one clip: audio int16 [S], video uint8 [T, H, W, 3], ground truth.

  Fields: action int32 (index into ACTIONS, the sounding object's type),
  source_mask uint8 [T, H, W], num_objects int32 (moving objects: the
  sounding one plus silent movers; clutter not counted), snr_db float32.
  """
  scene = sample_scene(config, split, index, seed)
  video, mask = composite(scene)
  return {
      'audio': ops.to_int16(scene.audio),
      'video': video,
      'action': np.int32(scene.action),
      'source_mask': mask,
      'num_objects': np.int32(sum(o.kind != 'clutter' for o in scene.objects)),
      'snr_db': np.float32(scene.snr_db),
  }
