"""Sound-source localisation: scores against source masks, baselines, overlays.

Maps and masks are aligned arrays [..., H, W] (e.g. [clips, T, H, W]); every
leading index is one frame. A network's coarse class-activation maps are first
brought to the masks' frames and pixels with `resize_maps`, or first averaged
over the clip's frames with `time_mean`. `score` gives the
numbers a suite turns into result rows:

* `pointing_accuracy`: how often a frame's peak pixel lies on the sounding
  object (frames whose mask is empty are skipped);
* `pixel_auc`: ROC AUC of map values as scores for mask pixels, pooled over all
  given pixels, so it also compares values across frames and clips;
* `frame_auc`: the mean over frames of each frame's own AUC, blind to a map's
  scale from frame to frame.

Baselines the shape of the masks: `centre_prior` (where things usually are)
and `motion_energy` (what moves; the scenes' silent movers fool it); and a
ceiling, `grid_oracle`: the masks themselves at a network's coarse grid.
"""

import imageio.v3 as iio
import numpy as np


def _linear_axis(x, axis, size):
  """Linear interpolation of `x` along `axis` to `size` samples.

  Half-pixel centres (output sample i sits at input coordinate
  (i + 0.5) * n / size - 0.5), clamped at the edges; no antialiasing.
  """
  n = x.shape[axis]
  position = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
  lo = np.floor(position).astype(int)
  hi = np.minimum(lo + 1, n - 1)
  shape = [1] * x.ndim
  shape[axis] = size
  weight = (position - lo).reshape(shape)
  return np.take(x, lo, axis=axis) * (1 - weight) + np.take(x, hi, axis=axis) * weight


def resize_maps(maps, size):
  """Resizes maps [..., t, h, w] to [..., T, H, W] for `size` = (T, H, W).

  Linear interpolation along time, height and width alike (trilinear, with
  half-pixel centres: the coarse cells tile the output evenly).
  """
  out = np.asarray(maps, np.float32)
  for axis, n in zip((-3, -2, -1), size):
    out = _linear_axis(out, axis, n)
  return out.astype(np.float32)


def time_mean(maps):
  """Maps [..., T, H, W] averaged over T, repeated at every frame: one map of the clip.

  Of a class activation map, it is the map of the clip's logit (which is the CAM's
  mean); the paper displays |CAM| averaged over time.
  """
  maps = np.asarray(maps, np.float32)
  return np.broadcast_to(maps.mean(axis=-3, keepdims=True), maps.shape)


def cell_means(maps, grid):
  """Maps [..., T, H, W] averaged over the cells of a `grid` (t, h, w) that tiles them
  (cells as even as the sizes allow): [..., t, h, w]."""
  out = np.asarray(maps, np.float32)
  for axis, n in zip((-3, -2, -1), grid):
    size = out.shape[axis]
    if not 0 < n <= size:
      raise ValueError(f'a grid of {grid} cannot tile maps of {np.shape(maps)[-3:]}')
    edges = np.arange(n) * size // n
    counts = np.diff(np.append(edges, size)).reshape([-1] + [1] * (-axis - 1))
    out = np.add.reduceat(out, edges, axis=axis) / counts
  return out


def grid_oracle(masks, grid):
  """A perfect map at a network's `grid` (t, h, w): each cell the share of it that the
  sounding object covers, resized to the masks as the network's CAM is (`resize_maps`).
  Its scores are what a map at that resolution reaches by reading the truth."""
  return resize_maps(cell_means(np.asarray(masks) > 0, grid), np.shape(masks)[-3:])


def _frames(maps, masks):
  """Maps and masks as [frames, pixels] (scores, bool), checked to match."""
  maps, masks = np.asarray(maps), np.asarray(masks)
  if maps.shape != masks.shape or maps.ndim < 2:
    raise ValueError(f'maps {maps.shape} and masks {masks.shape} must share a shape [..., H, W]')
  if not np.all(np.isfinite(maps)):
    raise ValueError('maps hold non-finite values')
  pixels = maps.shape[-2] * maps.shape[-1]
  return maps.reshape(-1, pixels), masks.reshape(-1, pixels) > 0


def pointing_accuracy(maps, masks):
  """The fraction of frames whose map peaks inside the mask, and how many were scored.

  Frames whose mask is empty are skipped. When several pixels share a frame's
  maximum, the frame counts the fraction of them inside the mask: the expected
  hit rate of a peak picked at random among them (a constant map scores the
  mask's area fraction, not a raster-order accident).

  Args:
    maps: [..., H, W] scores, higher where the sound is thought to be.
    masks: [..., H, W] source masks (non-zero on the sounding object).

  Returns:
    (accuracy, number of frames scored); accuracy is NaN if none was.
  """
  maps, masks = _frames(maps, masks)
  scored = masks.any(axis=1)
  maps, masks = maps[scored], masks[scored]
  if not len(maps):
    return float('nan'), 0
  peaks = maps == maps.max(axis=1, keepdims=True)
  hits = (peaks & masks).sum(axis=1) / peaks.sum(axis=1)
  return float(hits.mean()), int(scored.sum())


def _auc(scores, labels):
  """ROC AUC by the Mann-Whitney statistic on average ranks; NaN without both classes."""
  positives = int(labels.sum())
  negatives = labels.size - positives
  if not positives or not negatives:
    return float('nan')
  _, group, counts = np.unique(scores, return_inverse=True, return_counts=True)
  average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based, ties share their mean.
  rank_sum = average_rank[group.ravel()[labels]].sum()
  return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def pixel_auc(maps, masks):
  """ROC AUC of map values as scores for mask pixels, pooled over all given pixels.

  Pixels of empty-mask frames count as negatives. Ties score one half (the
  rank statistic with average ranks, as scikit-learn's `roc_auc_score`). NaN
  if the masks hold no positive or no negative pixel.
  """
  maps, masks = _frames(maps, masks)
  return _auc(maps.ravel(), masks.ravel())


def frame_auc(maps, masks):
  """The mean over frames of each frame's pixel AUC, and how many frames were scored.

  Frames whose mask is empty or full are skipped; the mean is NaN if all are.
  """
  maps, masks = _frames(maps, masks)
  areas = masks.sum(axis=1)
  scored = (areas > 0) & (areas < masks.shape[1])
  aucs = [_auc(m, k) for m, k in zip(maps[scored], masks[scored])]
  return (float(np.mean(aucs)) if aucs else float('nan')), len(aucs)


def score(maps, masks):
  """{'pointing_accuracy', 'pixel_auc', 'frame_auc'}: each a float, one result row's value."""
  return {
      'pointing_accuracy': pointing_accuracy(maps, masks)[0],
      'pixel_auc': pixel_auc(maps, masks),
      'frame_auc': frame_auc(maps, masks)[0],
  }


def centre_prior(shape, width=0.25):
  """A Gaussian centred on each frame, float32 of `shape` [..., H, W].

  Its standard deviation is `width` times the frame's height (vertically) and
  width (horizontally): a quarter of the side by default, so the frame's
  edges sit two standard deviations from the centre. On an even side the
  central pixels tie for the peak.
  """
  height, side = shape[-2:]
  y = (np.arange(height) - (height - 1) / 2) / (width * height)
  x = (np.arange(side) - (side - 1) / 2) / (width * side)
  prior = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
  return np.broadcast_to(prior, shape).astype(np.float32)


def _gaussian_blur(x, axis, sigma):
  """Blurs `x` along `axis` by a Gaussian of `sigma` samples (3 sigma wide), edges repeated."""
  radius = int(np.ceil(3 * sigma))
  kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  kernel /= kernel.sum()
  x = np.moveaxis(x, axis, 0)
  padded = np.concatenate([x[:1]] * radius + [x] + [x[-1:]] * radius)
  out = sum(w * padded[i:i + len(x)] for i, w in enumerate(kernel))
  return np.moveaxis(out, 0, axis)


def motion_energy(video, sigma_space=1.0, sigma_time=1.0):
  """Where the picture changes: float32 [T, H, W] from a uint8 video [T, H, W, 3].

  Absolute differences of consecutive frames summed over colour; frame t
  takes the mean of its backward and forward differences (one-sided at the
  first and last frame, zero for a single frame), then a Gaussian blur of
  `sigma_space` pixels and `sigma_time` frames.
  """
  video = np.asarray(video, np.float32)
  if len(video) < 2:
    return np.zeros(video.shape[:3], np.float32)
  change = np.abs(np.diff(video, axis=0)).sum(axis=-1)
  energy = 0.5 * (np.concatenate([change[:1], change]) + np.concatenate([change, change[-1:]]))
  for axis, sigma in ((0, sigma_time), (1, sigma_space), (2, sigma_space)):
    energy = _gaussian_blur(energy, axis, sigma)
  return energy.astype(np.float32)


def overlay(video, maps, strength=0.7):
  """The maps as heat over the frames: uint8 [T, H, W, 3].

  `maps` [T, H, W] are min-max normalised over the whole clip (a constant map
  shows nothing) and coloured black-red-yellow; each pixel blends towards its
  colour by `strength` times its normalised value, so cold regions show the
  frame unchanged.
  """
  video, maps = np.asarray(video), np.asarray(maps, np.float32)
  if maps.shape != video.shape[:3] or video.shape[-1] != 3:
    raise ValueError(f'maps {maps.shape} do not match video {video.shape}')
  span = maps.max() - maps.min()
  value = (maps - maps.min()) / span if span > 0 else np.zeros_like(maps)
  value = value[..., None]
  red, green = np.clip(2 * value, 0, 1), np.clip(2 * value - 1, 0, 1)
  heat = np.concatenate([red, green, np.zeros_like(red)], axis=-1) * 255
  blended = video + strength * value * (heat - video)
  return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def write_animation(path, frames, fps):
  """Writes uint8 frames [T, H, W, 3] to `path` as a looping GIF at `fps`.

  GIF stores frame times in hundredths of a second, and Pillow merges
  identical consecutive frames into one longer frame.
  """
  iio.imwrite(path, np.asarray(frames, np.uint8), extension='.gif',
              duration=1000 / fps, loop=0)
