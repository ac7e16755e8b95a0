"""Phonemes, visemes and the word list of the avsynth talking heads.

A phoneme carries what the source-filter voice needs (kind, formant targets,
voicing, frication band, loudness, duration) and the viseme it shows on the
face. A viseme is a mouth posture: jaw opening, lip width and lip rounding,
each in [0, 1]. Viseme 0 is silence / rest (mouth closed, relaxed).
"""

import dataclasses

import numpy as np

# id: name, (jaw_open, lip_width, rounding).
VISEMES = (
    ('rest', (0.00, 0.50, 0.00)),
    ('bilabial', (0.00, 0.45, 0.15)),      # p b m
    ('labiodental', (0.12, 0.50, 0.00)),   # f v
    ('dental', (0.22, 0.55, 0.00)),        # th dh
    ('alveolar', (0.25, 0.55, 0.00)),      # t d n s z l
    ('postalveolar', (0.22, 0.35, 0.65)),  # sh zh
    ('velar', (0.35, 0.50, 0.00)),         # k g ng
    ('open', (1.00, 0.60, 0.00)),          # aa ae
    ('mid', (0.62, 0.62, 0.00)),           # ah eh h
    ('spread', (0.28, 0.95, 0.00)),        # iy ih y
    ('round', (0.60, 0.30, 0.80)),         # ao ow
    ('tight_round', (0.22, 0.12, 1.00)),   # uw w
    ('rhotic', (0.35, 0.35, 0.50)),        # r er
)
NUM_VISEMES = len(VISEMES)
VISEME_POSTURES = np.array([p for _, p in VISEMES], np.float32)
_V = {name: i for i, (name, _) in enumerate(VISEMES)}


@dataclasses.dataclass(frozen=True)
class Phone:
  """One phoneme: acoustics (adult male reference) and its viseme."""
  kind: str                         # vowel, plosive, nasal, fricative, approx
  formants: tuple[float, float, float]
  viseme: int
  dur_ms: float
  voiced: bool = True
  amp: float = 1.0                  # voicing loudness relative to an open vowel
  noise: float = 0.0                # frication / burst loudness
  band: tuple[float, float] = (0.0, 1.0)   # frication centre and width, Hz


def _vowel(f, vis, dur, amp):
  return Phone('vowel', f, _V[vis], dur, True, amp)


PHONES = {
    'aa': _vowel((730, 1090, 2440), 'open', 150, 1.00),
    'ae': _vowel((660, 1720, 2410), 'open', 140, 0.95),
    'ah': _vowel((640, 1190, 2390), 'mid', 100, 0.90),
    'eh': _vowel((530, 1840, 2480), 'mid', 110, 0.85),
    'ih': _vowel((390, 1990, 2550), 'spread', 90, 0.70),
    'iy': _vowel((270, 2290, 3010), 'spread', 130, 0.65),
    'ao': _vowel((570, 840, 2410), 'round', 140, 0.90),
    'ow': _vowel((490, 910, 2350), 'round', 140, 0.85),
    'uw': _vowel((300, 870, 2240), 'tight_round', 130, 0.60),
    'er': _vowel((490, 1350, 1690), 'rhotic', 130, 0.75),
    'p': Phone('plosive', (400, 900, 2300), _V['bilabial'], 95, False, 0.0, 0.45, (900, 1500)),
    'b': Phone('plosive', (400, 900, 2300), _V['bilabial'], 80, True, 0.12, 0.25, (900, 1500)),
    't': Phone('plosive', (400, 1700, 2600), _V['alveolar'], 90, False, 0.0, 0.5, (4200, 2500)),
    'd': Phone('plosive', (400, 1700, 2600), _V['alveolar'], 75, True, 0.12, 0.3, (3800, 2500)),
    'k': Phone('plosive', (400, 2000, 2600), _V['velar'], 95, False, 0.0, 0.5, (2000, 1200)),
    'g': Phone('plosive', (400, 2000, 2600), _V['velar'], 80, True, 0.12, 0.3, (2000, 1200)),
    'm': Phone('nasal', (280, 1000, 2200), _V['bilabial'], 75, True, 0.35),
    'n': Phone('nasal', (280, 1500, 2500), _V['alveolar'], 70, True, 0.35),
    'f': Phone('fricative', (400, 1300, 2400), _V['labiodental'], 100, False, 0.0, 0.10, (5000, 6000)),
    'v': Phone('fricative', (400, 1300, 2400), _V['labiodental'], 75, True, 0.30, 0.06, (4000, 5000)),
    'th': Phone('fricative', (400, 1500, 2500), _V['dental'], 95, False, 0.0, 0.09, (5500, 5000)),
    's': Phone('fricative', (400, 1700, 2600), _V['alveolar'], 115, False, 0.0, 0.30, (6500, 2500)),
    'z': Phone('fricative', (400, 1700, 2600), _V['alveolar'], 90, True, 0.30, 0.18, (6000, 2500)),
    'sh': Phone('fricative', (400, 1900, 2500), _V['postalveolar'], 115, False, 0.0, 0.30, (3300, 2000)),
    'h': Phone('fricative', (600, 1400, 2450), _V['mid'], 65, False, 0.0, 0.0),
    'l': Phone('approx', (360, 1200, 2800), _V['alveolar'], 65, True, 0.60),
    'r': Phone('approx', (420, 1300, 1600), _V['rhotic'], 65, True, 0.60),
    'w': Phone('approx', (300, 700, 2200), _V['tight_round'], 60, True, 0.55),
    'y': Phone('approx', (280, 2200, 2900), _V['spread'], 60, True, 0.55),
}
PHONE_NAMES = ('_',) + tuple(PHONES)   # '_' = silence, id 0.

WORDS = (
    ('zero', 'z iy r ow'), ('one', 'w ah n'), ('two', 't uw'),
    ('three', 'th r iy'), ('four', 'f ao r'), ('five', 'f aa iy v'),
    ('six', 's ih k s'), ('seven', 's eh v ah n'), ('eight', 'eh iy t'),
    ('nine', 'n aa iy n'), ('yes', 'y eh s'), ('no', 'n ow'),
    ('stop', 's t aa p'), ('go', 'g ow'), ('up', 'ah p'),
    ('down', 'd aa uw n'), ('left', 'l eh f t'), ('right', 'r aa iy t'),
    ('on', 'aa n'), ('off', 'ao f'), ('bed', 'b eh d'), ('cat', 'k ae t'),
    ('dog', 'd ao g'), ('house', 'h aa uw s'), ('blue', 'b l uw'),
    ('green', 'g r iy n'), ('red', 'r eh d'), ('white', 'w aa iy t'),
    ('big', 'b ih g'), ('small', 's m ao l'), ('now', 'n aa uw'),
    ('please', 'p l iy z'), ('bird', 'b er d'), ('shoe', 'sh uw'),
    ('moon', 'm uw n'), ('fish', 'f ih sh'),
)
VOCABULARY = tuple(w for w, _ in WORDS)
PRONUNCIATIONS = tuple(tuple(p.split()) for _, p in WORDS)


@dataclasses.dataclass(frozen=True)
class Utterance:
  """Words and phone segments of one clip; times in seconds."""
  words: np.ndarray        # int32 [n] word ids
  word_times: np.ndarray   # float64 [n, 2] start, end
  phones: np.ndarray       # int32 [m] ids into PHONE_NAMES (0 = silence)
  phone_times: np.ndarray  # float64 [m, 2] start, end; contiguous from 0


def plan_utterance(rng, duration_s, rate, max_words):
  """Draws a few words with pauses that fit in `duration_s`.

  `rate` > 1 speaks faster. Returns an `Utterance` whose phone segments tile
  [0, duration_s], silences included.
  """
  t = rng.uniform(0.08, 0.3)
  end_margin = 0.08
  words, word_times, phones, times = [], [], [0], [[0.0, t]]
  for _ in range(4 * max_words):
    if len(words) == max_words:
      break
    w = int(rng.integers(len(VOCABULARY)))
    pron = PRONUNCIATIONS[w]
    durs = np.array([PHONES[p].dur_ms for p in pron]) / 1000.0 / rate
    durs *= np.exp(rng.normal(0.0, 0.12, len(durs)))
    durs[-1] *= 1.15   # word-final lengthening
    if t + durs.sum() > duration_s - end_margin:
      if words:
        break
      continue
    if words:
      pause = rng.choice([0.0, rng.uniform(0.04, 0.25)], p=[0.3, 0.7])
      if t + pause + durs.sum() > duration_s - end_margin:
        break
      if pause:
        phones.append(0)
        times.append([t, t + pause])
        t += pause
    starts = t + np.concatenate([[0.0], np.cumsum(durs)[:-1]])
    for p, s, d in zip(pron, starts, durs):
      phones.append(PHONE_NAMES.index(p))
      times.append([s, s + d])
    words.append(w)
    word_times.append([t, t + durs.sum()])
    t += durs.sum()
  phones.append(0)
  times.append([t, duration_s])
  return Utterance(
      np.array(words, np.int32), np.array(word_times, np.float64),
      np.array(phones, np.int32), np.array(times, np.float64))
