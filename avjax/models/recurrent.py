"""A matmul-bound (bi)directional GRU, a drop-in for flax's `nn.RNN(nn.GRUCell)`.

The input projections of every step and both directions are one GEMM before the
recurrence; each step then does one batched [H, 3H] GEMM (the three gates, both
directions stacked); a hand-written backward pass does one GEMM a step for the
hidden state's gradient and leaves the weight gradients to one GEMM after the
loop (in data-parallel SPMD their all-reduce then happens once, not per step).

Parameters keep the names, shapes and initial values of flax's, so checkpoints
of either load in the other (see `gru`): per direction a `GRUCell_<i>` holding
{ir, iz, in}: input kernels [D, H] and biases, {hr, hz}: recurrent kernels
[H, H], and hn: recurrent kernel and bias.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class _DenseParams(nn.Module):
  """The parameters of an `nn.Dense(features)` on `in_features` inputs: (kernel, bias)."""
  in_features: int
  features: int
  use_bias: bool
  kernel_init: Any

  @nn.compact
  def __call__(self):
    kernel = self.param('kernel', self.kernel_init, (self.in_features, self.features))
    bias = (self.param('bias', nn.initializers.zeros, (self.features,)) if self.use_bias
            else None)
    return kernel, bias


class GRUCell(nn.Module):
  """The parameters of an `nn.GRUCell(features)` on `in_features` inputs (its names,
  shapes and initialisers), gates concatenated in (r, z, n) order:
  (w_i [D, 3H], b_i [3H], w_h [H, 3H], b_hn [H])."""
  in_features: int
  features: int

  @nn.compact
  def __call__(self):
    inputs = functools.partial(_DenseParams, self.in_features, self.features, True,
                               nn.initializers.lecun_normal())
    hidden = functools.partial(_DenseParams, self.features, self.features,
                               kernel_init=nn.initializers.orthogonal())
    # Created in nn.GRUCell's order.
    ir, hr = inputs(name='ir')(), hidden(False, name='hr')()
    iz, hz = inputs(name='iz')(), hidden(False, name='hz')()
    in_, hn = inputs(name='in')(), hidden(True, name='hn')()
    return (jnp.concatenate([ir[0], iz[0], in_[0]], 1), jnp.concatenate([ir[1], iz[1], in_[1]]),
            jnp.concatenate([hr[0], hz[0], hn[0]], 1), hn[1])


def gru(x, features, bidirectional=True, lengths=None, dtype=None):
  """A GRU over x [B, T, D] -> [B, T, H], or [B, T, 2H] (forward, backward) if bidirectional.

  Called inside a module's compact method, whose parameters then hold
  `GRUCell_0` (forward) and `GRUCell_1` (backward), where flax's
  `nn.Bidirectional(nn.RNN(nn.GRUCell(...)), ...)` built there puts them. The
  same function as that (zero initial state; `dtype` the matmuls' and gates'
  dtype, the state kept in float32). `lengths` [B]: each sequence is left-aligned
  with that many valid steps; the backward direction starts at its last valid
  step, as with flax's `seq_lengths`. Outputs on padding are meaningless (zeros
  backward).
  """
  b, t, d = x.shape
  k, h = (2 if bidirectional else 1), features
  cells = [GRUCell(d, h, name=f'GRUCell_{i}')() for i in range(k)]
  w_i, b_i, w_h, b_hn = (jnp.stack(p) for p in zip(*cells))  # Directions first.
  x, w_i, b_i, w_h, b_hn = nn.dtypes.promote_dtype(x, w_i, b_i, w_h, b_hn, dtype=dtype)
  # Every step's input projection, both directions: one [B T, D] x [D, K 3H] GEMM.
  w_i = w_i.transpose(1, 0, 2).reshape(d, k * 3 * h)
  xi = (x.reshape(b * t, d) @ w_i + b_i.reshape(-1)).reshape(b, t, k, 3 * h)
  xi = xi.transpose(1, 2, 0, 3)  # [T, K, B, 3H]: time-major.
  valid = jnp.ones((t, k, b), bool)
  if bidirectional:  # The backward direction runs over reversed time.
    xi = jnp.stack([xi[:, 0], xi[::-1, 1]], 1)
    if lengths is not None:  # It starts at the last valid step.
      valid = jnp.stack([valid[:, 0], jnp.arange(t)[::-1, None] < lengths], 1)
  hs = _recurrence(xi, w_h, b_hn, valid)  # [T, K, B, H], float32.
  if bidirectional:
    hs = jnp.stack([hs[:, 0], hs[::-1, 1]], 1)
  return hs.transpose(2, 0, 1, 3).reshape(b, t, k * h)


def _step(w_h, b_hn, h, xi):
  """One GRU step of every direction: state h [K, B, H] (float32), input projections
  xi [K, B, 3H] -> (new state, (r, z, n, the hidden projection of n's gate))."""
  gh = jnp.einsum('kbh,khg->kbg', h.astype(xi.dtype), w_h)
  xr, xz, xn = jnp.split(xi, 3, -1)
  hr, hz, hn = jnp.split(gh, 3, -1)
  hn = hn + b_hn[:, None]
  r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
  n = jnp.tanh(xn + r * hn)
  return (1.0 - z) * n + z * h, (r, z, n, hn)


def _scan(w_h, b_hn, xi, valid):
  """The forward recurrence: states [T, K, B, H] and the gates the backward pass reads.
  A step whose `valid` [K, B] is False leaves the zero initial state in place."""
  def body(h, inputs):
    xi_t, valid_t = inputs
    new, gates = _step(w_h, b_hn, h, xi_t)
    new = jnp.where(valid_t[..., None], new, 0.0)
    return new, (new, gates)

  h0 = jnp.zeros(xi.shape[1:-1] + (w_h.shape[1],), jnp.float32)
  _, (hs, gates) = jax.lax.scan(body, h0, (xi, valid))
  return hs, gates


@jax.custom_vjp
def _recurrence(xi, w_h, b_hn, valid):
  """States [T, K, B, H] (float32) of the GRU recurrence on input projections
  xi [T, K, B, 3H], recurrent kernels w_h [K, H, 3H] and biases b_hn [K, H]."""
  return _scan(w_h, b_hn, xi, valid)[0]


def _recurrence_fwd(xi, w_h, b_hn, valid):
  hs, gates = _scan(w_h, b_hn, xi, valid)
  return hs, (w_h, b_hn, valid, hs, gates)


def _recurrence_bwd(residuals, d_hs):
  """Backward through time, one GEMM a step (the state's gradient); the gradients
  of the gates are stacked, and w_h's and b_hn's are taken from them after the loop."""
  w_h, b_hn, valid, hs, gates = residuals
  dtype = w_h.dtype  # The matmuls' (xi's, as `gru` promotes them together).
  h_prev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]])
  f32 = lambda a: a.astype(jnp.float32)

  def body(dh, inputs):
    dy, h, (r, z, n, hn), valid_t = inputs
    r, z, n, hn = f32(r), f32(z), f32(n), f32(hn)
    dh = jnp.where(valid_t[..., None], dh + dy, 0.0)
    dn = dh * (1.0 - z) * (1.0 - n * n)
    dr = dn * hn * r * (1.0 - r)
    dz = dh * (h - n) * z * (1.0 - z)
    d_gh = jnp.concatenate([dr, dz, dn * r], -1).astype(dtype)
    d_h = dh * z + jnp.einsum('kbg,khg->kbh', d_gh, w_h, preferred_element_type=jnp.float32)
    return d_h, (jnp.concatenate([dr, dz, dn], -1).astype(dtype), d_gh)

  dh0 = jnp.zeros_like(hs[0])
  _, (d_xi, d_gh) = jax.lax.scan(body, dh0, (d_hs, h_prev, gates, valid), reverse=True)
  d_w_h = jnp.einsum('tkbh,tkbg->khg', h_prev.astype(dtype), d_gh,
                     preferred_element_type=jnp.float32)
  d_b_hn = f32(d_gh[..., 2 * w_h.shape[1]:]).sum((0, 2))
  return d_xi, d_w_h.astype(w_h.dtype), d_b_hn.astype(b_hn.dtype), None


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)
