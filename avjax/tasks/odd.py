"""odd: Odd One Out, which of N audio segments is time-shuffled?

An audio-only pretext of Shukla et al. (2020). A crop of `num_frames` frames
is cut into `num_segments` segments of equal length; in one of them, chosen
uniformly, the raw waveform is cut into chunks of `chunk_samples` that are
put in a random (never the original) order, before the audio is cut into
per-frame windows. The label is that segment's index. The model averages the
audio encoder's features over each segment, scores each segment with a small
MLP, and the loss is the cross-entropy of the softmax over segments (chance
accuracy 1 / num_segments).

The shuffle is done on the whole clip's waveform, so the windows of the
frames next to the odd segment see its shuffled audio in their context, as
they would in a real recording. Validation examples are drawn with the
pipeline's fixed seed, so `evaluate` is deterministic as it is.
"""

import jax.numpy as jnp
import numpy as np
import optax

from avjax.data import ops
from avjax.models import audio as audio_models
from avjax.models import pretext


def categorical_metrics(scores, labels):
  """(mean softmax cross-entropy, {'loss', 'accuracy'}) for scores [B, N], labels [B]."""
  loss = optax.softmax_cross_entropy_with_integer_labels(scores, labels).mean()
  accuracy = (scores.argmax(-1) == labels).mean()
  return loss, {'loss': loss, 'accuracy': accuracy}


class OddOneOut:
  """The odd task; see `avjax.tasks` for the contract."""

  def __init__(self, config):
    self.config = config.odd
    self.dtype = jnp.dtype(config.dtype)
    audio_kwargs = dict(config.model.to_dict()['audio'])
    self.audio_encoder = audio_models.AudioEncoder(**audio_kwargs, dtype=self.dtype)
    self.model = pretext.OddOneOut(audio=audio_kwargs, num_segments=self.config.num_segments,
                                   hidden=self.config.hidden, dtype=self.dtype,
                                   remat=config.get('remat', False))
    frames, segments, chunk = (self.config.num_frames, self.config.num_segments,
                               self.config.chunk_samples)
    self.segment_samples = frames // segments * self.audio_encoder.samples_per_frame
    if frames % segments or self.segment_samples % chunk or self.segment_samples < 2 * chunk:
      raise ValueError(f'odd.num_frames={frames} must cut into odd.num_segments={segments} '
                       f'segments of at least two odd.chunk_samples={chunk} chunks each')

  def init(self, rng, batch):
    return self.model.init({'params': rng}, batch['audio'])['params']

  def preprocess(self, example, rng):
    waveform = ops.to_float(example['audio'])
    num_frames, spf = self.config.num_frames, self.audio_encoder.samples_per_frame
    start = rng.integers(0, len(waveform) // spf - num_frames + 1)
    odd = rng.integers(0, self.config.num_segments)
    begin = start * spf + odd * self.segment_samples
    odd_segment = slice(begin, begin + self.segment_samples)
    num_chunks = self.segment_samples // self.config.chunk_samples
    waveform[odd_segment], _ = ops.shuffle_segments(waveform[odd_segment], num_chunks, rng)
    # Windows of the whole clip, so a cropped frame's context is real audio.
    windows = self.audio_encoder.windows(waveform)
    return {'audio': windows[start:start + num_frames], 'label': np.int32(odd)}

  def _scores(self, params, windows):
    return self.model.apply({'params': params}, windows)[0]

  def loss(self, params, batch, rng):
    del rng  # Deterministic.
    return categorical_metrics(self._scores(params, batch['audio']), batch['label'])

  def evaluate(self, params, batch):
    return categorical_metrics(self._scores(params, batch['audio']), batch['label'])[1]

  def visualize(self, params, batch):
    del params, batch
    return None

  def encoders(self):
    return {'audio_encoder': (self.audio_encoder, 'audio')}
