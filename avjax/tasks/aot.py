"""aot: Arrow of Time, is this audio clip played forwards or backwards?

An audio-only pretext of Shukla et al. (2020). With probability 1/2 the raw
waveform is time-reversed before it is cut into per-frame windows, so each
window is reversed and the frames come in reverse order; then `num_frames`
frames are cropped at random. Label 1 = reversed. The model averages the
audio encoder's features over frames and scores them with a small MLP; the
loss is sigmoid cross-entropy.

`evaluate` scores every validation clip both as it comes and reversed (the
windows flipped in time and in frame order), so its accuracy is over a
balanced set and does not depend on which clips were drawn reversed.

Batches travel compact (`avjax.tasks.expand`): `preprocess` gives the int16
samples that the crop's windows read, in the clip's order, and the label;
`expand` reverses the labelled ones and cuts the float windows on the device.
"""

import jax.numpy as jnp
import numpy as np
import optax

from avjax.models import audio as audio_models
from avjax.models import pretext
from avjax.tasks import expand


def reverse_windows(windows):
  """Windows [..., T, W] of a clip -> the windows of the clip played backwards."""
  return jnp.flip(windows, (-2, -1))


def binary_metrics(logits, labels):
  """(mean sigmoid cross-entropy, {'loss', 'accuracy'}) for logits [B], labels {0, 1} [B]."""
  loss = optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32)).mean()
  accuracy = ((logits > 0) == (labels > 0)).mean()
  return loss, {'loss': loss, 'accuracy': accuracy}


class ArrowOfTime:
  """The aot task; see `avjax.tasks` for the contract."""

  features = ('audio',)  # The example features `preprocess` reads.

  def __init__(self, config):
    self.config = config.aot
    self.dtype = jnp.dtype(config.dtype)
    audio_kwargs = dict(config.model.to_dict()['audio'])
    self.audio_encoder = audio_models.AudioEncoder(**audio_kwargs, dtype=self.dtype)
    self.model = pretext.ArrowOfTime(audio=audio_kwargs, hidden=self.config.hidden,
                                     dtype=self.dtype, remat=config.get('remat', False))

  def init(self, rng, batch):
    return self.model.init({'params': rng}, self.expand(batch)['audio'])['params']

  def preprocess(self, example, rng):
    encoder, num_frames = self.audio_encoder, self.config.num_frames
    backwards = rng.random() < 0.5
    clip_frames = len(example['audio']) // encoder.samples_per_frame
    start = rng.integers(0, clip_frames - num_frames + 1)
    # The reversed clip's frames [start, start + T) are the clip's frames mirrored; their
    # windows read context beyond the crop: real audio, as in the clip.
    first = clip_frames - num_frames - start if backwards else start
    return {'audio': expand.frame_span(example['audio'], first, num_frames,
                                       encoder.samples_per_frame, encoder.context),
            'label': np.int32(backwards)}

  def expand(self, batch):
    """The compact batch of `preprocess` -> float32 audio windows [B, T, W] (those of the
    reversed waveform where label is 1) and the label."""
    encoder = self.audio_encoder
    span = expand.flip_where(batch['label'], expand.to_float_audio(batch['audio']), -1)
    return {'audio': expand.span_windows(span, encoder.samples_per_frame, encoder.context),
            'label': batch['label']}

  def _logits(self, params, windows):
    return self.model.apply({'params': params}, windows)[0]

  def loss(self, params, batch, rng):
    del rng  # Deterministic.
    batch = self.expand(batch)
    return binary_metrics(self._logits(params, batch['audio']), batch['label'])

  def evaluate(self, params, batch):
    batch = self.expand(batch)
    windows = jnp.concatenate([batch['audio'], reverse_windows(batch['audio'])])
    labels = jnp.concatenate([batch['label'], 1 - batch['label']])
    return binary_metrics(self._logits(params, windows), labels)[1]

  def visualize(self, params, batch):
    del params, batch
    return None

  def encoders(self):
    return {'audio_encoder': (self.audio_encoder, 'audio')}
