"""The two-stream face/voice network of Nagrani, Chung, Albanie & Zisserman (2020).

"Disentangled speech embeddings using cross-modal self-supervision" (ICASSP
2020, arXiv 2002.08742), after the group's public trainer
(joonson/syncnet_trainer, `models/SyncNetModelFBank.py`): an audio trunk over
log-mel frames and a face trunk over video frames, each giving one feature
vector per video frame, each feeding a **content** head and an **identity**
head. `ScaledCosine` (w * cos + b, the trainer's `LossScale`: w = 10, b = -5
at the start; w lower for shorter embeddings, `initial_scale`) turns pairs of
embeddings into logits.

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

Heads (`EmbeddingHead`): 1 x 1 projections per time step, i.e. Dense layers,
each ending in `RunningNorm` (BatchNorm over clips and steps, no shift): the
embeddings are centred and spread from initialisation on. With `hidden` > 0,
the trainer's two-layer head (1 x 1 conv -> BatchNorm1d -> ReLU -> 1 x 1
conv), `RunningNorm` for its BatchNorm1d. Published: hidden 512, output 1024.

GroupNorm stands in for the trainer's BatchNorm in the trunks: in the audio
trunk per example over its (time, frequency) positions, in the face trunk per
frame over its (H, W) positions, so a face step depends only on its 5-frame
neighbourhood. Per-example norms do not centre across clips: the trunk ends
in ReLU, so its features share one positive offset and the embeddings of
different clips start nearly parallel (mean cosine 0.93-0.98 at initialisation).
The heads' `RunningNorm` removes that offset. Its running averages are
parameters set from batches, not trained (`RunningNorm`); every
`apply({'params': ...}, x)` reads them, so exports and evaluation give the
embeddings of one function, and `train=True` (the disentangle task's loss)
normalises by the batch's statistics and hands the new averages to the
trainer.
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


STATISTICS = 'statistics'  # The collection `RunningNorm` writes new running averages to.


class RunningNorm(nn.Module):
  """BatchNorm over every axis but the last, its running averages kept as parameters.

  `mean` and `var` [C] start as the statistics of the batch `init` sees
  (data-dependent initialisation: centred from the start) and are read
  through stop_gradient, so no optimizer trains them. `train=False`
  normalises by them; `train=True` by the batch's own statistics (over the
  positions `where` [...] (bool) is True, where given), and when
  the `STATISTICS` collection is mutable writes there the new running
  averages, `momentum` old + (1 - `momentum`) batch, for the caller to set
  (`avjax.train.train_step`). A learnt `scale` per feature; no shift. float32.

  `momentum` 0.5, not BatchNorm's usual 0.9-0.99: batches of 16 clips agree
  closely (their means 0.04 std apart in the default disentangle run), while
  the heads' raw outputs, a shared offset of several standard deviations,
  drift as the trunk trains (0.03-0.2 std a step at learning rate 1e-3). A
  ten-step average lagged by half a standard deviation there, and evaluation
  lost what training had learnt (content loss 2.6 by running averages, 1.1 by
  batch statistics; 1.13 and 1.12 at 0.5). The lag fades as the learning rate
  decays.
  """
  momentum: float = 0.5
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x, train=False, where=None):
    x = x.astype(jnp.float32)
    axes = tuple(range(x.ndim - 1))
    where = None if where is None else jnp.broadcast_to(where[..., None], x.shape)
    batch_mean = x.mean(axes, where=where)
    batch_var = jnp.square(x - batch_mean).mean(axes, where=where)
    running_mean = self.param('mean', lambda _, v: v, jax.lax.stop_gradient(batch_mean))
    running_var = self.param('var', lambda _, v: v, jax.lax.stop_gradient(batch_var))
    scale = self.param('scale', nn.initializers.ones, (x.shape[-1],), jnp.float32)
    running_mean, running_var = jax.lax.stop_gradient((running_mean, running_var))
    if train and self.is_mutable_collection(STATISTICS):
      average = lambda old, new: self.momentum * old + (1 - self.momentum) * new
      new = jax.lax.stop_gradient((batch_mean, batch_var))
      self.put_variable(STATISTICS, 'mean', average(running_mean, new[0]))
      self.put_variable(STATISTICS, 'var', average(running_var, new[1]))
    mean, var = (batch_mean, batch_var) if train else (running_mean, running_var)
    return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale


class EmbeddingHead(nn.Module):
  """Per-time-step projection [..., C] -> [..., features]: a 1 x 1 conv (Dense), then
  `RunningNorm`; with `hidden` > 0, Dense(hidden) -> `RunningNorm` -> ReLU first."""
  features: int = 128
  hidden: int = 0
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train=False, where=None):
    if self.hidden:
      x = nn.Dense(self.hidden, use_bias=False, dtype=self.dtype, name='hidden')(x)
      x = jax.nn.relu(RunningNorm(name='norm')(x, train, where))
    x = nn.Dense(self.features, use_bias=False, dtype=self.dtype, name='out')(x)
    return RunningNorm(name='out_norm')(x, train, where)


class _TwoHeads(nn.Module):
  """A trunk's features [B, T, C] -> (identity [B, T, D], aux), both heads as float32."""
  embedding: int
  head_hidden: int
  dtype: Any

  @nn.compact
  def __call__(self, features, train=False, where=None):
    head = functools.partial(EmbeddingHead, self.embedding, self.head_hidden, dtype=self.dtype)
    content = head(name='content_head')(features, train, where)
    identity = head(name='identity_head')(features, train, where)
    return identity, {'trunk': features, 'content': content, 'identity': identity}


class AudioEncoder(nn.Module):
  """Log-mel frames [B, 4 T, F] -> (identity embeddings [B, T, D], aux).

  The audio stream: `AudioTrunk` then the content and identity heads. The
  output is the identity (speaker) embedding per step, time-averaged for
  verification; aux: 'trunk' [B, T, C], 'content' and 'identity' [B, T, D].
  `train`: the heads' `RunningNorm` by batch statistics (else by its running
  averages, as every export and evaluation).
  """
  features: Sequence[int] = (16, 32, 64, 64, 64, 128)
  embedding: int = 128
  head_hidden: int = 0
  dtype: Any = None
  remat: bool = False  # The trunk's (`AudioTrunk.remat`).

  @nn.compact
  def __call__(self, mel, train=False):
    trunk = AudioTrunk(self.features, dtype=self.dtype, remat=self.remat, name='trunk')(mel)
    return _TwoHeads(self.embedding, self.head_hidden, self.dtype, name='heads')(trunk, train)


class FaceEncoder(nn.Module):
  """Frames [B, T, H, W, 3] -> (identity embeddings [B, T, D], aux), as `AudioEncoder`;
  `where` [B, T] (bool): the steps whose batch statistics `train` normalises by."""
  features: Sequence[int] = (16, 32, 64, 64, 64, 128)
  kernel: Sequence[int] = (5, 7, 7)
  pool: bool = False
  embedding: int = 128
  head_hidden: int = 0
  dtype: Any = None
  remat: bool = False  # The trunk's (`FaceTrunk.remat`).

  @nn.compact
  def __call__(self, video, train=False, where=None):
    trunk = FaceTrunk(self.features, self.kernel, self.pool, dtype=self.dtype,
                      remat=self.remat, name='trunk')(video)
    return _TwoHeads(self.embedding, self.head_hidden, self.dtype, name='heads')(
        trunk, train, where)


def cosine_similarity(x, y, eps=1e-8):
  """x [..., N, D], y [..., M, D] -> cosines [..., N, M], float32."""
  x, y = x.astype(jnp.float32), y.astype(jnp.float32)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
  y = y / jnp.maximum(jnp.linalg.norm(y, axis=-1, keepdims=True), eps)
  return jnp.einsum('...nd,...md->...nm', x, y)


def initial_scale(embedding):
  """The logit scale w to start from: the trainer's 10 at its 1024 dims, 10 sqrt(D / 1024)
  at D dims. Random cosines of D-dim embeddings spread with std 1 / sqrt(D), so the first
  logits spread as the trainer's do (std 0.31) and the first losses sit at chance. A
  spread of 1 (w = sqrt(D)) starts 0.3-0.5 nats above chance at batch 16, and the
  identity loss of the default disentangle run spends its first 100-150 steps coming
  back down (`both`, seeds 0-2, identity loss at step 300: 2.57-2.65 at w = 8,
  2.44-2.48 at w = 2.5; ln 16 = 2.77)."""
  return 10.0 * (float(embedding) / 1024) ** 0.5


class ScaledCosine(nn.Module):
  """Logits w * cos(x_n, y_m) + b [..., N, M] of x [..., N, D], y [..., M, D].

  w and b are learnt scalars, initialised `init_scale` and -5 (the public
  trainer's `LossScale`: 10 and -5; the disentangle task starts w at
  `initial_scale` of its embedding size). w is learnt as log w (`log_scale`,
  as CLIP's temperature): Adam moves a parameter by about its learning rate a
  step, which would leave a linear w near 10 for a whole run, and in log
  space lets it change by a factor e in 1/lr steps. Under a softmax over m
  the bias cancels (it gets no gradient from a cross-entropy); it is kept for
  the published form and for scores read on their own.
  """
  init_scale: float = 10.0
  init_bias: float = -5.0

  @nn.compact
  def __call__(self, x, y):
    log_scale = self.param('log_scale', nn.initializers.constant(jnp.log(self.init_scale)), (),
                           jnp.float32)
    bias = self.param('bias', nn.initializers.constant(self.init_bias), (), jnp.float32)
    return jnp.exp(log_scale) * cosine_similarity(x, y) + bias


class MatchingAdversary(nn.Module):
  """An adversary of the confusion losses that matches: x [..., N, D], y [..., M, D] ->
  logits [..., N, M], `ScaledCosine` (from `initial_scale(features)`) of a linear
  projection of each to `features`."""
  features: int
  dtype: Any = None

  @nn.compact
  def __call__(self, x, y):
    x = nn.Dense(self.features, dtype=self.dtype, name='x_projection')(x)
    y = nn.Dense(self.features, dtype=self.dtype, name='y_projection')(y)
    # Named by its class, which test_speed knows for its float32 cosines.
    return ScaledCosine(initial_scale(self.features))(x, y)


class ClassAdversary(nn.Module):
  """An adversary of the confusion losses that classifies: a linear classifier per
  modality, (x [..., D], y [..., D]) -> (logits [..., num_classes], logits of y)."""
  num_classes: int
  dtype: Any = None

  @nn.compact
  def __call__(self, x, y):
    return (nn.Dense(self.num_classes, dtype=self.dtype, name='x_classifier')(x),
            nn.Dense(self.num_classes, dtype=self.dtype, name='y_classifier')(y))
