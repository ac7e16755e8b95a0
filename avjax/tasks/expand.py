"""Compact batches: cut on the host, expanded on the device.

A task's `preprocess` (numpy, in Grain workers) returns compact features:
uint8 frames, int16 audio spans, small ints (crop starts, labels, flip flags,
boxes). Its `expand(batch)` (jnp, pure, run inside the jitted step) turns a
batch of them into the float batch its model reads, with the functions here;
every random choice was drawn on the host and travels as a small int, so
expanding draws nothing. Each host-side cut (`frame_span`) sits beside its
device-side inverse (`span_windows`).
"""

import jax.numpy as jnp
import numpy as np


def to_float_image(x):
  """uint8 frames -> float32 in [-1, 1]."""
  return x.astype(jnp.float32) / 127.5 - 1.0


def to_float_audio(x):
  """int16 PCM -> float32 in [-1, 1) (as `ops.to_float`)."""
  return x.astype(jnp.float32) / 32768.0


def frame_span(audio, start_frame, num_frames, samples_per_frame, context):
  """Host side: the samples that frames [start_frame, start_frame + num_frames) of a
  clip's per-frame windows read (`ops.frames` with `context`), [num_frames * spf + 2
  context] in `audio`'s dtype: samples [start_frame * spf - context, (start_frame +
  num_frames) * spf + context), zeros beyond the clip's ends. ValueError, naming the
  sizes, unless the clip is whole frames and holds those frames."""
  n = len(audio)
  if n % samples_per_frame:
    raise ValueError(f'{n} samples is not a multiple of {samples_per_frame} per frame')
  if start_frame < 0 or start_frame + num_frames > n // samples_per_frame:
    raise ValueError(f'cannot window audio frames [{start_frame}, {start_frame + num_frames}) '
                     f'of a clip of {n // samples_per_frame} frames')
  first = start_frame * samples_per_frame - context
  span = np.zeros(num_frames * samples_per_frame + 2 * context, audio.dtype)
  lo, hi = max(first, 0), min(first + len(span), n)
  span[lo - first:hi - first] = audio[lo:hi]
  return span


def span_windows(span, samples_per_frame, context):
  """Device side of `frame_span`: spans [..., T * spf + 2 context] -> per-frame windows
  [..., T, spf + 2 context], row t holding span[t * spf : (t + 1) * spf + 2 context]."""
  num_frames, rest = divmod(span.shape[-1] - 2 * context, samples_per_frame)
  if rest or num_frames < 1:
    raise ValueError(f'an audio span of {span.shape[-1]} samples is not whole frames of '
                     f'{samples_per_frame} and {context} samples of context each side')
  index = (np.arange(num_frames)[:, None] * samples_per_frame
           + np.arange(samples_per_frame + 2 * context))
  return span[..., index]


def flip_where(flag, x, axis):
  """x [B, ...] with each example whose `flag` [B] is nonzero flipped along `axis`
  (an axis of the example, counted in x)."""
  flag = jnp.reshape(flag != 0, (-1,) + (1,) * (x.ndim - 1))
  return jnp.where(flag, jnp.flip(x, axis), x)


def box_mask(boxes, height, width):
  """Boxes [..., 4] (y0, x0, y1, x1; end exclusive) -> float32 masks [..., H, W, 1]."""
  inside_y = (jnp.arange(height) >= boxes[..., 0:1]) & (jnp.arange(height) < boxes[..., 2:3])
  inside_x = (jnp.arange(width) >= boxes[..., 1:2]) & (jnp.arange(width) < boxes[..., 3:4])
  return (inside_y[..., :, None] & inside_x[..., None, :])[..., None].astype(jnp.float32)
