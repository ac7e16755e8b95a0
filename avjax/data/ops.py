"""Host-side numpy audio/video ops, composed by tasks in Grain workers.

Conventions: audio is mono, 16 kHz, time on axis 0; video is [T, H, W, C] at
25 fps, so one video frame spans `samples_per_frame` = 640 audio samples and
video frame t goes with audio samples [t * 640, (t + 1) * 640).
"""

import numpy as np

SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


def to_float(audio):
  """int16 PCM -> float32 in [-1, 1)."""
  return np.asarray(audio, np.int16).astype(np.float32) / 32768.0


def to_int16(x):
  """Float audio in [-1, 1) -> int16 PCM, rounded and clipped."""
  return np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def time_crop(audio, video, start_frame, num_frames,
              samples_per_frame=SAMPLES_PER_FRAME, audio_offset=0):
  """Crops `num_frames` video frames from `start_frame` and the audio under them.

  The audio window is samples [start_frame * samples_per_frame + audio_offset,
  ... + num_frames * samples_per_frame); `audio_offset` != 0 gives a
  misaligned pair taken from the same clip (never wrapped or padded). Raises
  ValueError, naming the sizes, when either window does not fit.
  """
  start = start_frame * samples_per_frame + audio_offset
  length = num_frames * samples_per_frame
  if num_frames <= 0 or start_frame < 0 or start_frame + num_frames > len(video):
    raise ValueError(f'cannot crop frames [{start_frame}, {start_frame + num_frames}) '
                     f'from a video of {len(video)} frames')
  if start < 0 or start + length > len(audio):
    raise ValueError(f'cannot crop audio samples [{start}, {start + length}) from '
                     f'{len(audio)} samples (start_frame={start_frame}, '
                     f'audio_offset={audio_offset})')
  return audio[start:start + length], video[start_frame:start_frame + num_frames]


def shift(x, offset, axis=0, wrap=False):
  """Delays `x` by `offset` steps along `axis` (negative: advances), same length.

  y[t] = x[t - offset]. Steps that come from outside `x` are zero, or, with
  `wrap=True`, taken circularly from the other end (a splice, audible in
  audio; prefer `time_crop(..., audio_offset=...)` for misaligned pairs).
  """
  x = np.asarray(x)
  if wrap:
    return np.roll(x, offset, axis=axis)
  n = x.shape[axis]
  out = np.zeros_like(x)
  k = min(abs(offset), n)
  dst = [slice(None)] * x.ndim
  src = [slice(None)] * x.ndim
  dst[axis], src[axis] = (slice(k, n), slice(0, n - k)) if offset >= 0 else (slice(0, n - k), slice(k, n))
  out[tuple(dst)] = x[tuple(src)]
  return out


def translate_frames(video, shifts):
  """Moves frame t of video [T, H, W, C] by shifts[t] = (dy, dx) pixels, edges repeated."""
  shifts = np.asarray(shifts, int)
  pad = int(np.abs(shifts).max(initial=0))
  padded = np.pad(video, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='edge')
  h, w = video.shape[1:3]
  return np.stack([padded[t, pad - dy:pad - dy + h, pad - dx:pad - dx + w]
                   for t, (dy, dx) in enumerate(shifts)])


def downsample_frames(video, factor):
  """Frames [T, H, W, C] -> [T, H / factor, W / factor, C]: the mean of each block, same dtype."""
  t, h, w, c = video.shape
  if h % factor or w % factor:
    raise ValueError(f'frames of {h}x{w} do not divide into {factor}x{factor} blocks')
  blocks = video.reshape(t, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
  return np.round(blocks).astype(video.dtype) if video.dtype.kind in 'iu' else blocks.astype(video.dtype)


def shuffle_segments(x, num_segments, rng, axis=0):
  """Cuts `x` into `num_segments` equal segments along `axis` and permutes them.

  Returns (shuffled, permutation) with shuffled's segment i = x's segment
  permutation[i]; the permutation is drawn uniformly among non-identity ones.
  The length along `axis` must be a multiple of `num_segments` >= 2.
  """
  x = np.asarray(x)
  n = x.shape[axis]
  if num_segments < 2 or n % num_segments:
    raise ValueError(f'cannot cut {n} steps into {num_segments} equal segments (need >= 2)')
  identity = np.arange(num_segments)
  permutation = identity
  while np.array_equal(permutation, identity):
    permutation = rng.permutation(num_segments)
  segments = np.split(x, num_segments, axis=axis)
  return np.concatenate([segments[i] for i in permutation], axis=axis), permutation


def rms(x):
  """Root mean square of `x` (a float)."""
  x = np.asarray(x, np.float64)
  return float(np.sqrt(np.mean(x * x)))


def mix(a, b, gain_db=0.0):
  """a + b scaled by `gain_db` decibels; equal shapes required."""
  if np.shape(a) != np.shape(b):
    raise ValueError(f'cannot mix shapes {np.shape(a)} and {np.shape(b)}')
  return np.asarray(a) + np.asarray(b) * np.float32(10.0 ** (gain_db / 20.0))


def fit_length(x, length):
  """Tiles or crops `x` along axis 0 to exactly `length` steps."""
  x = np.asarray(x)
  if len(x) == 0:
    raise ValueError('cannot fit an empty array to a length')
  reps = -(-length // len(x))
  return np.concatenate([x] * reps)[:length] if reps > 1 else x[:length]


def snr_db(signal, noise):
  """10 * log10(P_signal / P_noise), powers as mean squares."""
  return 10.0 * np.log10(rms(signal) ** 2 / rms(noise) ** 2)


def add_noise(signal, noise, snr_db):  # pylint: disable=redefined-outer-name
  """signal + noise, `noise` tiled/cropped to length and scaled to `snr_db`.

  After scaling, 10 * log10(P_signal / P_noise) equals `snr_db`. Returns
  float32 of the signal's shape. A silent signal gets no noise.
  """
  signal = np.asarray(signal, np.float64)
  noise = fit_length(np.asarray(noise, np.float64), len(signal))
  p_noise = np.mean(noise * noise)
  if p_noise == 0:
    raise ValueError('noise is silent; cannot scale it to an SNR')
  scale = np.sqrt(np.mean(signal * signal) / (p_noise * 10.0 ** (snr_db / 10.0)))
  return (signal + scale * noise).astype(np.float32)


def frames(audio, samples_per_frame=SAMPLES_PER_FRAME, context=0):
  """Per-video-frame audio windows, [T, samples_per_frame + 2 * context].

  Row t holds samples [t * spf - context, (t + 1) * spf + context), zero
  padded beyond the clip's ends. The length must be a multiple of spf.
  """
  audio = np.asarray(audio)
  if len(audio) % samples_per_frame:
    raise ValueError(f'{len(audio)} samples is not a multiple of {samples_per_frame} per frame')
  padded = np.pad(audio, (context, context))
  windows = np.lib.stride_tricks.sliding_window_view(padded, samples_per_frame + 2 * context)
  return np.ascontiguousarray(windows[::samples_per_frame])


def hz_to_mel(hz):
  """HTK mel scale: 2595 * log10(1 + f / 700)."""
  return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
  """Inverse of `hz_to_mel`."""
  return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_centres(num_mels, fmin, fmax):
  """Centre frequencies (Hz) of the `mel_filterbank` bands."""
  return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), num_mels + 2)[1:-1])


def mel_filterbank(num_mels, n_fft, sample_rate, fmin=0.0, fmax=None):
  """Triangular HTK-mel filters, [n_fft // 2 + 1, num_mels] float32.

  Band m rises linearly (in Hz) from edge m to 1 at centre m + 1 and falls to 0
  at edge m + 2, the num_mels + 2 edges equally spaced in mel over
  [fmin, fmax]. Peak-normalised (no area normalisation).
  """
  fmax = sample_rate / 2 if fmax is None else fmax
  edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), num_mels + 2))
  freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
  lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
  rising = (freqs[:, None] - lower) / (centre - lower)
  falling = (upper - freqs[:, None]) / (upper - centre)
  return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def stft_magnitude(audio, frame_length, hop_length, n_fft):
  """|STFT| with a periodic Hann window, [ceil(len / hop), n_fft // 2 + 1].

  Centre padding: frame t covers samples [t * hop - frame_length // 2,
  t * hop - frame_length // 2 + frame_length), zeros outside the clip, so
  frame t is centred on sample t * hop and a clip of k * hop samples gives k
  frames (4 per video frame at 10 ms hop). The windowed frame is zero padded
  to n_fft >= frame_length.
  """
  audio = np.asarray(audio, np.float64)
  if n_fft < frame_length:
    raise ValueError(f'n_fft={n_fft} is shorter than frame_length={frame_length}')
  num_frames = -(-len(audio) // hop_length)
  left = frame_length // 2
  right = (num_frames - 1) * hop_length + frame_length - left - len(audio)
  padded = np.pad(audio, (left, max(right, 0)))
  windows = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length][:num_frames]
  hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length) / frame_length)
  return np.abs(np.fft.rfft(windows * hann, n=n_fft, axis=-1))


def log_mel(audio, sample_rate=SAMPLE_RATE, num_mels=40, window_ms=25.0, hop_ms=10.0,
            n_fft=512, fmin=0.0, fmax=None, eps=1e-6):
  """log(mel power + eps), [ceil(len / hop), num_mels] float32.

  Power spectrum of `stft_magnitude` (Hann, centre padding) through
  `mel_filterbank` (HTK, triangular), natural log.
  """
  frame_length = int(round(sample_rate * window_ms / 1000))
  hop_length = int(round(sample_rate * hop_ms / 1000))
  power = stft_magnitude(audio, frame_length, hop_length, n_fft) ** 2
  filters = mel_filterbank(num_mels, n_fft, sample_rate, fmin, fmax).astype(np.float64)
  return np.log(power @ filters + eps).astype(np.float32)


def dct_matrix(n):
  """Orthonormal DCT-II matrix D, [n, n]: coefficients = D @ x."""
  k = np.arange(n)[:, None]
  d = np.cos(np.pi * k * (2 * np.arange(n)[None, :] + 1) / (2 * n)) * np.sqrt(2.0 / n)
  d[0] /= np.sqrt(2.0)
  return d


def mfcc(audio, num_coeffs=13, num_mels=40, **log_mel_kwargs):
  """First `num_coeffs` orthonormal DCT-II coefficients of `log_mel`, float32."""
  if num_coeffs > num_mels:
    raise ValueError(f'num_coeffs={num_coeffs} exceeds num_mels={num_mels}')
  features = log_mel(audio, num_mels=num_mels, **log_mel_kwargs).astype(np.float64)
  return (features @ dct_matrix(num_mels)[:num_coeffs].T).astype(np.float32)
