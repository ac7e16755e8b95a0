"""Tests for avjax.data.ops against direct references."""

import numpy as np
import pytest
import scipy.fft

from avjax.data import ops


def _reference_log_mel(audio, sr=16000, num_mels=40, win=400, hop=160, n_fft=512):
  """Explicit DFT matrix per frame and the HTK mel formula, written out."""
  n = np.arange(win)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * n / win)
  k = np.arange(n_fft // 2 + 1)
  dft = np.exp(-2j * np.pi * np.outer(k, n) / n_fft)  # Zero padding to n_fft = unused columns.
  mel = lambda f: 2595 * np.log10(1 + f / 700)
  inv = lambda m: 700 * (10 ** (m / 2595) - 1)
  edges = inv(np.linspace(0, mel(sr / 2), num_mels + 2))
  freqs = k * sr / n_fft
  fb = np.zeros((len(k), num_mels))
  for m in range(num_mels):
    lo, c, hi = edges[m:m + 3]
    for i, f in enumerate(freqs):
      if lo < f <= c:
        fb[i, m] = (f - lo) / (c - lo)
      elif c < f < hi:
        fb[i, m] = (hi - f) / (hi - c)
  out = []
  for t in range(-(-len(audio) // hop)):
    start = t * hop - win // 2
    frame = np.array([audio[j] if 0 <= j < len(audio) else 0.0 for j in range(start, start + win)])
    power = np.abs(dft @ (frame * window)) ** 2
    out.append(np.log(power @ fb + 1e-6))
  return np.array(out)


def test_int16_round_trip():
  x = np.array([-32768, -1, 0, 1, 32767], np.int16)
  f = ops.to_float(x)
  assert f.dtype == np.float32 and f.min() == -1.0 and f.max() < 1.0
  np.testing.assert_array_equal(ops.to_int16(f), x)
  np.testing.assert_array_equal(ops.to_int16(np.array([2.0, -2.0])), [32767, -32768])


@pytest.mark.parametrize('target', [-5.0, 0.0, 7.5, 15.0, 30.0])
@pytest.mark.parametrize('noise_len', [1000, 16000, 40000])
def test_add_noise_hits_snr(target, noise_len):
  rng = np.random.default_rng(0)
  signal = np.sin(np.linspace(0, 400, 16000)) * 0.3
  noise = rng.normal(size=noise_len) + 0.2
  noisy = ops.add_noise(signal, noise, target)
  assert noisy.shape == signal.shape and noisy.dtype == np.float32
  measured = ops.snr_db(signal, noisy - signal)
  assert abs(measured - target) < 0.1, measured


def test_snr_db_and_mix():
  a = np.ones(10)
  assert ops.snr_db(a, 0.1 * a) == pytest.approx(20.0)
  np.testing.assert_allclose(ops.mix(a, a, gain_db=-20.0), 1.1)
  assert ops.rms(np.array([3.0, -3.0])) == 3.0
  with pytest.raises(ValueError, match='shapes'):
    ops.mix(np.ones(3), np.ones(4))


def test_log_mel_matches_direct_reference():
  rng = np.random.default_rng(1)
  audio = rng.normal(size=2000) * 0.1 + np.sin(np.arange(2000) * 0.3)
  got = ops.log_mel(audio)
  want = _reference_log_mel(audio)
  assert got.shape == (13, 40) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_log_mel_frame_count_follows_hop():
  assert ops.log_mel(np.zeros(16000)).shape == (100, 40)


@pytest.mark.parametrize('freq', [300.0, 1000.0, 2500.0, 5000.0])
def test_tone_peaks_in_nearest_mel_bin(freq):
  t = np.arange(16000) / 16000
  features = ops.log_mel(np.sin(2 * np.pi * freq * t), num_mels=40)
  centres = ops.mel_centres(40, 0.0, 8000.0)
  peak = np.argmax(features[10:-10].mean(axis=0))
  assert peak == np.argmin(np.abs(centres - freq))


def test_mfcc_is_orthonormal_dct_of_log_mel():
  audio = np.random.default_rng(2).normal(size=8000)
  want = scipy.fft.dct(ops.log_mel(audio).astype(np.float64), type=2, norm='ortho')[..., :13]
  np.testing.assert_allclose(ops.mfcc(audio, num_coeffs=13), want, rtol=1e-4, atol=1e-4)


def test_time_crop_keeps_alignment():
  spf, num_frames = 640, 20
  audio = np.repeat(np.arange(num_frames), spf)  # Frame t's chunk holds the value t.
  video = np.arange(num_frames)[:, None, None, None] * np.ones((1, 4, 4, 3), int)
  a, v = ops.time_crop(audio, video, 5, 7, spf)
  assert a.shape == (7 * spf,) and v.shape == (7, 4, 4, 3)
  np.testing.assert_array_equal(ops.frames(a, spf)[:, 0], v[:, 0, 0, 0])
  a, _ = ops.time_crop(audio, video, 5, 7, spf, audio_offset=3 * spf)
  np.testing.assert_array_equal(ops.frames(a, spf)[:, 0], v[:, 0, 0, 0] + 3)


@pytest.mark.parametrize('start,num,offset', [(15, 6, 0), (-1, 3, 0), (0, 0, 0), (2, 3, -2000), (10, 10, 1)])
def test_time_crop_rejects_bad_sizes(start, num, offset):
  audio, video = np.zeros(20 * 640), np.zeros((20, 2, 2, 3))
  with pytest.raises(ValueError, match='crop'):
    ops.time_crop(audio, video, start, num, 640, audio_offset=offset)


@pytest.mark.parametrize('offset', [0, 3, -5, 17, 25])
def test_shift_moves_by_offset(offset):
  x = np.arange(1, 21)
  y = ops.shift(x, offset)
  for t in range(20):
    assert y[t] == (x[t - offset] if 0 <= t - offset < 20 else 0)
  np.testing.assert_array_equal(ops.shift(x, offset, wrap=True), np.roll(x, offset))
  video = np.arange(10)[:, None] * np.ones((1, 3))
  np.testing.assert_array_equal(ops.shift(video, 2, axis=1)[:, 2], video[:, 0])


def test_translate_frames_moves_content_and_repeats_edges():
  video = np.zeros((2, 5, 6, 1), np.uint8)
  video[:, 2, 3] = 9
  video[:, :, 0] = 1  # A left edge to repeat.
  out = ops.translate_frames(video, [(1, -2), (0, 0)])
  assert out.shape == video.shape
  assert out[0, 3, 1, 0] == 9 and out[0].max() == 9 and (out[0] == 9).sum() == 1
  np.testing.assert_array_equal(out[1], video[1])
  assert (out[0, :, 5] == 0).all()  # Shifted left by 2: the right edge repeats column 5.


def test_downsample_frames_averages_blocks():
  video = np.random.default_rng(0).integers(0, 256, (3, 8, 6, 3)).astype(np.uint8)
  out = ops.downsample_frames(video, 2)
  assert out.shape == (3, 4, 3, 3) and out.dtype == np.uint8
  block = video[1, 2:4, 4:6, 2].astype(float)
  assert out[1, 1, 2, 2] == np.round(block.mean())
  np.testing.assert_array_equal(ops.downsample_frames(video, 1), video)
  with pytest.raises(ValueError, match='do not divide'):
    ops.downsample_frames(video, 4)


@pytest.mark.parametrize('num_segments', [2, 3, 4, 6])
def test_shuffle_segments(num_segments):
  x = np.arange(24 * 2).reshape(24, 2)
  for seed in range(20):
    shuffled, perm = ops.shuffle_segments(x, num_segments, np.random.default_rng(seed))
    assert not np.array_equal(perm, np.arange(num_segments))
    segments = np.split(shuffled, num_segments)
    restored = np.concatenate([segments[i] for i in np.argsort(perm)])
    np.testing.assert_array_equal(restored, x)
  with pytest.raises(ValueError, match='segments'):
    ops.shuffle_segments(np.arange(25), 4, np.random.default_rng(0))


def test_frames_with_context():
  audio = np.arange(1, 13, dtype=np.float32)
  out = ops.frames(audio, 4, context=2)
  assert out.shape == (3, 8)
  np.testing.assert_array_equal(out[0], [0, 0, 1, 2, 3, 4, 5, 6])
  np.testing.assert_array_equal(out[2], [7, 8, 9, 10, 11, 12, 0, 0])
  with pytest.raises(ValueError, match='multiple'):
    ops.frames(np.zeros(13), 4)


def test_mel_filterbank_shape_and_peaks():
  fb = ops.mel_filterbank(40, 512, 16000)
  assert fb.shape == (257, 40) and fb.dtype == np.float32
  assert fb.max() <= 1.0 and np.all(fb.max(axis=0) > 0.3)
