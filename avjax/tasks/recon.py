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
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from avjax.data import ops
from avjax.models import audio as audio_models
from avjax.models import video as video_models


def _to_float_image(x):
  """uint8 -> float32 in [-1, 1]."""
  return x.astype(np.float32) / 127.5 - 1.0


def box_mask(boxes, height, width):
  """Boxes [T, 4] (y0, x0, y1, x1; end exclusive) -> float32 masks [T, H, W, 1]."""
  boxes = np.asarray(boxes)
  ys, xs = np.arange(height), np.arange(width)
  inside_y = (ys >= boxes[:, 0:1]) & (ys < boxes[:, 2:3])
  inside_x = (xs >= boxes[:, 1:2]) & (xs < boxes[:, 3:4])
  return (inside_y[:, :, None] & inside_x[:, None, :])[..., None].astype(np.float32)


def fixed_boxes(num_frames, height, width, region):
  """Boxes [T, 4] of one (y0, x0, y1, x1) share of the frame, for clips without mouth boxes."""
  y0, x0, y1, x1 = region
  box = np.round([y0 * height, x0 * width, y1 * height, x1 * width]).astype(np.int32)
  return np.tile(box, (num_frames, 1))


def align_mouths(video, boxes):
  """Face alignment by one tracked landmark: every frame moved (whole pixels) so
  its mouth-box centre sits at the clip's mean centre. Returns (video, boxes)."""
  centres = (boxes[:, :2] + boxes[:, 2:]) / 2
  shifts = np.round(centres.mean(0) - centres).astype(boxes.dtype)
  return ops.translate_frames(video, shifts), boxes + np.concatenate([shifts, shifts], 1)


def crop_face(video, boxes, size):
  """A [T, size, size] window around the face, one per clip, placed by the mouth
  box: its mean centre lands at 70% of the height and half the width (clamped to
  the frame). The face crop of LRW-style pipelines. Returns (video, boxes)."""
  centre = ((boxes[:, :2] + boxes[:, 2:]) / 2).mean(0)
  limit = np.array(video.shape[1:3]) - size
  if (limit < 0).any():
    raise ValueError(f'face crop of {size} pixels is larger than the frames {video.shape[1:3]}')
  y0, x0 = np.clip(np.round(centre - [0.7 * size, 0.5 * size]).astype(int), 0, limit)
  return (video[:, y0:y0 + size, x0:x0 + size],
          boxes - np.array([y0, x0, y0, x0], boxes.dtype))


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
    still, audio = batch['still'], batch['audio']
    noise = jnp.zeros(audio.shape[:2] + (self.noise_dim,), jnp.float32)
    return self.model.init({'params': rng}, still, audio, noise)['params']

  def preprocess(self, example, rng):
    video = example['video']
    boxes = example['mouth_box'] if 'mouth_box' in example else fixed_boxes(
        len(video), *video.shape[1:3], self.config.mouth_region)
    if self.config.align_faces:
      video, boxes = align_mouths(video, boxes)
    if self.config.face_crop:
      video, boxes = crop_face(video, boxes, self.config.face_crop)
    num_frames, length = self.config.num_frames, video.shape[0]
    start = rng.integers(0, length - num_frames + 1)
    crop = slice(start, start + num_frames)
    # Windows of the whole clip, so a cropped frame's context is real audio.
    windows = self.audio_encoder.windows(ops.to_float(example['audio']))
    return {
        'still': _to_float_image(video[rng.integers(0, length)]),
        'video': _to_float_image(video[crop]),
        'audio': windows[crop],
        'mouth_mask': box_mask(boxes[crop], *video.shape[1:3]),
    }

  def _generate(self, params, batch, noise=None, audio=None):
    audio = batch['audio'] if audio is None else audio
    if noise is None:
      noise = jnp.zeros(audio.shape[:2] + (self.noise_dim,), jnp.float32)
    video, _ = self.model.apply({'params': params}, batch['still'], audio, noise)
    return video.astype(jnp.float32)

  def loss(self, params, batch, rng):
    shape = batch['audio'].shape[:2] + (self.noise_dim,)
    pred = self._generate(params, batch, noise=jax.random.normal(rng, shape))
    loss, metrics = l1_metrics(pred, batch['video'], batch['mouth_mask'],
                               self.config.mouth_weight)
    return loss, dict(metrics, loss=loss)

  def evaluate(self, params, batch):
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
    batch = jax.tree.map(lambda x: x[:max_clips], batch)
    real, fake = np.asarray(batch['video']), np.asarray(self._generate_jit(params, batch))
    rows = np.stack([real, fake], 1)  # [N, 2, T, H, W, C]
    n, _, t, h, w, c = rows.shape
    return to_uint8(rows.transpose(0, 1, 3, 2, 4, 5).reshape(n * 2 * h, t * w, c))

  def encoders(self):
    return {'audio_encoder': (self.audio_encoder, 'audio')}
