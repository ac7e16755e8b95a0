"""Audio-only pretext models: the audio encoder plus a small scoring head.

Both name their children `audio_encoder` and `<task>_head` at the top of the
parameter tree, so `params['audio_encoder']` is the same exportable encoder as
recon's, and a multitask model can share it by name.
"""

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from avjax.models import audio


class ScoreHead(nn.Module):
  """Features [..., D] -> one score per row [...]: LayerNorm -> Dense -> GELU -> Dense(1).

  The norm makes the head indifferent to the scale of the encoder's features,
  which start small (its convs are unnormalised, see `AudioEncoder`).
  """
  hidden: int = 128
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    x = nn.LayerNorm(dtype=self.dtype, name='norm')(x)
    x = jax.nn.gelu(nn.Dense(self.hidden, dtype=self.dtype, name='hidden')(x))
    return nn.Dense(1, dtype=self.dtype, name='score')(x)[..., 0].astype(jnp.float32)


class ArrowOfTime(nn.Module):
  """Audio windows [B, T, W] -> one logit per clip [B] (positive: played backwards).

  The encoder's features are averaged over frames and scored by `aot_head`.
  Returns `(logits, aux)`, aux holding the encoder's intermediates.
  """
  audio: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  hidden: int = 128
  dtype: Any = None
  remat: bool = False  # The audio encoder's (`AudioEncoder.remat`).

  @nn.compact
  def __call__(self, windows):
    features, aux = audio.AudioEncoder(**self.audio, dtype=self.dtype, remat=self.remat,
                                       name='audio_encoder')(windows)
    return ScoreHead(self.hidden, dtype=self.dtype, name='aot_head')(features.mean(1)), aux


class OddOneOut(nn.Module):
  """Audio windows [B, T, W] -> one score per segment [B, num_segments].

  The T frames are cut into `num_segments` equal runs; each run's encoder
  features are averaged and scored by `odd_head` (a softmax over segments
  says which one is the odd one). Returns `(scores, aux)`.
  """
  audio: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  num_segments: int = 4
  hidden: int = 128
  dtype: Any = None
  remat: bool = False  # The audio encoder's (`AudioEncoder.remat`).

  @nn.compact
  def __call__(self, windows):
    b, t, _ = windows.shape
    if t % self.num_segments:
      raise ValueError(f'{t} frames do not cut into {self.num_segments} equal segments')
    features, aux = audio.AudioEncoder(**self.audio, dtype=self.dtype, remat=self.remat,
                                       name='audio_encoder')(windows)
    segments = features.reshape(b, self.num_segments, t // self.num_segments, -1).mean(2)
    return ScoreHead(self.hidden, dtype=self.dtype, name='odd_head')(segments), aux
