"""speaker: supervised speaker classification with the disentangle audio stream.

The labelled baseline of the speaker suite, and the fine-tuning of a
self-supervised one. Each example is a crop of `crop_frames` video frames'
worth of the utterance's log-mel frames (`disentangle.log_mel_features`, 4
per frame, at a uniformly drawn start) with the clip's `speaker` id.

Model: `twostream.AudioEncoder` (`config.model`, the disentangle block, so
that a disentangle export loads into it); its identity embeddings,
time-averaged, go through one linear layer to `num_speakers` logits. Loss:
softmax cross-entropy over the train speakers; metrics loss and accuracy.

`init_from`, a `python -m avjax.export` directory of a disentangle run, starts
the encoder from its `speaker_encoder` (self-supervised pretraining, then
fine-tuning with labels); '' trains it from scratch. The classifier always
starts random. The encoder is exported as `speaker_encoder`, as disentangle's,
so both are scored alike on unseen speakers.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from avjax import checkpoint
from avjax.data import pipeline
from avjax.data.synth import heads
from avjax.models import twostream
from avjax.tasks import classification
from avjax.tasks import disentangle


def num_speakers_of(config):
  """`speaker.num_speakers`, or where 0: the train speakers of the avsynth preset
  `data.config`, or a real dataset's speakers (`pipeline.class_names`)."""
  if config.speaker.num_speakers:
    return config.speaker.num_speakers
  if config.data.name != 'avsynth':
    return len(pipeline.class_names(config.data, 'speaker'))
  preset = heads.PRESETS.get(config.data.config)
  if preset is None:
    raise ValueError(f'set speaker.num_speakers for data.config={config.data.config!r} '
                     f'(0 reads it from an avsynth heads preset: {sorted(heads.PRESETS)})')
  return preset.num_train_speakers


def load_pretrained(directory, initial):
  """The exported `speaker_encoder` in DIRECTORY, checked against `initial`'s shapes."""
  pretrained = checkpoint.load_exported_params(directory, 'speaker_encoder')
  diff = checkpoint.shape_differences(pretrained, initial)
  if diff:
    raise ValueError(f'init_from={directory!r}: its speaker_encoder differs from the one '
                     f'config.model builds; first differences (name, shape): {diff}. '
                     'config.model must be the model block of the exported disentangle run.')
  return jax.tree.map(jnp.asarray, pretrained)


class Speaker:
  """The speaker task; see `avjax.tasks` for the contract."""

  def __init__(self, config):
    self.config = config.speaker
    model, dtype = config.model, jnp.dtype(config.dtype)
    self.encoder = twostream.AudioEncoder(
        **model.audio.to_dict(), embedding=model.embedding, head_hidden=model.head_hidden,
        dtype=dtype, remat=config.get('remat', False))
    self.head = nn.Dense(num_speakers_of(config), dtype=dtype)

  def preprocess(self, example, rng):
    mel = disentangle.log_mel_features(example['audio'])
    size = disentangle.MELS_PER_FRAME * self.config.crop_frames
    if len(mel) < size:
      raise ValueError(f'an utterance of {len(mel)} mel frames is shorter than the '
                       f'{size}-frame crop (speaker.crop_frames={self.config.crop_frames})')
    start = disentangle.MELS_PER_FRAME * int(
        rng.integers(0, (len(mel) - size) // disentangle.MELS_PER_FRAME + 1))
    return {'mel': mel[start:start + size], 'label': np.int32(example['speaker'])}

  def expand(self, batch):
    """The batch as it comes: its log-mel, normalised over the whole utterance, is made
    on the host (`avjax.tasks.expand`)."""
    return batch

  def init(self, rng, batch):
    batch = self.expand(batch)
    encoder_rng, head_rng = jax.random.split(rng)
    shapes = jax.eval_shape(self.encoder.init, encoder_rng, batch['mel'])['params']
    if self.config.init_from:  # Compiles no random encoder.
      encoder = load_pretrained(self.config.init_from, shapes)
    else:
      encoder = self.encoder.init(encoder_rng, batch['mel'])['params']
    embedding = jnp.zeros((1, self.encoder.embedding), jnp.float32)
    return {'speaker_encoder': encoder, 'head': self.head.init(head_rng, embedding)['params']}

  def predict(self, params, batch):
    """Logits [B, num_speakers], float32; jit-able."""
    batch = self.expand(batch)
    identity, _ = self.encoder.apply({'params': params['speaker_encoder']}, batch['mel'])
    logits = self.head.apply({'params': params['head']}, identity.mean(axis=1))
    return logits.astype(jnp.float32)

  def loss(self, params, batch, rng):
    del rng  # Deterministic given the batch.
    return classification.class_metrics(self.predict(params, batch), batch['label'])

  def evaluate(self, params, batch):
    return classification.class_metrics(self.predict(params, batch), batch['label'])[1]

  def visualize(self, params, batch):
    del params, batch
    return None

  def encoders(self):
    return {'speaker_encoder': (self.encoder, 'mel')}
