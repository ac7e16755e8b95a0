"""The two-stream face/voice network of Nagrani, Chung, Albanie & Zisserman (2020).

"Disentangled speech embeddings using cross-modal self-supervision" (ICASSP
2020, arXiv 2002.08742), after the group's public trainer
(joonson/syncnet_trainer, `models/SyncNetModelFBank.py`): an audio trunk over
log-mel frames and a face trunk over video frames, each giving one feature
vector per video frame, each feeding a **content** head and an **identity**
head. `ScaledCosine` (w * cos + b, initialised w = 10, b = -5 as in the
trainer's `LossScale`) turns pairs of embeddings into logits.

Audio (`AudioTrunk`): log-mel frames [B, T_mel, 40] (10 ms hop: 4 per 25 fps
video frame) through a VGG-M-like 2D CNN over (time, frequency), the
trainer's layout: conv1 (7 x 5) -> max-pool time /2; conv2 (5 x 5, stride 2
in frequency) -> max-pool frequency /2; conv3, conv4, conv5 (3 x 3) ->
max-pool both /2; conv6 over all remaining frequency bins (the trainer's
4 x 1 kernel), which pools frequency away. Time stride 4 overall: T_mel = 4 T
frames in, T steps out, step t under video frame t. Published widths
(96, 256, 384, 256, 256, 512).

Face (`FaceTrunk`): frames [B, T, H, W, 3] through a first 3D conv over 5
frames (5 x 7 x 7, stride 2 in space), then 2D convs per frame (5 x 5 stride
2, three 3 x 3, a last 3 x 3) and global spatial average pooling: [B, T, C],
step t centred on frame t ('SAME' padding in time: the trainer pads none and
reads T - 4 steps from T frames). `pool` adds the trainer's three 3 x 3 / 2
max-pools (after conv1, conv2 and conv5) for large frames. Published widths
(96, 256, 256, 256, 256, 512).

Heads (`EmbeddingHead`): 1 x 1 projections per time step, i.e. Dense layers;
with `hidden` > 0 the trainer's two-layer head (1 x 1 conv -> norm -> ReLU ->
1 x 1 conv; LayerNorm here for its BatchNorm1d). Published: hidden 512,
output 1024.

GroupNorm stands in for the trainer's BatchNorm (the avjax trainer keeps no
mutable collections): in the audio trunk per example over its (time,
frequency) positions, in the face trunk per frame over its (H, W) positions,
so a face step depends only on its 5-frame neighbourhood.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from avjax.models import fusion
from avjax.models import layers


def _norm_relu_per_frame(x, dtype, name):
  """GroupNorm -> ReLU per frame of x [B, T, H, W, C] (over each frame's H, W)."""
  b, t = x.shape[:2]
  y = fusion.NormReLU(dtype=dtype, name=name)(x.reshape((b * t,) + x.shape[2:]))
  return y.reshape((b, t) + y.shape[1:])


class AudioTrunk(nn.Module):
  """Log-mel frames [B, T_mel, F] -> features [B, ceil(T_mel / 4), features[-1]].

  See the module docstring for the layout; `features` are the six conv widths.
  """
  features: Sequence[int] = (16, 32, 64, 64, 64, 128)
  dtype: Any = None
  remat: bool = False  # Recompute each conv -> norm stage in the backward pass.

  @nn.compact
  def __call__(self, mel):
    if len(self.features) != 6:
      raise ValueError(f'AudioTrunk takes 6 conv widths, got {self.features}')
    f1, f2, f3, f4, f5, f6 = self.features
    stage = _stage(self.remat)
    x = mel.astype(jnp.float32)[..., None]  # [B, T_mel, F, 1]: time, frequency, channels.
    x = stage(self, x, 1, f1, (7, 5), (1, 1), 'SAME')
    x = layers.max_pool(x, (3, 1), (2, 1))  # Time / 2.
    x = stage(self, x, 2, f2, (5, 5), (1, 2), 'SAME')  # Frequency / 2.
    x = layers.max_pool(x, (3, 3), (1, 2))  # Frequency / 2.
    x = stage(self, x, 3, f3, (3, 3), (1, 1), 'SAME')
    x = stage(self, x, 4, f4, (3, 3), (1, 1), 'SAME')
    x = stage(self, x, 5, f5, (3, 3), (1, 1), 'SAME')
    x = layers.max_pool(x, (3, 3), (2, 2))  # Time / 2, frequency / 2.
    # Over every remaining frequency bin (the trainer's 4 x 1 kernel): frequency -> 1.
    return stage(self, x, 6, f6, (1, x.shape[2]), (1, 1), 'VALID')[:, :, 0]


def _conv_norm(trunk, x, index, features, kernel, strides, padding):
  """A trunk's `conv{index}` (no bias) -> `norm{index}` (GroupNorm, ReLU)."""
  x = layers.Conv(features, kernel, strides=strides, padding=padding, use_bias=False,
                  dtype=trunk.dtype, name=f'conv{index}')(x)
  return fusion.NormReLU(dtype=trunk.dtype, name=f'norm{index}')(x)


def _stage(remat):
  """`_conv_norm`, rematerialised if `remat` (`layers.remat`); pass every argument."""
  return layers.remat(_conv_norm, remat, static_argnums=(2, 3, 4, 5, 6))


class FrameStackConv(nn.Module):
  """A 3D conv [B, T, H, W, C] -> [B, T, H', W', features], stride 1 and 'SAME'
  padding in time, computed as a 2D conv per frame over its `kernel[0]` frames
  stacked as channels: the same function and kernel ([T, H, W, C, features],
  as `nn.Conv`'s) as `nn.Conv` in 3D, which XLA's CPU backend runs about 8x
  slower."""
  features: int
  kernel: Sequence[int]
  strides: Sequence[int] = (1, 1)
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    kt, kh, kw = self.kernel
    b, t, h, w, c = x.shape
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (kt, kh, kw, c, self.features),
                        jnp.float32)
    x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
    padded = jnp.pad(x, ((0, 0), ((kt - 1) // 2, kt // 2), (0, 0), (0, 0), (0, 0)))
    stacked = jnp.concatenate([padded[:, i:i + t] for i in range(kt)], axis=-1)
    kernel = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(kh, kw, kt * c, self.features)
    y = jax.lax.conv_general_dilated(stacked.reshape(b * t, h, w, kt * c), kernel,
                                     tuple(self.strides), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y.reshape((b, t) + y.shape[1:])


class FaceTrunk(nn.Module):
  """Frames [B, T, H, W, 3] in [-1, 1] -> features [B, T, features[-1]].

  See the module docstring; `features` are the six conv widths, `kernel` the
  first (3D) conv's [T, H, W] kernel.
  """
  features: Sequence[int] = (16, 32, 64, 64, 64, 128)
  kernel: Sequence[int] = (5, 7, 7)
  pool: bool = False
  dtype: Any = None
  remat: bool = False  # Recompute each conv -> norm stage in the backward pass.

  @nn.compact
  def __call__(self, video):
    if len(self.features) != 6:
      raise ValueError(f'FaceTrunk takes 6 conv widths, got {self.features}')
    _, f2, f3, f4, f5, f6 = self.features
    b, t = video.shape[:2]
    stage = _stage(self.remat)
    pool = functools.partial(_pool, self.pool)
    x = layers.remat(_face_stem, self.remat)(self, video)  # From here on, 2D convs per frame.
    x = pool(stage(self, x, 2, f2, (5, 5), (2, 2), 'SAME'))
    x = stage(self, x, 3, f3, (3, 3), (1, 1), 'SAME')
    x = stage(self, x, 4, f4, (3, 3), (1, 1), 'SAME')
    x = pool(stage(self, x, 5, f5, (3, 3), (1, 1), 'SAME'))
    x = stage(self, x, 6, f6, (3, 3), (1, 1), 'SAME')
    return x.mean(axis=(1, 2)).reshape(b, t, f6)


def _pool(enabled, x):
  """The face trunk's 3 x 3 / 2 max-pool of frames [N, H, W, C], if `enabled`."""
  return layers.max_pool(x, (3, 3), (2, 2)) if enabled else x


def _face_stem(trunk, video):
  """The face trunk's `conv1` (3D, stride 2 in space) -> `norm1` on frames [B, T, H, W, 3],
  then pooled (`pool`): per-frame maps [B * T, H', W', features[0]]."""
  x = FrameStackConv(trunk.features[0], tuple(trunk.kernel), (2, 2), trunk.dtype,
                     name='conv1')(video)
  x = _norm_relu_per_frame(x, trunk.dtype, 'norm1')
  return _pool(trunk.pool, x.reshape((-1,) + x.shape[2:]))


class EmbeddingHead(nn.Module):
  """Per-time-step projection [..., C] -> [..., features]: a 1 x 1 conv, i.e. Dense;
  with `hidden` > 0, Dense(hidden) -> LayerNorm -> ReLU -> Dense(features)."""
  features: int = 128
  hidden: int = 0
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    if self.hidden:
      x = nn.Dense(self.hidden, dtype=self.dtype, name='hidden')(x)
      x = jax.nn.relu(nn.LayerNorm(dtype=self.dtype, name='norm')(x))
    return nn.Dense(self.features, dtype=self.dtype, name='out')(x)


class _TwoHeads(nn.Module):
  """A trunk's features [B, T, C] -> (identity [B, T, D], aux), both heads as float32."""
  embedding: int
  head_hidden: int
  dtype: Any

  @nn.compact
  def __call__(self, features):
    head = functools.partial(EmbeddingHead, self.embedding, self.head_hidden, dtype=self.dtype)
    content = head(name='content_head')(features).astype(jnp.float32)
    identity = head(name='identity_head')(features).astype(jnp.float32)
    return identity, {'trunk': features, 'content': content, 'identity': identity}


class AudioEncoder(nn.Module):
  """Log-mel frames [B, 4 T, F] -> (identity embeddings [B, T, D], aux).

  The audio stream: `AudioTrunk` then the content and identity heads. The
  output is the identity (speaker) embedding per step, time-averaged for
  verification; aux: 'trunk' [B, T, C], 'content' and 'identity' [B, T, D].
  """
  features: Sequence[int] = (16, 32, 64, 64, 64, 128)
  embedding: int = 128
  head_hidden: int = 0
  dtype: Any = None
  remat: bool = False  # The trunk's (`AudioTrunk.remat`).

  @nn.compact
  def __call__(self, mel):
    trunk = AudioTrunk(self.features, dtype=self.dtype, remat=self.remat, name='trunk')(mel)
    return _TwoHeads(self.embedding, self.head_hidden, self.dtype, name='heads')(trunk)


class FaceEncoder(nn.Module):
  """Frames [B, T, H, W, 3] -> (identity embeddings [B, T, D], aux), as `AudioEncoder`."""
  features: Sequence[int] = (16, 32, 64, 64, 64, 128)
  kernel: Sequence[int] = (5, 7, 7)
  pool: bool = False
  embedding: int = 128
  head_hidden: int = 0
  dtype: Any = None
  remat: bool = False  # The trunk's (`FaceTrunk.remat`).

  @nn.compact
  def __call__(self, video):
    trunk = FaceTrunk(self.features, self.kernel, self.pool, dtype=self.dtype,
                      remat=self.remat, name='trunk')(video)
    return _TwoHeads(self.embedding, self.head_hidden, self.dtype, name='heads')(trunk)


def cosine_similarity(x, y, eps=1e-8):
  """x [..., N, D], y [..., M, D] -> cosines [..., N, M], float32."""
  x, y = x.astype(jnp.float32), y.astype(jnp.float32)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
  y = y / jnp.maximum(jnp.linalg.norm(y, axis=-1, keepdims=True), eps)
  return jnp.einsum('...nd,...md->...nm', x, y)


class ScaledCosine(nn.Module):
  """Logits w * cos(x_n, y_m) + b [..., N, M] of x [..., N, D], y [..., M, D].

  w and b are learnt scalars, initialised 10 and -5 (the public trainer's
  `LossScale`). Under a softmax over m the bias cancels (it gets no gradient
  from a cross-entropy); it is kept for the published form and for scores
  read on their own.
  """
  init_scale: float = 10.0
  init_bias: float = -5.0

  @nn.compact
  def __call__(self, x, y):
    scale = self.param('scale', nn.initializers.constant(self.init_scale), (), jnp.float32)
    bias = self.param('bias', nn.initializers.constant(self.init_bias), (), jnp.float32)
    return scale * cosine_similarity(x, y) + bias


class FactorClassifiers(nn.Module):
  """The auxiliary classifiers of the confusion losses: one linear layer each.

  `content_from_identity`: per-step identity embeddings -> `num_content`
  logits (audio and face, one layer per modality); `track_from_content`:
  per-step content embeddings -> `num_tracks` logits (one per modality).
  Returns {'audio_identity', 'face_identity', 'audio_content',
  'video_content'} -> logits, for the four inputs of those names.
  """
  num_content: int
  num_tracks: int
  dtype: Any = None

  @nn.compact
  def __call__(self, audio_identity, face_identity, audio_content, video_content):
    dense = lambda n, name: nn.Dense(n, dtype=self.dtype, name=name)
    return {
        'audio_identity': dense(self.num_content, 'audio_identity_to_content')(audio_identity),
        'face_identity': dense(self.num_content, 'face_identity_to_content')(face_identity),
        'audio_content': dense(self.num_tracks, 'audio_content_to_track')(audio_content),
        'video_content': dense(self.num_tracks, 'video_content_to_track')(video_content),
    }
