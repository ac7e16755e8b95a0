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

Batches travel compact (`avjax.tasks.expand`): `preprocess` gives the int16
samples that the crop's windows read, the odd segment shuffled, and the label;
`expand` cuts the float windows on the device.
"""

import jax.numpy as jnp
import numpy as np
import optax

from avjax.data import ops
from avjax.models import audio as audio_models
from avjax.models import pretext
from avjax.tasks import expand


def categorical_metrics(scores, labels):
  """(mean softmax cross-entropy, {'loss', 'accuracy'}) for scores [B, N], labels [B]."""
  loss = optax.softmax_cross_entropy_with_integer_labels(scores, labels).mean()
  accuracy = (scores.argmax(-1) == labels).mean()
  return loss, {'loss': loss, 'accuracy': accuracy}


class OddOneOut:
  """The odd task; see `avjax.tasks` for the contract."""

  features = ('audio',)  # The example features `preprocess` reads.

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
    return self.model.init({'params': rng}, self.expand(batch)['audio'])['params']

  def preprocess(self, example, rng):
    num_frames, spf = self.config.num_frames, self.audio_encoder.samples_per_frame
    context = self.audio_encoder.context
    start = rng.integers(0, len(example['audio']) // spf - num_frames + 1)
    odd = rng.integers(0, self.config.num_segments)
    # The crop's windows read context beyond it: real audio, as in the clip.
    span = expand.frame_span(example['audio'], start, num_frames, spf, context)
    odd_segment = slice(context + odd * self.segment_samples,
                        context + (odd + 1) * self.segment_samples)
    num_chunks = self.segment_samples // self.config.chunk_samples
    span[odd_segment], _ = ops.shuffle_segments(span[odd_segment], num_chunks, rng)
    return {'audio': span, 'label': np.int32(odd)}

  def expand(self, batch):
    """The compact batch of `preprocess` -> float32 audio windows [B, T, W] and the label."""
    encoder = self.audio_encoder
    return {'audio': expand.span_windows(expand.to_float_audio(batch['audio']),
                                         encoder.samples_per_frame, encoder.context),
            'label': batch['label']}

  def _scores(self, params, windows):
    return self.model.apply({'params': params}, windows)[0]

  def loss(self, params, batch, rng):
    del rng  # Deterministic.
    batch = self.expand(batch)
    return categorical_metrics(self._scores(params, batch['audio']), batch['label'])

  def evaluate(self, params, batch):
    batch = self.expand(batch)
    return categorical_metrics(self._scores(params, batch['audio']), batch['label'])[1]

  def visualize(self, params, batch):
    del params, batch
    return None

  def encoders(self):
    return {'audio_encoder': (self.audio_encoder, 'audio')}
