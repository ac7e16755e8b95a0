"""A source-filter speech synthesiser (numpy, vectorised over STFT frames).

Sources: a Rosenberg glottal pulse train at a jittered F0, aspiration noise
pulsed by the glottis, and white noise for frication and bursts. Filters: per
8 ms control frame, a cascade of four formant resonances (scaled by the
speaker's vocal-tract length and by the lips' spreading), a spectral tilt set by
voice quality, nasal damping, and a frication band. Filtering is a
multiplication in the STFT domain followed by overlap-add.

The F0 contour is built outside `synthesize` (`accents`, `intonation`), so that
the face can move with the same pitch accents the voice makes.
"""

import dataclasses

import numpy as np
from scipy import ndimage

from avjax.data.synth import lexicon
from avjax.data.synth import speakers

_KINDS = ('silence', 'vowel', 'plosive', 'nasal', 'fricative', 'approx')
_NEUTRAL_FORMANTS = (500.0, 1500.0, 2500.0)
_BANDWIDTHS = np.array([80.0, 100.0, 160.0, 250.0])
_F4 = 3500.0


def _phone_table():
  """Per phone id: kind, F1-F3, voicing amp, noise amp, band centre/width."""
  rows = [(0, *_NEUTRAL_FORMANTS, 0.0, 0.0, 0.0, 1.0)]
  for name in lexicon.PHONE_NAMES[1:]:
    p = lexicon.PHONES[name]
    rows.append((_KINDS.index(p.kind), *p.formants, p.amp, p.noise, *p.band))
  return np.array(rows, np.float64)


_TABLE = _phone_table()


@dataclasses.dataclass(frozen=True)
class Prosody:
  """Modulation of the voice per control frame ([n_ctrl] arrays, `control_times`)."""
  f0_st: np.ndarray         # F0 in semitones relative to the speaker's (`intonation`)
  gain_db: np.ndarray       # loudness
  breath: np.ndarray        # added to the speaker's breathiness
  formant_mult: np.ndarray  # multiplies every formant (spread lips shorten the tract)
  jitter_mult: float        # multiplies jitter


def hop_length(sample_rate: int) -> int:
  """Control / STFT hop: 8 ms."""
  return sample_rate // 125


def control_times(sample_rate: int, n_samples: int) -> np.ndarray:
  """Times (seconds) of the control frames of a waveform of `n_samples`."""
  hop = hop_length(sample_rate)
  return np.arange(n_samples // hop + 1) * hop / sample_rate


def phone_at(utt: lexicon.Utterance, t: np.ndarray):
  """Phone id and fractional position inside it at times `t` (seconds)."""
  i = np.clip(np.searchsorted(utt.phone_times[:, 0], t, 'right') - 1,
              0, len(utt.phones) - 1)
  start, end = utt.phone_times[i, 0], utt.phone_times[i, 1]
  frac = np.clip((t - start) / np.maximum(end - start, 1e-6), 0.0, 1.0)
  return utt.phones[i], frac


def _controls(utt, t, formant_scale, formant_shift):
  """Formants, bandwidths and source amplitudes per control frame.

  `formant_scale` [n_ctrl, 1] (vocal-tract length and lips); `formant_shift` [4].
  """
  ph, frac = phone_at(utt, t)
  row = _TABLE[ph]
  kind = row[:, 0].astype(int)
  formants = np.concatenate([row[:, 1:4], np.full((len(t), 1), _F4)], 1)
  formants = np.exp(ndimage.gaussian_filter1d(np.log(formants), 2.0, axis=0))
  formants *= formant_scale * np.asarray(formant_shift)
  voiced_amp, noise_amp = row[:, 4].copy(), row[:, 5].copy()
  asp = np.zeros_like(voiced_amp)
  plosive = kind == _KINDS.index('plosive')
  burst = plosive & (frac >= 0.6) & (frac < 0.75)   # closure before it
  release = plosive & (frac >= 0.75)
  noise_amp[plosive & ~burst] = 0.0
  voiced_plosive = release & (voiced_amp > 0)
  voiced_amp[burst] = 0.0
  voiced_amp[voiced_plosive] = 0.5
  asp[release & ~voiced_plosive] = 0.25
  asp[ph == lexicon.PHONE_NAMES.index('h')] = 0.35
  nasal = (kind == _KINDS.index('nasal')).astype(np.float64)
  smooth = lambda x, s: ndimage.gaussian_filter1d(x, s)
  return dict(
      formants=formants, voiced=smooth(voiced_amp, 1.0),
      noise=smooth(noise_amp, 0.7), asp=smooth(asp, 1.0),
      nasal=smooth(nasal, 1.0), band_c=row[:, 6] * np.ravel(formant_scale) ** 0.5,
      band_w=row[:, 7])


def accents(utt: lexicon.Utterance, t: np.ndarray,
            strength: np.ndarray) -> np.ndarray:
  """Pitch-accent prominence at times `t`: a bump `strength[i]` high on word i."""
  out = np.zeros_like(t)
  for (s, e), a in zip(utt.word_times, strength):
    mid, width = 0.5 * (s + e), 0.4 * (e - s) + 0.02
    out += a * np.exp(-0.5 * ((t - mid) / width) ** 2)
  return out


def intonation(t: np.ndarray, shift_st: np.ndarray, accent_st: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
  """F0 (semitones relative to the speaker's) per control frame at times `t`:
  the emotion's shift, declination, the pitch accents and a slow drift."""
  drift = ndimage.gaussian_filter1d(rng.standard_normal(len(t)), 12.0)
  return (shift_st - 1.5 * t / max(t[-1], 1e-6) + accent_st
          + 0.6 * drift / (drift.std() + 1e-9))


def _glottal(f0, breath, sample_rate, jitter, rng):
  """Rosenberg glottal flow derivative and glottal flow (for pulsed noise)."""
  n = len(f0)
  coarse = rng.standard_normal(n // 80 + 2)
  f0 = f0 * (1.0 + jitter * np.interp(np.arange(n) / 80.0,
                                      np.arange(len(coarse)), coarse))
  p = np.cumsum(f0 / sample_rate) % 1.0
  oq = np.clip(0.5 + 0.35 * breath, 0.35, 0.9)
  tp, tn = 0.7 * oq, 0.3 * oq
  flow = np.where(p < tp, 0.5 * (1.0 - np.cos(np.pi * p / tp)),
                  np.where(p < oq, np.cos(0.5 * np.pi * (p - tp) / tn), 0.0))
  deriv = np.diff(flow, prepend=0.0) * sample_rate / f0
  return deriv, flow


def _window(n_fft):
  return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)


def _stft(x, n_fft, hop, n_frames):
  pad = np.pad(x, (n_fft // 2, n_fft // 2 + hop))
  frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop]
  return np.fft.rfft(frames[:n_frames] * _window(n_fft), axis=1)


def _istft(spec, n_fft, hop, n):
  frames = np.fft.irfft(spec, n_fft, axis=1) * _window(n_fft)
  r = n_fft // hop
  frames = frames.reshape(len(frames), r, hop)
  out = np.zeros((len(frames) + r - 1, hop))
  for k in range(r):
    out[k:k + len(frames)] += frames[:, k]
  out = out.reshape(-1) / (0.375 * r)   # sum of squared Hann windows
  return out[n_fft // 2:n_fft // 2 + n]


def synthesize(utt: lexicon.Utterance, voice: speakers.Voice,
               prosody: Prosody, sample_rate: int, n_samples: int,
               rng: np.random.Generator) -> np.ndarray:
  """Speech waveform (float, roughly unit-scaled) for an utterance."""
  hop = hop_length(sample_rate)
  n_fft = 4 * hop
  t = control_times(sample_rate, n_samples)
  n_ctrl = len(t)
  c = _controls(utt, t, voice.formant_scale * prosody.formant_mult[:, None],
                voice.formant_shift)
  breath = np.clip(voice.breathiness + prosody.breath, 0.0, 1.0)
  f0 = voice.f0_hz * 2.0 ** (prosody.f0_st / 12.0)
  ts = np.arange(n_samples) / sample_rate
  f0_s = np.interp(ts, t, f0)
  source, flow = _glottal(f0_s, np.interp(ts, t, breath), sample_rate,
                          voice.jitter * prosody.jitter_mult, rng)
  noise = rng.standard_normal(n_samples)
  pulsed = rng.standard_normal(n_samples) * (0.3 + flow)

  f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)[None, :]
  env = np.ones((n_ctrl, f.shape[1]))
  for i in range(4):
    fi, bi = c['formants'][:, i:i + 1], _BANDWIDTHS[i] * (1.0 + 0.5 * breath[:, None])
    env *= fi ** 2 / np.sqrt((fi ** 2 - f ** 2) ** 2 + (bi * f) ** 2)
  tilt = 1.0 / np.sqrt(1.0 + (f / (2500.0 * voice.tilt
                                 * np.exp(-1.2 * breath[:, None]))) ** 2)
  nasal = 1.0 - c['nasal'][:, None] * (1.0 - 1.0 / (1.0 + (f / 400.0) ** 2))
  band = np.exp(-0.5 * ((f - c['band_c'][:, None]) / (0.5 * c['band_w'][:, None])) ** 2)
  gain = 10.0 ** (prosody.gain_db / 20.0)[:, None]
  v = c['voiced'][:, None]
  spec = (_stft(source, n_fft, hop, n_ctrl) * env * tilt * nasal * v
          + _stft(pulsed, n_fft, hop, n_ctrl) * env * tilt
          * (c['asp'][:, None] + 0.25 * breath[:, None] * v)
          + _stft(noise, n_fft, hop, n_ctrl) * band * 3.0 * c['noise'][:, None])
  return 0.012 * _istft(spec * gain, n_fft, hop, n_samples)
