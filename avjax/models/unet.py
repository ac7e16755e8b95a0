"""The separation u-net of Owens & Efros (2018) on a mixture spectrogram.

Strided 4x4 convs encode the mixture's spectrogram features; transposed
convs decode them with U-Net skips; per-source heads predict a normalised
log-magnitude and phase through tanh. Features of another network (the sync
network's, in the paper) condition chosen encoder levels: each is resized
along time to that level's length, tiled over frequency and concatenated,
so the decoder also sees it through that level's skip.
"""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from avjax.models import layers

PUBLISHED_FEATURES = (64, 128, 256, 512, 512, 512, 512, 512, 512)
# The first two levels halve frequency only, as in andrewowens/multisensory.
PUBLISHED_TIME_STRIDES = (1, 1, 2, 2, 2, 2, 2, 2, 2)


def tile_condition(cond, time_length, freq_length):
  """cond [B, T_c, D] -> [B, time_length, freq_length, D]: linear resize in time, tiled.

  Downsampling antialiases (`jax.image.resize`), so no time step is skipped.
  """
  b, _, d = cond.shape
  resized = jax.image.resize(cond, (b, time_length, d), 'linear')
  return jnp.broadcast_to(resized[:, :, None], (b, time_length, freq_length, d))


class SpectrogramUNet(nn.Module):
  """Mixture features [B, T, F, C] (+ conditioning) -> [B, num_sources, T, F, 2].

  Encoder level l (1-based, l = 1..L with L = len(features)) is a 4x4 conv of
  width features[l-1], stride (time_strides[l-1], 2), then GroupNorm (the
  paper's batch norm; none at level 1, which keeps the input's absolute
  level) and LeakyReLU(0.2). Each decoder step is a 4x4 transposed conv back
  to the previous level's size and width, GroupNorm, LeakyReLU, then
  concatenation with that level's output (the skip). Each of `num_sources`
  heads is a transposed conv to the input size with 2 channels (log-magnitude,
  phase) through tanh, so outputs lie in [-1, 1]: targets must be normalised
  to that range.

  `__call__(x, cond=())`: `cond` holds one [B, T_c, D_i] tensor per entry of
  `cond_levels`, concatenated (see `tile_condition`) to that level's output;
  the paper uses the sync network's features at levels (3, 4, 5). T must be
  divisible by prod(time_strides) and F by 2^L; other sizes raise ValueError
  (crop or pad the spectrogram in the task).
  """
  features: Sequence[int] = PUBLISHED_FEATURES
  time_strides: Sequence[int] = PUBLISHED_TIME_STRIDES
  cond_levels: Sequence[int] = ()
  num_sources: int = 2
  dtype: Any = None
  remat: bool = False  # Recompute each level in the backward pass (`layers.remat`).

  @nn.compact
  def __call__(self, x, cond=()):
    strides = self._check(x.shape, cond)
    conditions = dict(zip(self.cond_levels, cond))
    down = layers.remat(layers.ConvBlock, self.remat)
    up = layers.remat(_up_level, self.remat, static_argnums=(3, 4))
    skips = []
    for level, (f, stride) in enumerate(zip(self.features, strides), start=1):
      x = down(f, (4, 4), stride, norm=level > 1, dtype=self.dtype, name=f'down{level}')(x)
      if level in conditions:
        c = tile_condition(conditions[level], x.shape[1], x.shape[2]).astype(x.dtype)
        x = jnp.concatenate([x, c], -1)
      skips.append(x)
    for level in range(len(self.features) - 1, 0, -1):  # Up to level `level`'s size.
      x = up(self, x, skips[level - 1], level, strides[level])
    heads = [nn.ConvTranspose(2, (4, 4), strides[0], padding='SAME', dtype=self.dtype,
                              name=f'head{s}')(x)
             for s in range(self.num_sources)]
    return jnp.tanh(jnp.stack(heads, axis=1))

  def _check(self, shape, cond):
    """Validates the spec against the input shape; returns the per-level strides."""
    num_levels = len(self.features)
    if len(self.time_strides) != num_levels:
      raise ValueError(f'{len(self.time_strides)} time strides for {num_levels} levels')
    bad = [l for l in self.cond_levels if not 1 <= l <= num_levels]
    if bad or len(set(self.cond_levels)) != len(self.cond_levels):
      raise ValueError(f'cond_levels {tuple(self.cond_levels)} must be distinct levels in '
                       f'1..{num_levels}')
    if len(cond) != len(self.cond_levels):
      raise ValueError(f'{len(cond)} conditioning tensors for cond_levels '
                       f'{tuple(self.cond_levels)}')
    if len(shape) != 4:
      raise ValueError(f'expected [B, T, F, C] features, got shape {shape}')
    time_factor, freq_factor = math.prod(self.time_strides), 2**num_levels
    if shape[1] % time_factor or shape[2] % freq_factor:
      raise ValueError(f'input of {shape[1]} frames x {shape[2]} bins: {num_levels} levels '
                       f'need frames divisible by {time_factor} and bins by {freq_factor}')
    return [(s, 2) for s in self.time_strides]


def _up_level(unet, x, skip, level, stride):
  """A decoder step to level `level`'s size and width: transposed conv (`stride`, the
  next level's) -> norm -> LeakyReLU, concatenated with that level's output `skip`."""
  x = nn.ConvTranspose(unet.features[level - 1], (4, 4), stride, padding='SAME',
                       use_bias=False, dtype=unet.dtype, name=f'up{level}')(x)
  x = layers.NormAct(dtype=unet.dtype, name=f'norm_up{level}')(x)
  return jnp.concatenate([x, skip], -1)
