"""Downstream heads that probes train on top of per-frame encoder features."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from avjax.models import recurrent


class BGRUHead(nn.Module):
  """A bidirectional GRU over per-frame features [B, L, D], then a linear read-out.

  Each sequence is left-aligned with `lengths` [B] valid frames; padding after
  them is ignored. `per_frame=False` returns logits [B, num_outputs] from the
  mean of the valid frames' GRU outputs; `per_frame=True` returns outputs
  [B, L, num_outputs], one per frame (meaningless on padding).
  """
  num_outputs: int
  hidden: int = 64
  per_frame: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, x, lengths):
    h = recurrent.gru(x, self.hidden, lengths=lengths, dtype=self.dtype)
    if not self.per_frame:
      mask = (jnp.arange(x.shape[1]) < lengths[:, None]).astype(h.dtype)[..., None]
      h = (h * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
    return nn.Dense(self.num_outputs, dtype=self.dtype, name='out')(h).astype(jnp.float32)
