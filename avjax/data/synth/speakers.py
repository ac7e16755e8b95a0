"""Latent speaker identities and recording sessions of the talking heads.

A speaker is a standard-normal latent vector. Its first coordinate gives a
shared, bimodal sex/size-like factor that moves voice (F0, vocal-tract
length) and face (head size, jaw, hair length, beard, brows) together;
every other trait has its own coordinate, so voice and face are correlated
only partially and noisily.
"""

import dataclasses
import zlib

import numpy as np

LATENT_DIM = 26


def stable_hash(name: str) -> int:
  """A process-independent 32-bit hash of a string (Python's is salted)."""
  return zlib.crc32(name.encode('utf-8'))


def rng_for(seed: int, *keys) -> np.random.Generator:
  """A generator seeded from `seed` and a path of ints / strings."""
  ints = [stable_hash(k) if isinstance(k, str) else int(k) for k in keys]
  return np.random.default_rng(np.random.SeedSequence([int(seed), *ints]))


@dataclasses.dataclass(frozen=True)
class Voice:
  f0_hz: float            # mean speaking F0
  formant_scale: float    # 1 / relative vocal-tract length
  breathiness: float      # 0 modal .. 1 breathy
  rate: float             # speaking-rate multiplier
  jitter: float           # period-to-period F0 perturbation, relative
  pitch_range: float      # accent size in semitones
  formant_shift: tuple[float, float, float, float]   # idiosyncratic F1-F4
  tilt: float             # spectral brightness multiplier


@dataclasses.dataclass(frozen=True)
class Face:
  head_w: float           # head half-width, frame units at scale 1
  head_h: float           # head half-height
  skin: tuple[float, float, float]
  hair: tuple[float, float, float]
  hair_len: float         # 0 short .. 1 shoulder length
  beard: float            # 0 none .. 1 full stubble / beard
  jaw_w: float            # lower-face width relative to the cheeks
  hairline: float         # forehead height
  eye_sep: float          # half distance between eye centres
  eye_size: float
  iris: tuple[float, float, float]
  brow_thick: float
  mouth_w: float          # mouth half-width at rest
  lips: tuple[float, float, float]
  nose_len: float
  shirt: tuple[float, float, float]


def latent(seed: int, speaker: int) -> np.ndarray:
  """The identity vector of a global speaker id."""
  return rng_for(seed, 'speaker', speaker).standard_normal(LATENT_DIM)


def shared_factor(z: np.ndarray) -> float:
  """The bimodal factor that voice and face share (about -1 or +1)."""
  return float(np.tanh(3.0 * z[0]) + 0.3 * z[0])


def voice(z: np.ndarray) -> Voice:
  """Voice traits from an identity vector."""
  s = shared_factor(z)
  return Voice(
      f0_hz=float(150.0 * np.exp(0.30 * (0.85 * s + 0.5 * z[1]))),
      formant_scale=float(np.exp(0.075 * (0.8 * s + 0.6 * z[2]))),
      breathiness=float(1.0 / (1.0 + np.exp(-(0.3 * s + z[3] - 1.0)))),
      rate=float(np.exp(0.10 * z[4])),
      jitter=float(0.008 * np.exp(0.4 * z[5])),
      pitch_range=float(2.5 * np.exp(0.25 * z[6])),
      formant_shift=tuple(float(x) for x in np.exp(0.05 * z[19:23])),
      tilt=float(np.exp(0.25 * z[23])),
  )


def _mix(a, b, t):
  t = 1.0 / (1.0 + np.exp(-t))
  return tuple(float(x) for x in (1 - t) * np.asarray(a) + t * np.asarray(b))


def face(z: np.ndarray) -> Face:
  """Face traits from an identity vector (shares only z[0] with the voice)."""
  s = shared_factor(z)
  return Face(
      head_w=float(0.34 * np.exp(0.06 * (-0.7 * s + 0.7 * z[7]))),
      head_h=float(0.45 * np.exp(0.05 * (-0.6 * s + 0.8 * z[8]))),
      skin=_mix((0.96, 0.80, 0.68), (0.45, 0.30, 0.22), 1.3 * z[9]),
      hair=_mix((0.85, 0.70, 0.35), (0.12, 0.08, 0.06), 1.5 * z[10] + 1.0),
      hair_len=float(1.0 / (1.0 + np.exp(-(2.0 * s + 1.0 * z[11])))),
      beard=float(1.0 / (1.0 + np.exp(-(-3.0 * s + 1.5 * z[24] - 2.5)))),
      jaw_w=float(np.exp(-0.06 * s + 0.03 * z[25])),
      hairline=float(0.20 + 0.04 * np.tanh(z[12])),
      eye_sep=float(0.125 + 0.010 * np.tanh(0.4 * s + z[13])),
      eye_size=float(1.0 + 0.10 * np.tanh(z[14])),
      iris=_mix((0.35, 0.55, 0.75), (0.30, 0.18, 0.08), 2.0 * z[15] + 1.0),
      brow_thick=float(1.0 + 0.25 * np.tanh(-0.7 * s + 0.5 * z[12])),
      mouth_w=float(0.095 * np.exp(0.08 * (-0.6 * s + 0.8 * z[13]))),
      lips=_mix((0.80, 0.40, 0.40), (0.50, 0.22, 0.22), 1.3 * z[9]),
      nose_len=float(0.10 + 0.015 * np.tanh(z[14] - 0.5 * s)),
      shirt=tuple(float(x) for x in 0.5 + 0.3 * np.tanh(z[16:19])),
  )


@dataclasses.dataclass(frozen=True)
class Session:
  """One recording session (a track): background, lighting, pose, room."""
  bg_top: tuple[float, float, float]
  bg_bottom: tuple[float, float, float]
  bg_panel: tuple[float, float, float]
  panel: tuple[float, float, float, float]   # centre x, centre y, half w, half h
  light_gain: float
  light_tint: tuple[float, float, float]
  light_dir: tuple[float, float]             # shading gradient over the head
  pose: tuple[float, float, float, float]    # dx, dy, tilt (rad), scale
  mic_gain_db: float
  noise_slope: float                         # 0 white .. 2 brown room tone


def session(seed: int, track: int) -> Session:
  """Session conditions of a global track id."""
  r = rng_for(seed, 'session', track)
  base = r.uniform(0.15, 0.9, 3)
  return Session(
      bg_top=tuple(float(x) for x in base),
      bg_bottom=tuple(float(x) for x in base * r.uniform(0.5, 0.9)),
      bg_panel=tuple(float(x) for x in r.uniform(0.1, 0.95, 3)),
      panel=(float(r.uniform(-0.8, 0.8)), float(r.uniform(-0.7, 0.0)),
             float(r.uniform(0.15, 0.35)), float(r.uniform(0.15, 0.4))),
      light_gain=float(r.uniform(0.75, 1.15)),
      light_tint=tuple(float(x) for x in 1.0 + r.uniform(-0.08, 0.08, 3)),
      light_dir=(float(r.uniform(-0.5, 0.5)), float(r.uniform(-0.4, 0.1))),
      pose=(float(r.uniform(-0.08, 0.08)), float(r.uniform(-0.03, 0.06)),
            float(r.uniform(-0.1, 0.1)), float(r.uniform(0.92, 1.08))),
      mic_gain_db=float(r.uniform(-3.0, 3.0)),
      noise_slope=float(r.uniform(0.0, 2.0)),
  )
