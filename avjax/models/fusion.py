"""The early-fusion audio-visual network of Owens & Efros (2018), "multisensory features".

A raw-waveform audio stream and a 3D-conv video stream (ResNet-18-like, two
residual blocks a stage) are fused after the video's second stage; the fused
stack ends in global average pooling and one logit: does this audio go with
this video? The logit's projection applied at every position of the last
conv map instead of its mean gives the class activation map (CAM) that
localises the sound.

Published widths (Owens's `shift_net.py`), the `paper` preset:
audio_features=(64, 128, 128, 256), video_features=(64, 64, 128, 256, 512),
fusion_audio=128, fusion_hidden=512. GroupNorm stands in for his batch norm
(the trainer keeps no mutable collections). Three options, off in the
`paper` preset and on in the CPU default, made this network learn the
pretext on avsynth at a CPU's budget (docs/sync.md): `video_input`,
`fusion_correlate`, `fusion_logit`.
"""

import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from avjax.models import layers


def compress(waveform, mu=255.0):
  """Amplitude compression sign(x) * log(1 + mu |x|) / log(1 + mu) of a waveform in [-1, 1]."""
  return jnp.sign(waveform) * jnp.log1p(mu * jnp.abs(waveform)) / math.log1p(mu)


def adaptive_max_pool(x, length):
  """Resamples x [B, L, C] in time to [B, length, C] by max-pooling.

  Output step i is the max over input steps [floor(i L / length),
  ceil((i + 1) L / length)): windows cover every input step and are never
  empty, so this also upsamples (repeating steps) when length > L.
  """
  n = x.shape[1]
  i = np.arange(length)
  starts, ends = i * n // length, -(-(i + 1) * n // length)
  steps = np.arange(n)
  inside = (steps >= starts[:, None]) & (steps < ends[:, None])  # [length, L]
  return jnp.where(inside[None, :, :, None], x[:, None], -jnp.inf).max(axis=2)


def fold_time(video, frames_per_step):
  """Video [B, T, H, W, C] -> [B, T / k, H, W, k C], k = `frames_per_step`: each k
  consecutive frames stacked in the channels, earliest first."""
  b, t, h, w, c = video.shape
  k = frames_per_step
  if t % k:
    raise ValueError(f'SyncNet: {t} frames are not whole steps of frames_per_step={k}; '
                     'make the window a multiple of it')
  return video.reshape(b, t // k, k, h, w, c).transpose(0, 1, 3, 4, 2, 5).reshape(
      b, t // k, h, w, k * c)


def frame_differences(video):
  """Video [B, T, H, W, C] -> each frame minus the one before, [B, T, H, W, C] (the
  first frame's: zeros)."""
  return jnp.diff(video, axis=1, prepend=video[:, :1])


def _centred_in_time(x):
  """x [B, T, ...] minus its mean over T."""
  return x - x.mean(axis=1, keepdims=True)


class NormReLU(nn.Module):
  """GroupNorm per example over all its positions (time, and space for video), then ReLU."""
  max_groups: int = 8
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    groups = math.gcd(x.shape[-1], self.max_groups)
    return jax.nn.relu(nn.GroupNorm(groups, dtype=self.dtype)(x))


class ResBlock(nn.Module):
  """Owens's residual block, 1D [B, L, C] or 3D [B, T, H, W, C] (by `len(kernel)`).

  conv (strided) -> norm -> ReLU -> conv, added to the input (through a
  strided 1x1 projection where the shape changes), then norm -> ReLU.
  """
  features: int
  kernel: Sequence[int]
  strides: int | Sequence[int] = 1
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    ndim = len(self.kernel)
    strides = (self.strides,) * ndim if isinstance(self.strides, int) else tuple(self.strides)
    conv = functools.partial(layers.Conv, self.features, use_bias=False, dtype=self.dtype)
    y = conv(tuple(self.kernel), strides=strides, name='conv1')(x)
    y = NormReLU(dtype=self.dtype, name='norm1')(y)
    y = conv(tuple(self.kernel), name='conv2')(y)
    if strides != (1,) * ndim or x.shape[-1] != self.features:
      x = conv((1,) * ndim, strides=strides, name='shortcut')(x)
    return NormReLU(dtype=self.dtype, name='norm2')(x + y)


class AudioStream(nn.Module):
  """Waveform [B, S] in [-1, 1] -> features [B, S', features[-1]].

  `compress` -> conv (features[0], kernels[0], strides[0]) -> norm -> ReLU ->
  max-pool by `pool` -> one `ResBlock` per remaining (feature, kernel, stride).
  S' = S / (prod(strides) * pool), rounded up at each step.
  """
  features: Sequence[int] = (16, 32, 32, 64)
  kernels: Sequence[int] = (65, 15, 15, 15)
  strides: Sequence[int] = (4, 4, 4, 4)
  pool: int = 4
  dtype: Any = None
  remat: bool = False  # Recompute each `ResBlock` in the backward pass (`layers.remat`).

  @nn.compact
  def __call__(self, waveform):
    x = compress(waveform.astype(jnp.float32))[..., None]
    x = layers.Conv(self.features[0], (self.kernels[0],), strides=(self.strides[0],),
                    use_bias=False, dtype=self.dtype, name='conv1')(x)
    x = NormReLU(dtype=self.dtype, name='norm1')(x)
    x = layers.max_pool(x, (self.pool,), (self.pool,))
    block = layers.remat(ResBlock, self.remat)
    stages = zip(self.features[1:], self.kernels[1:], self.strides[1:])
    for i, (f, k, s) in enumerate(stages, start=2):
      x = block(f, (k,), s, dtype=self.dtype, name=f'conv{i}')(x)
    return x


class Fusion(nn.Module):
  """Mixes audio features [B, L, Ca] into video features [B, T, H, W, Cv].

  The audio is resampled to the video's T steps (`adaptive_max_pool`; Owens
  uses a fractional max-pool), convolved in time (kernel 3, `audio_features`),
  tiled over the [H, W] grid and concatenated with the video; then a 1x1x1
  conv to `hidden` -> norm -> ReLU -> a 1x1x1 conv to `features`, added to a
  1x1x1 projection of the concatenation (Owens takes channel slices of it
  instead), and norm -> ReLU. Returns [B, T, H, W, features].

  With `correlate`, the audio enters only through a product: the audio
  features and a 1x1x1 projection of the video to as many channels, both
  centred in time (their mean over T taken out), multiplied at every
  position; the video and that product are concatenated. Summed over time,
  the product is a correlation of the audio with what changes at that place,
  the cue of the hand-crafted detector (`avjax.evaluate.sync_detector`).
  """
  features: int
  audio_features: int
  hidden: int
  correlate: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, video, audio):
    b, t, h, w, _ = video.shape
    conv = functools.partial(layers.Conv, use_bias=False, dtype=self.dtype)
    a = conv(self.audio_features, (3,), name='audio_conv')(
        adaptive_max_pool(audio, t))
    a = NormReLU(dtype=self.dtype, name='audio_norm')(a)
    if self.correlate:
      a = _centred_in_time(a)
    tiled = jnp.broadcast_to(a[:, :, None, None], (b, t, h, w, a.shape[-1])).astype(video.dtype)
    if self.correlate:  # The audio times the video's projection, both centred in time.
      tiled *= _centred_in_time(conv(self.audio_features, (1, 1, 1), name='video_proj')(video))
    x = jnp.concatenate([video, tiled], axis=-1)
    y = NormReLU(dtype=self.dtype, name='norm1')(conv(self.hidden, (1, 1, 1), name='conv1')(x))
    y = conv(self.features, (1, 1, 1), name='conv2')(y)
    shortcut = conv(self.features, (1, 1, 1), name='shortcut')(x)
    return NormReLU(dtype=self.dtype, name='norm2')(shortcut + y)


class SyncNet(nn.Module):
  """Video [B, T, H, W, 3] in [-1, 1] + audio [B, S] -> (logit [B], aux).

  Positive logit: the audio is aligned with the video. `audio` may also be
  [B, K, S], K tracks per video: the video stages before the fusion then run
  once per video (as in Owens's training, which scores each video with its
  aligned and its shifted audio), and every output that depends on the audio
  gains a K axis after B (logit [B, K]).

  Video: with `video_input='differences'`, each frame minus the one before in
  place of the frame (`frame_differences`: what moved, not what is there);
  with `frames_per_step` k > 1, each k consecutive frames stacked in
  the channels first (`fold_time`: temporal striding that keeps every frame;
  only conv1 reads k times the channels); conv1 (`video_kernel`, stride 2; in
  time `video_time_strides[0]`) -> norm -> ReLU -> max-pool [1, 3, 3] /
  [1, 2, 2] (if `video_pool`: without it, small frames keep a finer grid);
  conv2 two blocks (the second of stride 2, in time `video_time_strides[1]`);
  `Fusion` with the audio stream's output (with `fusion_correlate`, the audio
  only in a time-centred product with the video); conv3 two blocks; conv4 two
  blocks (the first of stride 2, in time `video_time_strides[2]`); conv5 two blocks
  (the first of stride [1, s, s], s = `last_stride`: 1 gives a twice finer
  map for localisation); global average pool; `logit` (a Dense to 1). The
  CAM is `logit` applied at every position of conv5, so the logit equals the
  CAM's mean over [T', H', W'].
  With `fusion_logit`, a second such head reads the fusion's map: a loss on
  it (the task's) supervises the layers up to the fusion directly, as the
  auxiliary classifiers of deeply supervised nets (Lee et al. 2015) and
  GoogLeNet (Szegedy et al. 2015).

  aux: 'audio' (the audio stream's output), 'conv1', 'conv2' (per video),
  'fused', 'conv3', 'conv4', 'conv5' (feature maps) and 'cam' [B, T', H', W'];
  with `fusion_logit`, 'fusion_cam' (at the fusion's [T, H, W]) and
  'fusion_logit' [B], its mean.
  """
  audio_features: Sequence[int] = (16, 32, 32, 64)
  audio_kernels: Sequence[int] = (65, 15, 15, 15)
  audio_strides: Sequence[int] = (4, 4, 4, 4)
  audio_pool: int = 4
  video_features: Sequence[int] = (16, 16, 32, 64, 128)  # conv1 .. conv5.
  video_kernel: Sequence[int] = (5, 7, 7)  # conv1's [T, H, W] kernel.
  video_pool: bool = True
  video_time_strides: Sequence[int] = (2, 2, 2)  # Of conv1, conv2_2 and conv4_1.
  fusion_audio: int = 32
  fusion_hidden: int = 128
  fusion_correlate: bool = False  # The audio enters the fusion only in a product (`Fusion`).
  fusion_logit: bool = False  # A second logit read at the fusion (deep supervision).
  last_stride: int = 2
  frames_per_step: int = 1  # Consecutive frames conv1 reads at each time step (`fold_time`).
  video_input: str = 'frames'  # 'frames' (Owens) or 'differences' (`frame_differences`).
  dtype: Any = None
  remat: bool = False  # Recompute the stem, each `ResBlock` and the fusion in the backward pass.

  @nn.compact
  def __call__(self, video, audio):
    b = video.shape[0]
    k = audio.shape[1] if audio.ndim == 3 else 1
    per_track = lambda x: x.reshape((b, k) + x.shape[1:]) if audio.ndim == 3 else x
    sound = AudioStream(self.audio_features, self.audio_kernels, self.audio_strides,
                        self.audio_pool, dtype=self.dtype, remat=self.remat,
                        name='audio_stream')(audio.reshape(b * k, audio.shape[-1]))
    _, f2, f3, f4, f5 = self.video_features
    block = functools.partial(layers.remat(ResBlock, self.remat), kernel=(3, 3, 3),
                              dtype=self.dtype)
    _, t2, t4 = self.video_time_strides
    conv1, x = layers.remat(_video_stem, self.remat)(self, video)
    conv2 = block(f2, strides=(t2, 2, 2), name='conv2_2')(block(f2, name='conv2_1')(x))
    fusion = layers.remat(Fusion, self.remat)
    fused = fusion(f3, self.fusion_audio, self.fusion_hidden, self.fusion_correlate,
                   dtype=self.dtype, name='fusion')(
        jnp.repeat(conv2, k, axis=0), sound)
    conv3 = block(f3, name='conv3_2')(block(f3, name='conv3_1')(fused))
    conv4 = block(f4, name='conv4_2')(block(f4, strides=(t4, 2, 2), name='conv4_1')(conv3))
    s = self.last_stride
    conv5 = block(f5, name='conv5_2')(block(f5, strides=(1, s, s), name='conv5_1')(conv4))
    head = nn.Dense(1, dtype=self.dtype, name='logit')
    cam = head(conv5)[..., 0].astype(jnp.float32)
    logit = head(conv5.mean(axis=(1, 2, 3)))[..., 0].astype(jnp.float32)
    outputs = {'fused': fused, 'conv3': conv3, 'conv4': conv4, 'conv5': conv5, 'cam': cam}
    if self.fusion_logit:
      outputs['fusion_cam'] = nn.Dense(1, dtype=self.dtype, name='fusion_logit')(
          fused)[..., 0].astype(jnp.float32)
      outputs['fusion_logit'] = outputs['fusion_cam'].mean(axis=(1, 2, 3))
    aux = {'audio': per_track(sound), 'conv1': conv1, 'conv2': conv2}
    aux.update({name: per_track(x) for name, x in outputs.items()})
    return per_track(logit), aux


VIDEO_INPUTS = {'frames': lambda video: video, 'differences': frame_differences}


def _video_stem(net, video):
  """SyncNet's `video_input` -> `fold_time` -> conv1 -> norm -> ReLU, and that max-pooled
  if `video_pool`: (conv1, pooled)."""
  if net.video_input not in VIDEO_INPUTS:
    raise ValueError(f'SyncNet: unknown video_input {net.video_input!r}; known: '
                     f'{sorted(VIDEO_INPUTS)}')
  video = VIDEO_INPUTS[net.video_input](video)
  x = layers.Conv(net.video_features[0], tuple(net.video_kernel),
                  strides=(net.video_time_strides[0], 2, 2), use_bias=False, dtype=net.dtype,
                  name='conv1')(fold_time(video, net.frames_per_step))
  conv1 = NormReLU(dtype=net.dtype, name='conv1_norm')(x)
  if not net.video_pool:
    return conv1, conv1
  return conv1, layers.max_pool(conv1, (1, 3, 3), (1, 2, 2))
