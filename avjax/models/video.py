"""Identity encoder, frame decoder and the recon generator that composes them.

After Vougioukas et al.'s speech-driven facial animation: a still frame is
encoded with U-Net skips, and every output frame is decoded from the identity
code, that frame's audio feature and a noise vector.
"""

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from avjax.models import audio
from avjax.models import layers


class IdentityEncoder(nn.Module):
  """Stride-2 convs on the still frame [B, H, W, C].

  Returns `(bottleneck, skips)`: the last feature map [B, H/2^L, W/2^L, F_L]
  and the skips for the decoder, finest first: the input image itself, then
  every feature map but the last. H, W must be divisible by 2^L, L = len(features).
  """
  features: Sequence[int] = (16, 32, 64, 128)
  dtype: Any = None
  remat: bool = False  # Recompute each level in the backward pass (`layers.remat`).

  @nn.compact
  def __call__(self, x):
    skips = [x]
    block = layers.remat(layers.ConvBlock, self.remat)
    for i, f in enumerate(self.features):
      x = block(f, (4, 4), (2, 2), dtype=self.dtype, name=f'down{i}')(x)
      skips.append(x)
    return skips[-1], skips[:-1]


class FrameDecoder(nn.Module):
  """Decodes one frame per conditioning vector, with U-Net skips.

  `__call__(bottleneck [B, h, w, F], skips, cond [B, T, D])`, with `skips` as
  `IdentityEncoder` returns them and `cond` the per-frame audio feature and
  noise. A per-clip conv of the bottleneck plus a per-frame projection of
  `cond` gives the [h, w] start map; each level then upsamples 2x by a sub-pixel
  conv and adds a conv of its skip. The skip and bottleneck convs run once per
  clip and are broadcast over frames (the same as concatenating the skip to
  every frame before one conv, but T times cheaper), which matters on a CPU.
  `cond` also modulates every level after its norm (FiLM: x * (1 + g) + b,
  g and b projected from `cond`): without it the skips let the decoder copy the
  still frame and the audio, seen only at the bottleneck, barely moves the mouth.
  Returns [B, T, H, W, out_channels], unbounded: `Recon` reads it as the change
  to the still frame. The last level's convs start at zero, so an untrained
  decoder repeats the still frame (the baseline a trained one must beat).
  """
  features: Sequence[int] = (64, 64, 32, 16)  # Widths from h up to H/2, coarsest first.
  out_channels: int = 3
  dtype: Any = None
  remat: bool = False  # Recompute each level in the backward pass (`layers.remat`).

  @nn.compact
  def __call__(self, bottleneck, skips, cond):
    if len(self.features) != len(skips):
      raise ValueError(f'{len(self.features)} decoder widths for {len(skips)} skips')
    conv = functools.partial(layers.Conv, kernel_size=(3, 3), dtype=self.dtype)
    b, t, _ = cond.shape
    _, h, w, _ = bottleneck.shape
    f = self.features[0]
    frame = nn.Dense(h * w * f, dtype=self.dtype, name='project')(cond)
    x = conv(f, name='bottleneck')(bottleneck)[:, None] + frame.reshape(b, t, h, w, f)
    x = layers.NormAct(dtype=self.dtype, name='norm_bottleneck')(x)
    widths = tuple(self.features[1:]) + (self.out_channels,)
    level = layers.remat(_decoder_level, self.remat, static_argnums=(4, 5, 6))
    for i, (f, skip) in enumerate(zip(widths, skips[::-1])):
      x = level(self, x, skip, cond, i, f, i == len(widths) - 1)
    return x


def _decoder_level(decoder, x, skip, cond, index, features, last):
  """One `FrameDecoder` level: x [B, T, h, w, C] -> [B, T, 2h, 2w, features].

  Sub-pixel upsampling plus a conv of the skip; then norm and FiLM, except on
  the last level, whose convs start at zero.
  """
  conv = functools.partial(layers.Conv, kernel_size=(3, 3), dtype=decoder.dtype)
  init = {'kernel_init': nn.initializers.zeros} if last else {}
  x = layers.depth_to_space(conv(4 * features, name=f'up{index}', **init)(x))
  x = x + conv(features, name=f'skip{index}', **init)(skip)[:, None]
  if last:
    return x
  x = layers.NormAct(dtype=decoder.dtype, name=f'norm{index}')(x)
  return _film(x, cond, decoder.dtype, name=f'film{index}')


def _film(x, cond, dtype, name):
  """x [B, T, H, W, F] * (1 + g) + b, with (g, b) a projection of cond [B, T, D]."""
  gain, bias = jnp.split(nn.Dense(2 * x.shape[-1], dtype=dtype, name=name)(cond), 2, -1)
  return x * (1 + gain[:, :, None, None]) + bias[:, :, None, None]


class Recon(nn.Module):
  """Still frame [B, H, W, 3] + audio windows [B, T, W] + noise [B, T, N] -> video.

  Children `identity_encoder`, `audio_encoder` and `frame_decoder` sit at the
  top of the parameter tree, so `params['audio_encoder']` is the exportable
  audio encoder. The dict fields are keyword arguments of those modules.
  Returns `(video [B, T, H, W, 3], aux)`: the still frame plus the decoder's
  per-frame change (about [-1, 1] once trained; not clipped, so the L1 loss
  keeps its gradient everywhere); aux holds the audio encoder's intermediates.
  """
  audio: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  identity: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  decoder: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  dtype: Any = None
  remat: bool = False  # Passed to the three children.

  @nn.compact
  def __call__(self, still, audio_windows, noise):
    common = dict(dtype=self.dtype, remat=self.remat)
    speech, aux = audio.AudioEncoder(**self.audio, **common, name='audio_encoder')(audio_windows)
    bottleneck, skips = IdentityEncoder(**self.identity, **common,
                                        name='identity_encoder')(still)
    cond = jnp.concatenate([speech, noise.astype(speech.dtype)], -1)
    change = FrameDecoder(**self.decoder, **common, name='frame_decoder')(
        bottleneck, skips, cond)
    return still[:, None].astype(change.dtype) + change, aux
