"""A hand-crafted sync detector: the sync pretext's non-learned baseline.

Is this audio track aligned with the video, or shifted? The detector
correlates each track's loudness (log RMS of its samples between two
consecutive frames) with the motion energy of every cell of a `grid` x `grid`
grid (the mean absolute difference of those frames over the cell), and keeps
each track's best cell; the track whose best cell correlates more is called
aligned. It learns nothing and reads no mask: it shows what motion and
loudness alone tell, on whatever frames it is given (those the network sees,
or every frame).
"""

import numpy as np

from avjax.data import ops


def _cell_means(x, grid, axis):
  """Means of `grid` near-equal blocks of x along `axis`."""
  size = x.shape[axis]
  edges = np.arange(grid) * size // grid
  counts = np.diff(np.append(edges, size)).reshape((-1,) + (1,) * (x.ndim - 1 - axis))
  return np.add.reduceat(x, edges, axis=axis) / counts


def cell_motion(video, grid=8):
  """Frames [N, T, H, W, C] -> motion energy [N, T - 1, grid * grid]: the mean absolute
  difference of consecutive frames in each cell of a `grid` x `grid` grid (row-major)."""
  diff = np.abs(np.diff(np.asarray(video, np.float32), axis=1)).mean(-1)  # [N, T-1, H, W]
  cells = _cell_means(_cell_means(diff, grid, 2), grid, 3)
  return cells.reshape(cells.shape[:2] + (-1,))


def loudness(audio, num_frames, frame_stride=1):
  """Audio [..., S] of a window of frames, from its first frame's start, of which every
  `frame_stride`-th is shown (`num_frames` of them) -> log RMS [..., num_frames - 1]:
  interval i holds the audio of the frames after shown frame i up to shown frame
  i + 1, the span in which the motion between them happened."""
  audio = np.asarray(audio)
  audio = ops.to_float(audio) if audio.dtype == np.int16 else audio.astype(np.float32)
  span = frame_stride * ops.SAMPLES_PER_FRAME
  first = ops.SAMPLES_PER_FRAME
  spans = audio[..., first:first + span * (num_frames - 1)].reshape(
      audio.shape[:-1] + (num_frames - 1, span))
  return 0.5 * np.log((spans ** 2).mean(-1) + 1e-10)


def _standardise(x, axis):
  """Zero mean, unit norm along `axis`; all zeros where x is constant there."""
  x = x - x.mean(axis, keepdims=True)
  norm = np.sqrt((x ** 2).sum(axis, keepdims=True))
  return np.where(norm > 1e-12, x / np.maximum(norm, 1e-12), 0.0)


def track_scores(video, audio, frame_stride=1, grid=8, steps_of=1):
  """Frames [N, T, H, W, C], every `frame_stride`-th of a window, and audio tracks
  [N, K, S] of the window (int16 or float) -> [N, K]: each track's best Pearson
  correlation, over the cells, between its `loudness` and the cell's motion energy,
  both summed over `steps_of` consecutive frame intervals a step (a coarser time
  resolution; a last partial step is left out)."""
  motion = cell_motion(video, grid)  # [N, T-1, cells]
  n, intervals, cells = motion.shape
  steps = intervals // steps_of
  motion = motion[:, :steps * steps_of].reshape(n, steps, steps_of, cells).sum(2)
  envelope = loudness(audio, steps + 1, frame_stride * steps_of)
  return np.einsum('nkt,ntc->nkc', _standardise(envelope, axis=-1),
                   _standardise(motion, axis=1)).max(-1)


def aligned_first(video, audio, frame_stride=1, grid=8, steps_of=1):
  """Bool [N]: the detector calls the first of two tracks [N, 2, S] (aligned, shifted)
  aligned: its loudness correlates strictly better with the motion of its best cell."""
  scores = track_scores(video, audio, frame_stride, grid, steps_of)
  return scores[:, 0] > scores[:, 1]
