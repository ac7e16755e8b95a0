"""Latent speaker identities and recording sessions of the talking heads.

A speaker is a standard-normal latent vector. Three coordinates make a person
(`person`): sex, age and height, which drive face and voice together the way
they do in people; every other trait has its own coordinate. The effects and
their sizes come from published measurements:

- Sex. Speaking F0 typically 120 Hz in men and 210 Hz in women (Traunmueller &
  Eriksson 1995, "The frequency range of the voice fundamental in the speech
  of male and female adults", Stockholm University). Women's formants about
  17% higher, averaged over vowels and F1-F3 (Hillenbrand et al. 1995, JASA 97,
  Table V), the ratio of men's to women's vocal-tract lengths, which differ
  from puberty on (Fitch & Giedd 1999, JASA 106). Women's voices breathier
  (Klatt & Klatt 1990, JASA 87). Heads 7% broader in men (head breadth 155 vs
  145 mm, SD 6; Pheasant & Haslegrave 2006, Bodyspace, British adults 19-65),
  taken for head height too: face width-to-height ratio shows no sex
  difference (Kramer, Jones & Ward 2012, PLoS ONE 7). Mouth, nose and eye
  spacing scale with the head; men's brow ridges and jaws are more prominent
  (Kesterke et al. 2016, Biology of Sex Differences 7:23), a direction only:
  the brow and jaw sizes are kept from avsynth 1.3. Beard and hair length are
  cultural and kept from 1.3.
- Age, uniform over 20-70 years. F0 falls in women with age, and in men falls
  to about 40 then rises after about 55 (Traunmueller & Eriksson 1995, after
  Hollien & Shipp 1972; Stathopoulos et al. 2011, JSLHR 54; Eichhorn et al.
  2018, J Voice 32: the fall in women is the most consistent change, formants
  change little, so age does not move them here). Sizes from 11,971 Fisher
  speakers, whose female-male gap in median F0 shrinks from 8.9 semitones in
  their 20s to 6.1 in their 70s (M. Liberman, Language Log, "Age, sex, and
  f0", languagelog.ldc.upenn.edu/nll/?p=31786): women -1.8 st from 20 to 70,
  men -0.5 st by 40 and +1.0 st by 70.
  Older voices are breathier and more irregular (Ferrand 2002, J Voice 16:
  lower harmonics-to-noise ratio; Xue & Deliyski 2001, Educational
  Gerontology 27: higher jitter); their sizes here (+1 logit of breathiness,
  +0.4 log jitter from 20 to 70) are not measured ones. Hair greys: between 45
  and 65, 74% of people have grey hair with a mean intensity of 27%, and 6-23%
  are at least half grey at 50 (Panhard et al. 2012, Br J Dermatol 167); a
  logistic greying with a half-grey age drawn from N(75, 24) years and a width
  of 12 years reproduces the three figures (15%, 27%, 74% with more than 5%
  grey). Men's hairlines recede: Norwood class III or more in about 14% of men
  at 25, 35% at 50 and 54% at 65 (Norwood 1975, Southern Medical Journal 68),
  the share whose recession is past half here; women's frontal hairline stays
  (Ludwig 1977, Br J Dermatol 97).
- Height, within sex N(174, 7.0) cm for men and N(161, 6.2) cm for women
  (Pheasant & Haslegrave 2006). Vocal-tract length estimates explain up to 10%
  of the variance in height within a sex, F0 under 2% (Pisanski et al. 2014,
  Animal Behaviour 95, meta-analysis of 39 samples; Rendall et al. 2005, JASA
  117; Gonzalez 2004, J Phonetics 32): formants correlate -0.3 with height
  within a sex, F0 not at all. Head size correlates 0.35 with height within a
  sex (head circumference: r = 0.28 in men, 0.53 in women, Bale et al. 1991,
  Am J Med Genet 40; 0.38 in men, Nguyen et al. 2012, Int J Morphol 30).

The within-sex spreads of the traits are those of avsynth 1.3.
"""

import dataclasses
import zlib

import numpy as np
from scipy import special

LATENT_DIM = 30
AGE_RANGE = (20.0, 70.0)                           # years
HEIGHT_CM = {False: (174.0, 7.0), True: (161.0, 6.2)}   # by female: mean, SD
F0_HZ = {False: 120.0, True: 210.0}                # young adults, by female
# F0 change with age in semitones: (ages, values) to interpolate, by female.
F0_AGE_ST = {False: ((20.0, 40.0, 55.0, 70.0), (0.0, -0.5, -0.5, 1.0)),
             True: ((20.0, 70.0), (0.0, -1.8))}
FORMANT_SEX = np.log(1.17) / 2    # log formant scale above / below the mean
HEIGHT_FORMANT_R = -0.3           # within-sex correlation, log formants vs height
HEIGHT_HEAD_R = 0.35              # within-sex correlation, log head size vs height
HEAD_SEX = np.log(155.0 / 145.0) / 2
GREY_AGE, GREY_AGE_SD, GREY_WIDTH = 75.0, 24.0, 12.0
RECEDE_AGE, RECEDE_PER_YEAR = 62.0, 0.05     # Norwood III+: logistic in age


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


@dataclasses.dataclass(frozen=True)
class Person:
  """What a speaker's face and voice share."""
  female: bool
  age: float              # years
  height_cm: float


def latent(seed: int, speaker: int) -> np.ndarray:
  """The identity vector of a global speaker id."""
  return rng_for(seed, 'speaker', speaker).standard_normal(LATENT_DIM)


def person(z: np.ndarray) -> Person:
  """Sex, age and height of an identity vector."""
  female = bool(z[0] > 0)
  lo, hi = AGE_RANGE
  mean, sd = HEIGHT_CM[female]
  return Person(female=female, age=float(lo + (hi - lo) * special.ndtr(z[26])),
                height_cm=float(mean + sd * z[27]))


def _sex(p: Person) -> float:
  """+1 for women, -1 for men."""
  return 1.0 if p.female else -1.0


def _height(p: Person) -> float:
  """Height in standard deviations of the person's sex."""
  mean, sd = HEIGHT_CM[p.female]
  return (p.height_cm - mean) / sd


def _older(p: Person) -> float:
  """Age mapped linearly onto -1 (youngest) .. 1 (oldest)."""
  lo, hi = AGE_RANGE
  return (2.0 * p.age - lo - hi) / (hi - lo)


def _with(r: float, shared: float, own: float) -> float:
  """A unit-variance mix that correlates `r` with `shared`."""
  return r * shared + np.sqrt(1.0 - r * r) * own


def voice(z: np.ndarray) -> Voice:
  """Voice traits from an identity vector."""
  p = person(z)
  ages, st = F0_AGE_ST[p.female]
  f0_st = np.interp(p.age, ages, st)
  return Voice(
      f0_hz=float(F0_HZ[p.female] * 2.0 ** (f0_st / 12.0) * np.exp(0.15 * z[1])),
      formant_scale=float(np.exp(FORMANT_SEX * _sex(p)
                                 + 0.045 * _with(HEIGHT_FORMANT_R, _height(p), z[2]))),
      breathiness=float(special.expit(0.3 * _sex(p) + z[3] - 1.0 + 0.5 * _older(p))),
      rate=float(np.exp(0.10 * z[4])),
      jitter=float(0.008 * np.exp(0.4 * z[5] + 0.2 * _older(p))),
      pitch_range=float(2.5 * np.exp(0.25 * z[6])),
      formant_shift=tuple(float(x) for x in np.exp(0.05 * z[19:23])),
      tilt=float(np.exp(0.25 * z[23])),
  )


def _mix(a, b, t):
  t = 1.0 / (1.0 + np.exp(-t))
  return tuple(float(x) for x in (1 - t) * np.asarray(a) + t * np.asarray(b))


def _grey(p: Person, z: np.ndarray) -> float:
  """The share of grey hairs."""
  return float(special.expit((p.age - GREY_AGE - GREY_AGE_SD * z[28]) / GREY_WIDTH))


def _recession(p: Person, z: np.ndarray) -> float:
  """Frontal hairline recession, 0 .. 1; past 0.5 in Norwood's share of men."""
  if p.female:
    return 0.0
  propensity = special.logit(special.ndtr(z[29]))
  return float(special.expit(2.0 * (RECEDE_PER_YEAR * (p.age - RECEDE_AGE) + propensity)))


def face(z: np.ndarray) -> Face:
  """Face traits from an identity vector."""
  p = person(z)
  male, h = -_sex(p), _height(p)
  size = np.exp(HEAD_SEX * male)
  grey = _grey(p, z)
  hair = _mix((0.85, 0.70, 0.35), (0.12, 0.08, 0.06), 1.5 * z[10] + 1.0)
  return Face(
      head_w=float(0.34 * size * np.exp(0.042 * _with(HEIGHT_HEAD_R, h, z[7]))),
      head_h=float(0.45 * size * np.exp(0.040 * _with(HEIGHT_HEAD_R, h, z[8]))),
      skin=_mix((0.96, 0.80, 0.68), (0.45, 0.30, 0.22), 1.3 * z[9]),
      hair=tuple(float(x) for x in (1 - grey) * np.array(hair) + grey * 0.82),
      hair_len=float(special.expit(-2.0 * male + 1.0 * z[11])),
      beard=float(special.expit(3.0 * male + 1.5 * z[24] - 2.5)),
      jaw_w=float(np.exp(0.06 * male + 0.03 * z[25])),
      hairline=float(0.20 + 0.04 * np.tanh(z[12]) + 0.08 * _recession(p, z)),
      eye_sep=float(0.125 * size + 0.010 * np.tanh(z[13])),
      eye_size=float(1.0 + 0.10 * np.tanh(z[14])),
      iris=_mix((0.35, 0.55, 0.75), (0.30, 0.18, 0.08), 2.0 * z[15] + 1.0),
      brow_thick=float(1.0 + 0.25 * np.tanh(0.7 * male + 0.5 * z[12])),
      mouth_w=float(0.095 * size * np.exp(0.064 * z[13])),
      lips=_mix((0.80, 0.40, 0.40), (0.50, 0.22, 0.22), 1.3 * z[9]),
      nose_len=float(0.10 * size + 0.015 * np.tanh(z[14])),
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
