"""Small building blocks shared by the audio and video encoders.

GroupNorm rather than BatchNorm throughout: the trainer keeps no mutable
collections. `Conv` and `max_pool` compute `nn.Conv`'s and `nn.max_pool`'s
functions with less work on an accelerator, and `Conv` 3-D convs faster on a
CPU (see each).
"""

import functools
import itertools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


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
    x = Conv(self.features, tuple(self.kernel), strides=tuple(self.strides),
             use_bias=not self.norm, dtype=self.dtype)(x)
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


class Conv(nn.Module):
  """`nn.Conv` (its parameters, their names, shapes and initialisers, and its
  function) without the work that only ever meets padding.

  Where a map is smaller than the kernel (a 3x3 'SAME' conv on a 1x1 or 2x2
  map), some taps read padding at every output position: the kernel is clipped
  to the taps that can reach the map (a 3x3 kernel on a 1x1 map is its centre,
  a 1x1 conv); and where the map then has fewer positions than the clipped
  kernel has taps (a 3x3 kernel on a 2x2 map), the conv is one matmul by the
  kernel laid out per output position (16 products per input and output
  channel for 2x2, against the padded conv's 36). On a CPU a 3-D conv is the
  sum over its time taps of 2-D convs (`_time_tap_conv`). Inputs
  [..., *spatial, C] with any number of batch axes, as `nn.Conv` takes them.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | None = None  # Default: 1 on every axis.
  padding: str | Sequence[tuple[int, int]] = 'SAME'
  use_bias: bool = True
  dtype: Any = None
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    window = tuple(self.kernel_size)
    lead = x.shape[:-len(window) - 1]
    x = x.reshape((-1,) + x.shape[len(lead):])
    kernel = self.param('kernel', self.kernel_init, window + (x.shape[-1], self.features),
                        jnp.float32)
    bias = (self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv(x, kernel, tuple(self.strides or (1,) * len(window)), self.padding)
    if bias is not None:
      y = y + bias
    return y.reshape(lead + y.shape[1:])


def conv(x, kernel, strides, padding):
  """`lax.conv_general_dilated` of x [N, *spatial, C] by kernel [*window, C, F]
  (channels last; `padding` 'SAME', 'VALID' or (low, high) pairs), done as `Conv`
  says: the kernel clipped to the taps that reach the map, a matmul where
  the map has fewer positions than that kernel has taps, and on a CPU a 3-D
  conv as 2-D ones (`_time_tap_conv`)."""
  spatial, window = x.shape[1:-1], kernel.shape[:-2]
  pads = (lax.padtype_to_pads(spatial, window, strides, padding) if isinstance(padding, str)
          else [tuple(p) for p in padding])
  outs = [(n + lo + hi - k) // s + 1 for n, k, s, (lo, hi) in zip(spatial, window, strides, pads)]
  taps = [_taps(*a) for a in zip(spatial, window, strides, pads, outs)]
  kernel = kernel[tuple(slice(first, last + 1) for first, last in taps)]
  pads = [(lo - first, hi - (k - 1 - last))
          for (lo, hi), k, (first, last) in zip(pads, window, taps)]
  if math.prod(spatial) < math.prod(kernel.shape[:-2]):
    return _matmul_conv(x, kernel, strides, pads, outs)
  if len(spatial) == 3 and jax.default_backend() == 'cpu':
    return _time_tap_conv(x, kernel, strides, pads, outs[0])
  return _lax_conv(x, kernel, strides, pads)


def _lax_conv(x, kernel, strides, pads):
  """`lax.conv_general_dilated`, channels last, explicit (low, high) pads."""
  nd = x.ndim - 2
  numbers = lax.ConvDimensionNumbers((0, nd + 1) + tuple(range(1, nd + 1)),
                                     (nd + 1, nd) + tuple(range(nd)),
                                     (0, nd + 1) + tuple(range(1, nd + 1)))
  return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=numbers)


def _time_tap_conv(x, kernel, strides, pads, steps):
  """A 3-D conv of x [N, T, H, W, C] as the sum over the kernel's time taps d of the
  2-D conv of frames d, d + s, ... (s the time stride; `steps` outputs) by tap d's
  [H, W] kernel, the frames folded into the batch. XLA:CPU runs the 3-D conv 3-4x
  slower than this (docs/performance.md, "3-D convs on a CPU")."""
  n, _, h, w, c = x.shape
  stride = strides[0]
  x = jnp.pad(x, ((0, 0), pads[0], (0, 0), (0, 0), (0, 0)))
  frames = [lax.slice_in_dim(x, d, d + (steps - 1) * stride + 1, stride, axis=1)
            for d in range(kernel.shape[0])]
  y = sum(_lax_conv(f.reshape(n * steps, h, w, c), k, strides[1:], pads[1:])
          for f, k in zip(frames, kernel))
  return y.reshape((n, steps) + y.shape[1:])


def _taps(size, k, stride, pads, outs):
  """(first, last): the span of one axis's kernel taps that read the map at some output."""
  if size >= k:
    return 0, k - 1
  used = [t for t in range(k) if any(0 <= i * stride - pads[0] + t < size for i in range(outs))]
  return used[0], used[-1]


def _matmul_conv(x, kernel, strides, pads, outs):
  """The conv as x [N, *spatial, C] times a [*spatial, C, *outs, F] matrix whose
  (input position, output position) block is the kernel tap joining them, or 0."""
  nd = len(outs)
  for axis, (n, s, (lo, _), o) in enumerate(zip(x.shape[1:-1], strides, pads, outs)):
    # Output i reads input a through tap a - i s + lo: a window of the kernel
    # padded with n zeros each side.
    padded = jnp.pad(kernel, [(n, n) if a == axis else (0, 0) for a in range(kernel.ndim)])
    kernel = jnp.stack([lax.slice_in_dim(padded, n + lo - i * s, 2 * n + lo - i * s, axis=axis)
                        for i in range(o)], -1)
  return jnp.tensordot(x, jnp.moveaxis(kernel, nd + 1, -1), nd + 1)


def max_pool(x, window, strides, padding='SAME'):
  """`nn.max_pool(x, window, strides, padding)`: the same function of x [..., *spatial, C]
  (-inf padding), whose backward pass is selects, not the scatter XLA makes of
  `reduce_window`'s.

  Non-overlapping windows (window == strides) are a reshape and a max. Other
  windows are `lax.reduce_window` forward; backward, each window's gradient goes
  to its first maximum (in row-major order), gathered from every window offset
  by a strided pad.
  """
  window, strides = tuple(window), tuple(strides)
  lead = x.shape[:-len(window) - 1]
  x = x.reshape((-1,) + x.shape[len(lead):])
  full_window, full_strides = (1,) + window + (1,), (1,) + strides + (1,)
  pads = (lax.padtype_to_pads(x.shape, full_window, full_strides, padding)
          if isinstance(padding, str) else [(0, 0)] + [tuple(p) for p in padding] + [(0, 0)])
  if window == strides:
    y = _blocks_max(x, full_window, pads)
  else:
    y = _window_max(x, full_window, full_strides, tuple(map(tuple, pads)))
  return y.reshape(lead + y.shape[1:])


def _blocks_max(x, window, pads):
  """Max over non-overlapping windows (strides = window) as a reshape and a max."""
  outs = [(n + lo + hi - k) // k + 1 for n, k, (lo, hi) in zip(x.shape, window, pads)]
  x = jnp.pad(x, pads, constant_values=-jnp.inf)[tuple(slice(o * k) for o, k in zip(outs, window))]
  x = x.reshape([d for o, k in zip(outs, window) for d in (o, k)])
  return x.max(axis=tuple(range(1, 2 * len(outs), 2)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _window_max(x, window, strides, pads):
  return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, pads)


def _window_max_fwd(x, window, strides, pads):
  y = _window_max(x, window, strides, pads)
  return y, (x, y)


def _window_max_bwd(window, strides, pads, residuals, g):
  x, y = residuals
  padded = jnp.pad(x, pads, constant_values=-jnp.inf)
  acc = jnp.promote_types(x.dtype, jnp.float32)  # Sums of bfloat16 gradients in float32.
  dx = jnp.zeros(padded.shape, acc)
  free = jnp.ones(y.shape, bool)  # Windows whose maximum is still to be found.
  for offset in itertools.product(*map(range, window)):
    limit = [o + (m - 1) * s + 1 for o, m, s in zip(offset, y.shape, strides)]
    hit = free & (lax.slice(padded, offset, limit, strides) == y)
    free = free & ~hit
    spread = [(o, n - l, s - 1) for o, n, l, s in zip(offset, padded.shape, limit, strides)]
    dx = dx + lax.pad(jnp.where(hit, g, 0).astype(acc), jnp.zeros((), acc), spread)
  start = [lo for lo, _ in pads]
  return (lax.slice(dx, start, [a + n for a, n in zip(start, x.shape)]).astype(x.dtype),)


_window_max.defvjp(_window_max_fwd, _window_max_bwd)
