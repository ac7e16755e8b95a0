"""Raw-waveform audio encoder: 1D convs per video frame, then a GRU over frames.

After the audio encoder of Vougioukas et al.'s speech-driven facial animation,
as used by Shukla et al. for visually guided speech representations.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from avjax.models import layers


class AudioEncoder(nn.Module):
  """Encodes per-frame waveform windows [B, T, W] into features [B, T, D].

  Each window (W = samples per frame + 2 * context) goes through strided 1D
  convs (the first about 5 ms wide with a 1 ms stride at 16 kHz), is averaged
  over what remains of its length, and a (bi)directional GRU runs over the
  frames. D = gru_features, doubled when bidirectional. The convs are not
  normalised (see `layers.ConvBlock`): loudness is a lip cue.

  Returns `(features, aux)` with aux["frames"] the per-frame conv features
  [B, T, conv_features[-1]] and aux["features"] the output.
  """
  conv_features: Sequence[int] = (32, 64, 128, 128)
  kernels: Sequence[int] = (80, 4, 4, 4)
  strides: Sequence[int] = (16, 2, 2, 2)
  gru_features: int = 128
  bidirectional: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    b, t, w = x.shape
    h = x.reshape(b * t, w, 1)
    for i, (f, k, s) in enumerate(zip(self.conv_features, self.kernels, self.strides)):
      h = layers.ConvBlock(f, (k,), (s,), norm=False, dtype=self.dtype, name=f'conv{i}')(h)
    frames = h.mean(axis=1).reshape(b, t, -1)
    rnn = lambda name: nn.RNN(
        nn.GRUCell(self.gru_features, dtype=self.dtype), name=name)
    if self.bidirectional:
      features = nn.Bidirectional(rnn('gru_fwd'), rnn('gru_bwd'), name='gru')(frames)
    else:
      features = rnn('gru')(frames)
    features = features.astype(frames.dtype)
    return features, {'frames': frames, 'features': features}
