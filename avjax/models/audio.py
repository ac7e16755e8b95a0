"""Raw-waveform audio encoder: 1D convs per video frame, then a GRU over frames.

After the audio encoder of Vougioukas et al.'s speech-driven facial animation,
as used by Shukla et al. for visually guided speech representations.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from avjax.data import ops
from avjax.models import layers
from avjax.models import recurrent


class AudioEncoder(nn.Module):
  """Encodes per-frame waveform windows [B, T, W] into features [B, T, D].

  Each window, `windows(waveform)` (W = samples_per_frame + 2 * context: one
  video frame's audio and `context` samples each side), goes through strided 1D
  convs (the first about 5 ms wide with a 1 ms stride at 16 kHz), is averaged
  over what remains of its length, and a (bi)directional GRU runs over the
  frames. D = gru_features, doubled when bidirectional. The waveform is first
  normalised per example over all its windows (zero mean, unit variance, as
  wav2vec 2.0 normalises an utterance), which keeps how loudness changes from
  frame to frame (a lip cue) while putting every clip on one scale; the convs
  are then not normalised (see `layers.ConvBlock`), so that cue survives.

  `lengths` [B] (optional): each example is a clip zero-padded after its first
  lengths[b] frames. Its normalisation then reads those frames' windows only,
  the backward GRU starts at its last one, and its outputs on the padding are
  zero, so a clip's features are the same however far it is padded (up to
  float rounding). None: every frame is the clip's (the training batches').

  Returns `(features, aux)` with aux["frames"] the per-frame conv features
  [B, T, conv_features[-1]] and aux["features"] the output.
  """
  samples_per_frame: int = 640  # 16 kHz audio at 25 fps.
  context: int = 160             # 10 ms each side.
  conv_features: Sequence[int] = (32, 64, 128, 128)
  kernels: Sequence[int] = (80, 4, 4, 4)
  strides: Sequence[int] = (16, 2, 2, 2)
  gru_features: int = 128
  bidirectional: bool = True
  dtype: Any = None
  remat: bool = False  # Recompute the conv stack in the backward pass (`layers.remat`).

  def windows(self, waveform):
    """Float waveform [N] (N a multiple of samples_per_frame) -> inputs [N / spf, W], numpy."""
    return ops.frames(waveform, self.samples_per_frame, self.context)

  @nn.compact
  def __call__(self, x, lengths=None):
    b, t, w = x.shape
    if w != self.samples_per_frame + 2 * self.context:
      raise ValueError(f'audio windows of {w} samples; this encoder takes '
                       f'{self.samples_per_frame} + 2 * {self.context} (see `windows`)')
    mean, std = _moments(x, lengths)
    h = ((x - mean) / (std + 1e-5)).reshape(b * t, w, 1)
    frames = layers.remat(_conv_stack, self.remat)(self, h).reshape(b, t, -1)
    features = recurrent.gru(frames, self.gru_features, self.bidirectional, lengths,
                             dtype=self.dtype).astype(frames.dtype)
    if lengths is not None:
      valid = (jnp.arange(t) < lengths[:, None])[..., None]
      frames, features = jnp.where(valid, frames, 0), jnp.where(valid, features, 0)
    return features, {'frames': frames, 'features': features}


def _moments(x, lengths):
  """Mean and std [B, 1, 1] of windows x [B, T, W] over each example's first
  lengths [B] windows (all of them when None; 0 and 0 for an empty example)."""
  if lengths is None:
    return x.mean(axis=(1, 2), keepdims=True), x.std(axis=(1, 2), keepdims=True)
  valid = (jnp.arange(x.shape[1]) < lengths[:, None])[..., None]
  count = jnp.maximum(valid.sum(axis=(1, 2), keepdims=True) * x.shape[2], 1)
  mean = jnp.where(valid, x, 0).sum(axis=(1, 2), keepdims=True) / count
  var = jnp.where(valid, (x - mean) ** 2, 0).sum(axis=(1, 2), keepdims=True) / count
  return mean, jnp.sqrt(var)


def _conv_stack(encoder, h):
  """The encoder's strided convs on windows [N, W, 1], averaged over time: [N, C]."""
  for i, (f, k, s) in enumerate(zip(encoder.conv_features, encoder.kernels, encoder.strides)):
    h = layers.ConvBlock(f, (k,), (s,), norm=False, dtype=encoder.dtype, name=f'conv{i}')(h)
  return h.mean(axis=1)
