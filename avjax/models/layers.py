"""Small building blocks shared by the audio and video encoders.

GroupNorm rather than BatchNorm throughout: the trainer keeps no mutable
collections.
"""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax


class NormAct(nn.Module):
  """GroupNorm (per example over its last three axes) -> LeakyReLU(0.2).

  Leading axes beyond those are all batch axes, e.g. [B, T, H, W, C].
  """
  max_groups: int = 8
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    groups = math.gcd(x.shape[-1], self.max_groups)
    y = nn.GroupNorm(groups, dtype=self.dtype)(x.reshape(-1, *x.shape[-3:]))
    return jax.nn.leaky_relu(y, 0.2).reshape(x.shape[:-3] + y.shape[-3:])


class ConvBlock(nn.Module):
  """Conv -> GroupNorm -> LeakyReLU, in 1D or 2D (given by `len(kernel)`).

  The norm (see `NormAct`) expects 2D inputs [..., H, W, C]. `norm=False` gives Conv (with bias) -> LeakyReLU: a per-example norm would
  erase the input's overall gain, e.g. how loud an audio window is.
  """
  features: int
  kernel: Sequence[int]
  strides: Sequence[int]
  norm: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, tuple(self.kernel), strides=tuple(self.strides),
                padding='SAME', use_bias=not self.norm, dtype=self.dtype)(x)
    if self.norm:
      return NormAct(dtype=self.dtype)(x)
    return jax.nn.leaky_relu(x, 0.2)


def remat(target, enabled, **kwargs):
  """`nn.remat(target, **kwargs)` if `enabled`, else `target` (`config.remat`).

  `target` is a Module class or a function whose first argument is a module
  (`static_argnums` counts it as 0). A rematerialised block keeps only its
  inputs for the backward pass and recomputes its insides there: less memory
  for one more forward pass of the block. Parameter names and shapes do not
  change, so checkpoints and exports load either way.
  """
  return nn.remat(target, **kwargs) if enabled else target


def depth_to_space(x, block=2):
  """[..., H, W, block*block*C] -> [..., H*block, W*block, C] (sub-pixel upsampling)."""
  *lead, h, w, c = x.shape
  x = x.reshape(*lead, h, w, block, block, c // block**2)
  x = x.swapaxes(-4, -3)  # [..., H, block, W, block, C]
  return x.reshape(*lead, h * block, w * block, c // block**2)
