"""recon: animate a still face from the audio (Shukla et al. 2020).

The generator (after Vougioukas et al.) sees one still frame of the speaker and
one raw-audio window per video frame, and must reconstruct every frame of a
window of `num_frames`; the audio encoder it trains is the representation that
gets exported. As in the published pipelines, frames are aligned (steadied on
the mouth) and cropped around the face before the generator sees them
(`config.recon.align_faces`, `face_crop`); the still is moved and cut with them,
its mouth brought to the clip's mean mouth centre.

The still (`config.recon.still`):
- 'neutral': the clip's neutral reference frame (`neutral_frame`: the same
  speaker, session and pose with a neutral expression, mouth at rest; avsynth
  renders one per clip), the default on avsynth;
- 'other_clip': a frame of another clip of the same track, else of the same
  speaker (`avjax.data.references`: a dataset-level join, fixed per record for
  a seed; the frame drawn anew each time), the default on real datasets that
  name tracks or speakers;
- 'same_clip': a random frame of the clip itself.
What the papers do, as far as they say: Shukla et al. animate "a still image"
of the speaker's face with the audio of an LRW clip, with Vougioukas et al.'s
generator; Vougioukas et al. (2018, 2019) condition on a still image of the
target speaker, taken at training from the target video itself, and at use
animate any still of a person (their public library takes an image and a
clip). Neither says which frame; METHODS.md records none ('same_clip' is
inferred). 'same_clip' is thus the faithful copy of the procedure, but where a
clip holds one expression (avsynth's do; LRW's 1.16 s words and CREMA-D's or
RAVDESS's acted sentences nearly do) its still already shows that expression,
and the audio is asked only for the mouth: the pretext cannot teach emotion.
'neutral' and 'other_clip' keep the pretext (animate a still of the person from
the voice, as the generator is used) and leave the clip's expression to the
audio, which is what the claim under test (facial supervision teaches the voice
encoder emotion) needs; 'neutral' is the clean form where a dataset has one,
'other_clip' the form real data allows. A dataset without what the still needs
is a one-line ValueError before training (`Recon.join`).

Loss: pixel L1 with weight `1 + mouth_weight` inside the mouth box and
`1 + eyes_weight` inside the eyes-and-brows box (`eyes_box`; both where they
overlap add), divided by the sum of the weights (a weighted mean), so the loss
stays on the scale of a per-pixel L1 whatever the weights are; a region then
counts as if it covered (1 + its weight) times its area. Clips without boxes
use a fixed share of the frame (`mouth_region`, `eyes_region`). `evaluate`
reports the whole-frame, mouth and eyes L1 of the model, of the still copied to
every frame, and of the model fed another clip's audio.

Batches travel compact (`avjax.tasks.expand`): `preprocess` gives the uint8
still and frames (aligned and cropped), the int16 audio the frames' windows
read and the mouth and eyes boxes; `expand` makes the float frames in [-1, 1],
the audio windows and the region masks on the device.
"""

import jax
import jax.numpy as jnp
import numpy as np

from avjax.data import pipeline
from avjax.data import references
from avjax.models import audio as audio_models
from avjax.models import video as video_models
from avjax.tasks import expand

STILLS = ('neutral', 'other_clip', 'same_clip')
REFERENCE = 'reference_'  # The prefix of the other clip's features (`Recon.join`).


def fixed_boxes(num_frames, height, width, region):
  """Boxes [T, 4] of one (y0, x0, y1, x1) share of the frame, for clips without boxes."""
  y0, x0, y1, x1 = region
  box = np.round([y0 * height, x0 * width, y1 * height, x1 * width]).astype(np.int32)
  return np.tile(box, (num_frames, 1))


def boxes_or_region(boxes, region, video):
  """`boxes` [T, 4], or where None the fixed `region` of the frames of `video` [T, H, W, C]."""
  return fixed_boxes(len(video), *video.shape[1:3], region) if boxes is None else boxes


def box_centres(boxes):
  """The centres [..., 2] (y, x) of boxes [..., 4]."""
  return (boxes[..., :2] + boxes[..., 2:]) / 2


def mouth_shifts(boxes, centre=None):
  """Face alignment by one tracked landmark: the whole-pixel moves [T, 2] (dy, dx)
  that bring each mouth-box centre (boxes [T, 4]) to `centre` (default: the clip's
  mean centre)."""
  centres = box_centres(boxes)
  centre = centres.mean(0) if centre is None else centre
  return np.round(centre - centres).astype(boxes.dtype)


def face_window(boxes, frame_shape, size):
  """The corner (y0, x0) of a square window of `size` pixels around the face, one per
  clip, placed by the mouth boxes [T, 4]: their mean centre lands at 70% of the height
  and half the width (clamped to the frame). The face crop of LRW-style pipelines."""
  centre = box_centres(boxes).mean(0)
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


def l1_metrics(pred, target, masks, weights):
  """(weighted L1 loss, {'l1', NAME + '_l1' for each region}) for videos [B, T, H, W, C]
  and region masks {NAME: [..., 1]}, weighted 1 + sum of weights[NAME] * masks[NAME]."""
  err = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
  masks = {k: jnp.broadcast_to(m.astype(jnp.float32), err.shape) for k, m in masks.items()}
  weight = 1.0 + sum(weights[k] * m for k, m in masks.items())
  loss = (weight * err).sum() / weight.sum()
  metrics = {f'{k}_l1': (m * err).sum() / jnp.maximum(m.sum(), 1.0) for k, m in masks.items()}
  return loss, {'l1': err.mean(), **metrics}


def to_uint8(x):
  """[-1, 1] -> uint8 0..255."""
  return np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


class Recon:
  """The recon task; see `avjax.tasks` for the contract."""

  def __init__(self, config):
    self.config = config.recon
    if self.config.still not in STILLS:
      raise ValueError(f'unknown recon.still {self.config.still!r}; known: {STILLS}')
    # The example features `preprocess` reads (those of the other clip come by `join`).
    self.features = ('video', 'audio', 'mouth_box', 'eyes_box') + (
        ('neutral_frame', 'neutral_mouth_box') if self.config.still == 'neutral' else ())
    self.dtype = jnp.dtype(config.dtype)
    model = config.model.to_dict()
    self.audio_kwargs = dict(model['audio'])
    self.audio_encoder = audio_models.AudioEncoder(**self.audio_kwargs, dtype=self.dtype)
    self.noise_dim = model['noise_dim']
    self.model = video_models.Recon(
        audio=self.audio_kwargs, identity=dict(model['identity']),
        decoder=dict(model['decoder']), dtype=self.dtype, remat=config.get('remat', False))
    self._generate_jit = jax.jit(self._generate)  # For `visualize`, on the host.

  def join(self, source, load, data_config, seed):
    """The data source `preprocess` reads, from `source` (`load(self.features)`; `load`
    gives the same split's records with other features): for 'other_clip', each record
    joined with a partner's `video` and `mouth_box` (`references`; the partner chosen
    with `seed`); ValueError naming the dataset of `data_config` and the feature when it
    lacks what the still needs."""
    still = self.config.still
    if still == 'same_clip':
      return source
    info = pipeline.unprepared_builder(data_config).info
    if still == 'neutral':
      if 'neutral_frame' not in info.features:
        raise ValueError(f"dataset {info.full_name} lacks the feature 'neutral_frame' that "
                         "recon.still='neutral' reads; use recon.still='other_clip' or "
                         "'same_clip'")
      return source
    keys = references.group_keys(info.features)
    if not keys:
      raise ValueError(f"dataset {info.full_name} lacks the feature 'speaker' (or 'track') "
                       "that recon.still='other_clip' groups clips by; use "
                       "recon.still='same_clip'")
    columns = references.read_columns(load(keys), keys)
    return references.WithPartner(source, load(('video', 'mouth_box')),
                                  references.partners(columns, seed), REFERENCE)

  def init(self, rng, batch):
    batch = self.expand(batch)
    still, audio = batch['still'], batch['audio']
    noise = jnp.zeros(audio.shape[:2] + (self.noise_dim,), jnp.float32)
    return self.model.init({'params': rng}, still, audio, noise)['params']

  def _reference(self, example, video, boxes, rng):
    """(The still's image [H, W, 3], its mouth box [4]) of `config.still`."""
    still, region = self.config.still, self.config.mouth_region
    if still == 'neutral':
      image, box = example['neutral_frame'], example.get('neutral_mouth_box')
      return image, boxes_or_region(None if box is None else box[None], region, image[None])[0]
    if still == 'other_clip':
      video = example[REFERENCE + 'video']
      boxes = boxes_or_region(example.get(REFERENCE + 'mouth_box'), region, video)
    frame = rng.integers(0, len(video))
    return video[frame], boxes[frame]

  def preprocess(self, example, rng):
    config, video = self.config, example['video']
    boxes = boxes_or_region(example.get('mouth_box'), config.mouth_region, video)
    eyes = boxes_or_region(example.get('eyes_box'), config.eyes_region, video)
    num_frames, length = config.num_frames, video.shape[0]
    start = rng.integers(0, length - num_frames + 1)
    image, image_box = self._reference(example, video, boxes, rng)
    # Aligned (`mouth_shifts`: every mouth to the clip's mean centre, the still's too)
    # and cut to the face (`face_window`).
    if config.align_faces:
      shifts = mouth_shifts(boxes)
      still_shift = mouth_shifts(image_box[None], box_centres(boxes).mean(0))
    else:
      shifts, still_shift = np.zeros_like(boxes[:, :2]), np.zeros((1, 2), int)
    boxes, eyes = (b + np.concatenate([shifts, shifts], 1) for b in (boxes, eyes))
    size = config.face_crop
    corner, shape = ((face_window(boxes, video.shape[1:3], size), (size, size)) if size
                     else (np.zeros(2, int), video.shape[1:3]))
    crop = slice(start, start + num_frames)
    encoder = self.audio_encoder
    return {
        'still': moved_window(image[None], [0], still_shift, corner, shape)[0],
        'video': moved_window(video, range(start, start + num_frames), shifts, corner, shape),
        # The crop's windows read their context beyond it: real audio, as in the clip.
        'audio': expand.frame_span(example['audio'], start, num_frames,
                                   encoder.samples_per_frame, encoder.context),
        'mouth_box': (boxes[crop] - np.tile(corner, 2)).astype(np.int32),
        'eyes_box': (eyes[crop] - np.tile(corner, 2)).astype(np.int32),
    }

  def expand(self, batch):
    """The compact batch of `preprocess` -> float32 still [B, H, W, 3] and video [B, T,
    H, W, 3] in [-1, 1], audio windows [B, T, W], mouth_mask and eyes_mask [B, T, H, W,
    1]."""
    encoder, (height, width) = self.audio_encoder, batch['video'].shape[-3:-1]
    return {
        'still': expand.to_float_image(batch['still']),
        'video': expand.to_float_image(batch['video']),
        'audio': expand.span_windows(expand.to_float_audio(batch['audio']),
                                     encoder.samples_per_frame, encoder.context),
        'mouth_mask': expand.box_mask(batch['mouth_box'], height, width),
        'eyes_mask': expand.box_mask(batch['eyes_box'], height, width),
    }

  def _generate(self, params, batch, noise=None, audio=None):
    audio = batch['audio'] if audio is None else audio
    if noise is None:
      noise = jnp.zeros(audio.shape[:2] + (self.noise_dim,), jnp.float32)
    video, _ = self.model.apply({'params': params}, batch['still'], audio, noise)
    return video.astype(jnp.float32)

  def _l1(self, pred, batch):
    masks = {'mouth': batch['mouth_mask'], 'eyes': batch['eyes_mask']}
    weights = {'mouth': self.config.mouth_weight, 'eyes': self.config.eyes_weight}
    return l1_metrics(pred, batch['video'], masks, weights)

  def loss(self, params, batch, rng):
    batch = self.expand(batch)
    shape = batch['audio'].shape[:2] + (self.noise_dim,)
    loss, metrics = self._l1(self._generate(params, batch, noise=jax.random.normal(rng, shape)),
                             batch)
    return loss, dict(metrics, loss=loss)

  def evaluate(self, params, batch):
    batch = self.expand(batch)
    still = jnp.broadcast_to(batch['still'][:, None], batch['video'].shape)
    shuffled = jnp.roll(batch['audio'], 1, axis=0)
    metrics = {}
    for prefix, pred in (('', self._generate(params, batch)),
                         ('still_', still),
                         ('shuffled_audio_', self._generate(params, batch, audio=shuffled))):
      metrics.update({prefix + k: v for k, v in self._l1(pred, batch)[1].items()})
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
