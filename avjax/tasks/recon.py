"""recon: animate a still face from the audio (Shukla et al. 2020).

The generator (after Vougioukas et al.) sees one still frame of the clip and
one raw-audio window per video frame, and must reconstruct every frame; the
audio encoder it trains is the representation that gets exported. As in the
published pipelines, frames are aligned (steadied on the mouth) and cropped
around the face before the generator sees them (`config.recon.align_faces`,
`face_crop`).

Loss: pixel L1 with weight `1 + mouth_weight` inside the mouth box, divided by
the sum of the weights (a weighted mean), so the loss stays on the scale of a
per-pixel L1 whatever `mouth_weight` is; the mouth then counts as if it covered
(1 + mouth_weight) times its area.

Batches travel compact (`avjax.tasks.expand`): `preprocess` gives the uint8
still and frames (aligned and cropped), the int16 audio the frames' windows
read and the mouth boxes; `expand` makes the float frames in [-1, 1], the
audio windows and the mouth masks on the device.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from avjax.models import audio as audio_models
from avjax.models import video as video_models
from avjax.tasks import expand


def fixed_boxes(num_frames, height, width, region):
  """Boxes [T, 4] of one (y0, x0, y1, x1) share of the frame, for clips without mouth boxes."""
  y0, x0, y1, x1 = region
  box = np.round([y0 * height, x0 * width, y1 * height, x1 * width]).astype(np.int32)
  return np.tile(box, (num_frames, 1))


def mouth_shifts(boxes):
  """Face alignment by one tracked landmark: the whole-pixel moves [T, 2] (dy, dx)
  that bring each frame's mouth-box centre (boxes [T, 4]) to the clip's mean centre."""
  centres = (boxes[:, :2] + boxes[:, 2:]) / 2
  return np.round(centres.mean(0) - centres).astype(boxes.dtype)


def face_window(boxes, frame_shape, size):
  """The corner (y0, x0) of a square window of `size` pixels around the face, one per
  clip, placed by the mouth boxes [T, 4]: their mean centre lands at 70% of the height
  and half the width (clamped to the frame). The face crop of LRW-style pipelines."""
  centre = ((boxes[:, :2] + boxes[:, 2:]) / 2).mean(0)
  limit = np.array(frame_shape) - size
  if (limit < 0).any():
    raise ValueError(f'face crop of {size} pixels is larger than the frames {tuple(frame_shape)}')
  return np.clip(np.round(centre - [0.7 * size, 0.5 * size]).astype(int), 0, limit)


def moved_window(video, frames, shifts, corner, shape):
  """Frames `frames` of video [T, H, W, C], frame t moved by shifts[t] = (dy, dx) pixels
  (edges repeated, as `ops.translate_frames`) and cut to the window of `shape` (h, w)
  at `corner` (y0, x0): [len(frames), h, w, C]."""
  (height, width), (h, w) = video.shape[1:3], shape
  out = np.empty((len(frames), h, w) + video.shape[3:], video.dtype)
  for i, frame in enumerate(frames):
    y, x = corner[0] - shifts[frame, 0], corner[1] - shifts[frame, 1]
    if 0 <= y <= height - h and 0 <= x <= width - w:
      out[i] = video[frame, y:y + h, x:x + w]
    else:  # Partly outside the frame: its edge pixels repeated.
      rows = np.clip(np.arange(y, y + h), 0, height - 1)
      out[i] = video[frame, rows][:, np.clip(np.arange(x, x + w), 0, width - 1)]
  return out


def l1_metrics(pred, target, mask, mouth_weight):
  """(weighted L1 loss, {'l1', 'mouth_l1'}) for videos [B, T, H, W, C], mask [..., 1]."""
  err = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
  mask = jnp.broadcast_to(mask.astype(jnp.float32), err.shape)
  weight = 1.0 + mouth_weight * mask
  loss = (weight * err).sum() / weight.sum()
  mouth_l1 = (mask * err).sum() / jnp.maximum(mask.sum(), 1.0)
  return loss, {'l1': err.mean(), 'mouth_l1': mouth_l1}


def to_uint8(x):
  """[-1, 1] -> uint8 0..255."""
  return np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


class Recon:
  """The recon task; see `avjax.tasks` for the contract."""

  features = ('video', 'audio', 'mouth_box')  # The example features `preprocess` reads.

  def __init__(self, config):
    self.config = config.recon
    self.dtype = jnp.dtype(config.dtype)
    model = config.model.to_dict()
    self.audio_kwargs = dict(model['audio'])
    self.audio_encoder = audio_models.AudioEncoder(**self.audio_kwargs, dtype=self.dtype)
    self.noise_dim = model['noise_dim']
    self.model = video_models.Recon(
        audio=self.audio_kwargs, identity=dict(model['identity']),
        decoder=dict(model['decoder']), dtype=self.dtype, remat=config.get('remat', False))
    self._generate_jit = jax.jit(self._generate)  # For `visualize`, on the host.

  def init(self, rng, batch):
    batch = self.expand(batch)
    still, audio = batch['still'], batch['audio']
    noise = jnp.zeros(audio.shape[:2] + (self.noise_dim,), jnp.float32)
    return self.model.init({'params': rng}, still, audio, noise)['params']

  def preprocess(self, example, rng):
    video = example['video']
    boxes = example['mouth_box'] if 'mouth_box' in example else fixed_boxes(
        len(video), *video.shape[1:3], self.config.mouth_region)
    num_frames, length = self.config.num_frames, video.shape[0]
    start = rng.integers(0, length - num_frames + 1)
    # Aligned (`mouth_shifts`) and cut to the face (`face_window`): the still, then the crop.
    frames = np.concatenate([[rng.integers(0, length)], np.arange(start, start + num_frames)])
    shifts = mouth_shifts(boxes) if self.config.align_faces else np.zeros_like(boxes[:, :2])
    boxes = boxes + np.concatenate([shifts, shifts], 1)
    size = self.config.face_crop
    corner, shape = ((face_window(boxes, video.shape[1:3], size), (size, size)) if size
                     else (np.zeros(2, int), video.shape[1:3]))
    video = moved_window(video, frames, shifts, corner, shape)
    encoder = self.audio_encoder
    return {
        'still': video[0],
        'video': video[1:],
        # The crop's windows read their context beyond it: real audio, as in the clip.
        'audio': expand.frame_span(example['audio'], start, num_frames,
                                   encoder.samples_per_frame, encoder.context),
        'mouth_box': (boxes[start:start + num_frames] - np.tile(corner, 2)).astype(np.int32),
    }

  def expand(self, batch):
    """The compact batch of `preprocess` -> float32 still [B, H, W, 3] and video [B, T,
    H, W, 3] in [-1, 1], audio windows [B, T, W] and mouth_mask [B, T, H, W, 1]."""
    encoder, (height, width) = self.audio_encoder, batch['video'].shape[-3:-1]
    return {
        'still': expand.to_float_image(batch['still']),
        'video': expand.to_float_image(batch['video']),
        'audio': expand.span_windows(expand.to_float_audio(batch['audio']),
                                     encoder.samples_per_frame, encoder.context),
        'mouth_mask': expand.box_mask(batch['mouth_box'], height, width),
    }

  def _generate(self, params, batch, noise=None, audio=None):
    audio = batch['audio'] if audio is None else audio
    if noise is None:
      noise = jnp.zeros(audio.shape[:2] + (self.noise_dim,), jnp.float32)
    video, _ = self.model.apply({'params': params}, batch['still'], audio, noise)
    return video.astype(jnp.float32)

  def loss(self, params, batch, rng):
    batch = self.expand(batch)
    shape = batch['audio'].shape[:2] + (self.noise_dim,)
    pred = self._generate(params, batch, noise=jax.random.normal(rng, shape))
    loss, metrics = l1_metrics(pred, batch['video'], batch['mouth_mask'],
                               self.config.mouth_weight)
    return loss, dict(metrics, loss=loss)

  def evaluate(self, params, batch):
    batch = self.expand(batch)
    target, mask = batch['video'], batch['mouth_mask']
    l1 = functools.partial(l1_metrics, target=target, mask=mask,
                           mouth_weight=self.config.mouth_weight)
    still = jnp.broadcast_to(batch['still'][:, None], target.shape)
    shuffled = jnp.roll(batch['audio'], 1, axis=0)
    metrics = {}
    for prefix, pred in (('', self._generate(params, batch)),
                         ('still_', still),
                         ('shuffled_audio_', self._generate(params, batch, audio=shuffled))):
      metrics.update({prefix + k: v for k, v in l1(pred)[1].items()})
    return metrics

  def visualize(self, params, batch, max_clips=4):
    """Up to `max_clips` clips, each a row of real frames above a row of generated ones."""
    batch = self.expand(jax.tree.map(lambda x: x[:max_clips], batch))
    real, fake = np.asarray(batch['video']), np.asarray(self._generate_jit(params, batch))
    rows = np.stack([real, fake], 1)  # [N, 2, T, H, W, C]
    n, _, t, h, w, c = rows.shape
    return to_uint8(rows.transpose(0, 1, 3, 2, 4, 5).reshape(n * 2 * h, t * w, c))

  def encoders(self):
    return {'audio_encoder': (self.audio_encoder, 'audio')}
