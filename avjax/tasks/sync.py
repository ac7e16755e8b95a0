"""sync: is the audio aligned with the video, or shifted? (Owens & Efros 2018)

Each example is a window of `window_frames` video frames with two audio
windows of the same length from the same clip: the aligned one (the samples
under those frames) and a shifted one. The network sees every
`frame_stride`-th frame of the window (Owens first trained on every 4th
frame, then at the full rate), each averaged down by `frame_downsample`, and
all of its audio. The early-fusion
`SyncNet` scores every video with both (label 1 aligned, 0 shifted; sigmoid
cross-entropy), running its video stages before the fusion once per video.

Shift bounds are fractions of the window, so they scale with clip and window
lengths: |shift| in [min_shift, max_shift] * window, and never past the clip
(both windows stay inside it). Owens's 4.2 s windows of 10 s clips overlap
their shifted audio by at most 60 of 125 frames (|shift| >= 0.52 window) and
shift by up to 5.9 s (1.4 windows); the defaults keep those fractions, and a
window of 0.4 of the clip as his 4.2 of 10 s. The shift is in samples (not
whole frames): its magnitude is drawn uniformly in the bounds, its sign at
random, then the aligned window's start frame uniformly among the starts
where both windows fit.

`preprocess` returns a compact example (the frames shown, uint8; both audio
windows, int16; the shift) and `expand`, inside the jitted step, turns a batch
of them into the network's float inputs. Augmentation (a random left-right
flip of the video, if `flip`) is drawn in `loss` from the step's rng, so
validation and test examples (`evaluate`, the suites) are never augmented.
"""

import jax
import jax.numpy as jnp
import numpy as np

from avjax import checkpoint
from avjax.data import ops
from avjax.models import fusion
from avjax.tasks import aot
from avjax.tasks import expand


def to_float_image(x):
  """uint8 -> float32 in [-1, 1]."""
  return x.astype(np.float32) / 127.5 - 1.0


def shown_frames(frames, frame_stride, frame_downsample):
  """uint8 frames [T, H, W, 3] -> the frames the network sees, uint8: every
  `frame_stride`-th frame, averaged down by `frame_downsample`."""
  frames = frames[::frame_stride]
  if frame_downsample > 1:
    frames = ops.downsample_frames(frames, frame_downsample)
  return frames


def video_input(frames, frame_stride, frame_downsample):
  """uint8 frames [T, H, W, 3] -> what the network sees: `shown_frames` as float32 in [-1, 1]."""
  return to_float_image(shown_frames(frames, frame_stride, frame_downsample))


def expand_clip(batch):
  """The video and audio of a compact batch {'video' uint8 [B, T, H, W, 3], 'audio'
  int16} as the network sees them: float32; jnp."""
  return expand.to_float_image(batch['video']), expand.to_float_audio(batch['audio'])


def random_flip(rng, video):
  """Video [B, T, H, W, C] with each clip flipped left-right with probability 1/2
  (training augmentation, drawn on the device); jnp."""
  return expand.flip_where(jax.random.bernoulli(rng, 0.5, video.shape[:1]), video, axis=-2)


def min_clip_frames(window_frames, min_shift, samples_per_frame=ops.SAMPLES_PER_FRAME):
  """The fewest whole frames (of video and of audio) a clip needs for `draw_windows`:
  the window and its smallest shift."""
  low = int(np.ceil(min_shift * window_frames * samples_per_frame))
  return window_frames + -(-low // samples_per_frame)


def draw_windows(num_frames, num_samples, window_frames, min_shift, max_shift, rng,
                 samples_per_frame=ops.SAMPLES_PER_FRAME):
  """Draws (start frame, shift in samples) for an aligned and a shifted audio window.

  The aligned window is the audio under frames [start, start + window_frames);
  the shifted one starts `shift` samples later (earlier if negative), with
  ceil(min_shift * W) <= |shift| <= floor(max_shift * W), W the window's
  samples, and both inside the clip's whole frames. Raises ValueError when the
  clip is too short for the smallest shift.
  """
  window = window_frames * samples_per_frame
  room = (min(num_frames, num_samples // samples_per_frame) - window_frames) * samples_per_frame
  low, high = int(np.ceil(min_shift * window)), min(int(np.floor(max_shift * window)), room)
  if not 0 < low <= high:
    raise ValueError(f'no shift of [{low}, {high}] samples (min_shift={min_shift}, '
                     f'max_shift={max_shift} windows of {window_frames} frames) fits a clip '
                     f'of {num_frames} frames; it must be positive and leave both windows inside')
  shift = int(rng.integers(low, high + 1)) * (1 if rng.random() < 0.5 else -1)
  first = -(-max(-shift, 0) // samples_per_frame)  # Ceiling division.
  last = (room - max(shift, 0)) // samples_per_frame
  return int(rng.integers(first, last + 1)), shift


def pair_metrics(logits):
  """(mean sigmoid cross-entropy, {'loss', 'accuracy'}) for logits [B, K]: (aligned,
  then K - 1 negatives)."""
  labels = jnp.broadcast_to(jnp.arange(logits.shape[-1]) == 0, logits.shape)
  return aot.binary_metrics(logits.reshape(-1), labels.reshape(-1))


def pair_accuracy(logits):
  """How often the aligned track (logits [B, K], first) scores above the second."""
  return (logits[:, 0] > logits[:, 1]).mean()


def with_other_clip(audio):
  """Audio tracks [B, K, S] -> [B, K + 1, S]: each video's, then the aligned track of the
  next video in the batch (an easy negative)."""
  return jnp.concatenate([audio, jnp.roll(audio[:, :1], 1, axis=0)], axis=1)


def track_metrics(logits):
  """(mean softmax cross-entropy, {'loss', 'accuracy'}) for logits [B, K]: which of each
  video's K tracks (the aligned one first) is aligned? accuracy: the aligned one scores
  highest. Only differences between a video's logits count."""
  loss = (jax.nn.logsumexp(logits, axis=-1) - logits[:, 0]).mean()
  return loss, {'loss': loss, 'accuracy': (logits.argmax(-1) == 0).mean()}


def cam_overlay(frames, heat, strength=0.6):
  """Frames [N, H, W, 3] uint8 and heat maps [N, h, w] >= 0 -> [N * H, 2 * W, 3] uint8.

  Each row: the frame, then the frame tinted red where the heat is high
  (scaled to its clip's maximum, resized bilinearly to the frame).
  """
  n, h, w, _ = frames.shape
  heat = np.asarray(heat, np.float32)
  heat = heat / np.maximum(heat.max(axis=(1, 2), keepdims=True), 1e-12)
  heat = np.clip(np.asarray(jax.image.resize(heat, (n, h, w), 'bilinear')), 0, 1)[..., None]
  tinted = frames * (1 - strength * heat) + strength * heat * np.array([255, 0, 0])
  rows = np.concatenate([frames, np.round(tinted).astype(np.uint8)], axis=2)
  return rows.reshape(n * h, 2 * w, 3)


def load_sync_params(directory):
  """The `sync_net` parameters `python -m avjax.export` wrote to DIRECTORY, as numpy: the
  `init_sync` of the tasks that start from a trained sync network (separation, action)."""
  return checkpoint.load_exported_params(directory, 'sync_net')


def pretrained_like(pretrained, initial, directory):
  """`pretrained` as jnp arrays if its names and shapes are those of `initial`, else ValueError."""
  diff = checkpoint.shape_differences(pretrained, initial)
  if diff:
    raise ValueError(
        f'init_sync={directory!r}: its sync_net differs from the one config.model.sync '
        f'builds; first differences (name, shape): {diff}. config.model.sync must be the '
        'model block of the sync run that was exported.')
  return jax.tree.map(jnp.asarray, pretrained)


class Sync:
  """The sync task; see `avjax.tasks` for the contract."""

  features = ('video', 'audio')  # The example features `preprocess` reads.

  def __init__(self, config):
    self.config = config.sync
    self.net = fusion.SyncNet(**config.model.to_dict(), dtype=jnp.dtype(config.dtype),
                              remat=config.get('remat', False))
    # `net.apply`, jitted for host-side use (`visualize`, CAMs for localisation).
    self.apply_net = jax.jit(self.net.apply)
    # (loss, metrics) of logits [B, 2]: the track softmax's or the pair loss's.
    self.metrics = track_metrics if self.config.loss == 'softmax' else pair_metrics

  def init(self, rng, batch):
    batch = self.expand(batch)
    return {'sync_net': self.net.init({'params': rng}, batch['video'], batch['audio'])['params']}

  def preprocess(self, example, rng):
    """A compact example: 'video' uint8 [T', H', W', 3] (the frames shown), 'audio'
    int16 [2, S] (aligned, shifted), 'shift' int32 (samples). Not augmented."""
    video, audio = example['video'], example['audio']
    frames = self.config.window_frames
    start, shift = draw_windows(len(video), len(audio), frames, self.config.min_shift,
                                self.config.max_shift, rng)
    aligned, clip = ops.time_crop(audio, video, start, frames)
    shifted, _ = ops.time_crop(audio, video, start, frames, audio_offset=shift)
    return {'video': shown_frames(clip, self.config.frame_stride, self.config.frame_downsample),
            'audio': np.asarray(np.stack([aligned, shifted]), np.int16),
            'shift': np.int32(shift)}

  def expand(self, batch):
    """A batch of `preprocess` -> the network's: {'video' float32 in [-1, 1]; 'audio'
    float32 [B, 2, S]; 'shift'}; jnp, jit-able."""
    video, audio = expand_clip(batch)
    return {'video': video, 'audio': audio, 'shift': batch['shift']}

  def outputs(self, params, batch, rng=None):
    """`net.apply`'s (logits [B, 2] (aligned, shifted track), aux) of a compact batch;
    jit-able. With `rng` (training), the video flipped at random if `flip`, and a third
    track, another video's, if `other_clip`."""
    batch = self.expand(batch)
    video, audio = batch['video'], batch['audio']
    if rng is not None and self.config.flip:
      video = random_flip(rng, video)
    if rng is not None and self.config.other_clip:
      audio = with_other_clip(audio)
    return self.net.apply({'params': params['sync_net']}, video, audio)

  def logits(self, params, batch, rng=None):
    """The network's logits [B, 2] of `outputs`."""
    return self.outputs(params, batch, rng)[0]

  def loss(self, params, batch, rng):
    """Training: the video flipped at random (`flip`) with `rng`; None: not augmented.
    With the model's `fusion_logit`, the loss of that logit is added ('fusion_loss')."""
    logits, aux = self.outputs(params, batch, rng)
    loss, metrics = self.metrics(logits)
    if 'fusion_logit' in aux:
      fusion_loss, fusion_metrics = self.metrics(aux['fusion_logit'])
      loss += fusion_loss
      metrics = dict(metrics, fusion_loss=fusion_loss,
                     fusion_accuracy=fusion_metrics['accuracy'])
    return loss, metrics

  def evaluate(self, params, batch):
    """The pretext's metrics; pair_accuracy: the aligned audio scores above the shifted
    one (of the fusion's logit too, 'fusion_pair_accuracy', with `fusion_logit`)."""
    logits, aux = self.outputs(params, batch)
    metrics = dict(self.metrics(logits)[1], pair_accuracy=pair_accuracy(logits))
    if 'fusion_logit' in aux:
      metrics['fusion_pair_accuracy'] = pair_accuracy(aux['fusion_logit'])
    return metrics

  def visualize(self, params, batch, max_clips=4):
    """Each clip's middle frame beside it tinted by |CAM| (aligned audio, time-averaged)."""
    batch = self.expand(jax.tree.map(lambda x: x[:max_clips], batch))
    video, audio = np.asarray(batch['video']), np.asarray(batch['audio'])
    _, aux = self.apply_net({'params': params['sync_net']}, video, audio[:, 0])
    frames = np.round((video[:, video.shape[1] // 2] + 1) * 127.5).astype(np.uint8)
    return cam_overlay(frames, np.abs(np.asarray(aux['cam'])).mean(axis=1))

  def encoders(self):
    return {'sync_net': (self.net, ('video', 'audio'))}
