"""Per-video-frame audio features of whole clips, and the test-time noise condition.

Every feature here has one row per video frame (25 fps): an encoder's output
on `AudioEncoder.windows`, or hand-crafted log-mel / MFCC frames (25 ms
window, 10 ms hop) with the hops under one video frame stacked.
"""

import jax
import numpy as np

from avjax.data import ops

HANDCRAFTED = ('logmel', 'mfcc')
_HOP = ops.SAMPLE_RATE // 100  # 10 ms.


def handcrafted(waveform, kind, samples_per_frame=ops.SAMPLES_PER_FRAME):
  """[T, hops_per_frame * bands]: 'logmel' (40 bands) or 'mfcc' (13), T = len / spf."""
  if kind not in HANDCRAFTED:
    raise ValueError(f'unknown hand-crafted feature {kind!r}; known: {HANDCRAFTED}')
  if samples_per_frame % _HOP:
    raise ValueError(f'{samples_per_frame} samples per frame is not a multiple of the '
                     f'{_HOP}-sample hop')
  frames = ops.log_mel(waveform) if kind == 'logmel' else ops.mfcc(waveform)
  return frames.reshape(len(waveform) // samples_per_frame, -1)


def handcrafted_batch(waveforms, kind):
  """`handcrafted` of each clip: [N, S] -> [N, T, D] float32."""
  return np.stack([handcrafted(w, kind) for w in waveforms])


def windows(encoder, waveforms):
  """An `AudioEncoder`'s inputs for each clip: [N, S] -> [N, T, W] float32."""
  return np.stack([encoder.windows(w) for w in waveforms]).astype(np.float32)


def encode(features_fn, params, inputs, batch_size=64):
  """`features_fn(params, x) -> [B, T, D]` over `inputs` [N, ...] in batches, as numpy.

  `inputs` may be a tuple of arrays [N, ...], batched alike (e.g. an
  `AudioEncoder`'s windows and each clip's length in frames). The last batch
  is padded to `batch_size` with zeros, so a jitted `features_fn` compiles once.
  """
  pad = lambda a: np.concatenate([a, np.zeros((batch_size - len(a),) + a.shape[1:], a.dtype)])
  num = len(jax.tree.leaves(inputs)[0])
  out = []
  for start in range(0, num, batch_size):
    batch = jax.tree.map(lambda a: pad(np.asarray(a)[start:start + batch_size]), inputs)
    size = min(batch_size, num - start)
    out.append(np.asarray(jax.device_get(features_fn(params, batch)))[:size])
  return np.concatenate(out)


def standardize(train, *others, lengths=None):
  """Scales every array by the per-dimension mean and std of `train` [N, T, D]'s frames:
  each clip's first `lengths` [N] frames when given (not the padding after them)."""
  if lengths is None:
    frames = train.reshape(-1, train.shape[-1])
  else:
    frames = train[np.arange(train.shape[1]) < np.asarray(lengths)[:, None]]
  mean = frames.mean(axis=0)
  std = frames.std(axis=0) + 1e-6
  return tuple((x - mean) / std for x in (train,) + others)


def with_white_noise(waveforms, snr_db, seed, lengths=None):
  """Each clip [N, S] plus its own white Gaussian noise at `snr_db` (None: unchanged).

  The noise of clip i is drawn from `default_rng((seed, i))`, so a condition
  is the same whichever clips are evaluated; `ops.add_noise` scales it to
  the SNR against the clip's power. Given `lengths` [N] (samples), a clip is
  its first lengths[i] samples: the padding after them stays silent.
  """
  if snr_db is None:
    return waveforms
  lengths = [len(w) for w in waveforms] if lengths is None else lengths
  noisy = np.zeros(np.shape(waveforms), np.float32)
  for i, (w, n) in enumerate(zip(waveforms, lengths)):
    noise = np.random.default_rng((seed, i)).standard_normal(n)
    noisy[i, :n] = ops.add_noise(w[:n], noise, snr_db)
  return noisy
