"""TFDS builder for avsynth, the procedural audio-visual world.

Configs: `heads` and `scenes` (the defaults), `heads_tiny` and `scenes_tiny`
(seconds to prepare, for tests). Examples are written as array_record with
media stored as raw arrays, so neither building nor reading needs TensorFlow:
video and audio uncompressed, in uncompressed array_record (zlib's inflate, or
the zstd that TFDS's array_record writer applies, was most of the host time of a
training example: 5x the disk for a third of the time), the scenes' sparse
source masks under zlib. Clips are rendered in `avjax.data.workers` processes,
so a script, guarded by `if __name__ == '__main__':` or not, or a notebook can
prepare them. Records are stored in TFDS's shuffled order; each example's
`index` is its position in generation order. The `heads` test split's
speaker-verification trials ship in the dataset's metadata:
`builder.info.metadata['trials']`, rows `(label, index_a, index_b)` with label 1
for the same speaker, naming test examples by `index`. A `heads` example also
carries its `neutral_frame`, a reference still of the same speaker and session
at rest with a neutral expression (`neutral_mouth_box` is its mouth box), and a
per-frame `eyes_box` around the eyes and brows.

  import avjax.data.builders
  src = tfds.data_source('avsynth/heads', split='train')
"""

import contextlib
import functools
import os

from array_record.python import array_record_module
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.core import shuffle

from avjax.data import workers
from avjax.data.builders import base
from avjax.data.synth import heads
from avjax.data.synth import scenes

WORLDS = {'heads': heads, 'scenes': scenes}


class AvsynthConfig(tfds.core.BuilderConfig):
  """A world (`heads` or `scenes`) and one of its presets."""

  def __init__(self, *, world, preset, **kwargs):
    super().__init__(name=preset, **kwargs)
    self.world = world
    self.preset = preset

  @property
  def synth_config(self):
    return WORLDS[self.world].PRESETS[self.preset]


def _video(config):
  size = config.frame_size
  return tfds.features.Tensor(shape=(None, size, size, 3), dtype=np.uint8, encoding='bytes')


def _audio():
  return tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding='bytes')


def _frames(dtype=np.float32):
  return tfds.features.Tensor(shape=(None,), dtype=dtype)


def _index():
  """The clip's position in its split in generation order (records are shuffled)."""
  return tfds.features.Scalar(dtype=np.int32)


def _heads_features(config):
  return tfds.features.FeaturesDict({
      'index': _index(),
      'audio': _audio(),
      'video': _video(config),
      'speaker': tfds.features.Scalar(dtype=np.int32),
      'track': tfds.features.Scalar(dtype=np.int32),
      'emotion': tfds.features.ClassLabel(names=heads.EMOTIONS),
      'intensity': tfds.features.ClassLabel(names=heads.INTENSITIES),
      'arousal': _frames(),
      'valence': _frames(),
      'words': _frames(np.int32),
      'word_start': _frames(np.int32),
      'word_end': _frames(np.int32),
      'viseme': _frames(np.int32),
      'mouth_open': _frames(),
      'mouth_box': tfds.features.Tensor(shape=(None, 4), dtype=np.int32),
      'neutral_frame': tfds.features.Tensor(
          shape=(config.frame_size, config.frame_size, 3), dtype=np.uint8, encoding='bytes'),
      'neutral_mouth_box': tfds.features.Tensor(shape=(4,), dtype=np.int32),
      'eyes_box': tfds.features.Tensor(shape=(None, 4), dtype=np.int32),
      'snr_db': tfds.features.Scalar(dtype=np.float32),
  })


def _scenes_features(config):
  size = config.frame_size
  return tfds.features.FeaturesDict({
      'index': _index(),
      'audio': _audio(),
      'video': _video(config),
      'action': tfds.features.ClassLabel(names=scenes.ACTIONS),
      'source_mask': tfds.features.Tensor(
          shape=(None, size, size), dtype=np.uint8, encoding='zlib'),
      'num_objects': tfds.features.Scalar(dtype=np.int32),
      'snr_db': tfds.features.Scalar(dtype=np.float32),
  })


def _clips(pool, config, split, num_examples):
  """(index, clip) of a split's clips, in order, rendered by the `pool`'s workers."""
  module = WORLDS[config.world]
  render = functools.partial(module.render_clip, config.synth_config, split, seed=0)
  try:
    yield from enumerate(pool.map(render, range(num_examples)))
  except workers.WorkerError as e:
    raise RuntimeError(f'avsynth/{config.preset}: rendering clip {e.item} of split {split} '
                       f'(world {config.world}) failed: {e}') from e


@contextlib.contextmanager
def _uncompressed_records(shuffle_bytes):
  """Meanwhile, TFDS writes array_record uncompressed (not with zstd), and shuffles a
  split in memory up to `shuffle_bytes` (not 1000 MiB, beyond which it shuffles
  through temporary files that need TensorFlow)."""
  adapter = file_adapters.ArrayRecordFileAdapter
  write, limit = adapter.__dict__['write_examples'], shuffle.MAX_MEM_BUFFER_SIZE
  adapter.write_examples = classmethod(_write_uncompressed)
  shuffle.MAX_MEM_BUFFER_SIZE = max(limit, shuffle_bytes)
  try:
    yield
  finally:
    adapter.write_examples, shuffle.MAX_MEM_BUFFER_SIZE = write, limit


def _write_uncompressed(cls, path, iterator):
  """`ArrayRecordFileAdapter.write_examples`, with uncompressed records."""
  del cls
  writer = array_record_module.ArrayRecordWriter(os.fspath(path), 'group_size:1,uncompressed')
  for _, serialized_example in iterator:
    writer.write(serialized_example)
  writer.close()


class Avsynth(base.Builder):
  """avsynth: talking heads and sounding scenes with known ground truth."""

  VERSION = tfds.core.Version('1.4.0')
  RELEASE_NOTES = {'1.0.0': 'First release.',
                   '1.1.0': 'Feature `index`, which the heads trials refer to.',
                   '1.2.0': 'Video and audio uncompressed, in uncompressed array_record: '
                            'reading an example takes a third of the time, for 5x the disk.',
                   '1.3.0': 'heads: features `neutral_frame` and `neutral_mouth_box` (the '
                            "clip's speaker and session at rest, expression neutral) and "
                            '`eyes_box`; expressions with onsets and offsets, brows and head '
                            'that move with pitch accents, head motion scaled by arousal, '
                            'formants that follow the smile.',
                   '1.3.1': 'heads: trial pairs drawn without replacement; clips unchanged.',
                   '1.4.0': 'heads: faces and voices share sex, age and body size '
                            '(`speakers.person`): F0 by sex and age, formants by sex and '
                            'height, breathiness and jitter by age; head size by sex and '
                            'height, greying and receding hairlines by age, with effect '
                            'sizes from published measurements.'}
  BUILDER_CONFIGS = [
      AvsynthConfig(world='heads', preset='heads', description='Talking heads, 64x64, 2 s.'),
      AvsynthConfig(world='scenes', preset='scenes', description='Sounding scenes, 64x64, 4 s.'),
      AvsynthConfig(world='heads', preset='heads_tiny', description='Talking heads for tests.'),
      AvsynthConfig(world='scenes', preset='scenes_tiny', description='Scenes for tests.'),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = 'heads'

  def _info(self):
    config = self.builder_config
    synth = config.synth_config
    features = (_heads_features if config.world == 'heads' else _scenes_features)(synth)
    metadata = tfds.core.MetadataDict(
        sample_rate=synth.sample_rate, fps=synth.fps, frame_size=synth.frame_size)
    if config.world == 'heads':
      metadata['trials'] = [list(map(int, t)) for t in heads.trials(synth, seed=0)]
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, features=features, metadata=metadata)

  def _download_and_prepare(self, dl_manager, download_config):
    with (workers.Pool(min(os.cpu_count() or 1, 8)) as self._pool,  # One pool for all splits.
          _uncompressed_records(shuffle_bytes=4 << 30)):  # The scenes' train split: 1.1 GB.
      super()._download_and_prepare(dl_manager, download_config)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: every clip is rendered.
    module = WORLDS[self.builder_config.world]
    sizes = module.split_sizes(self.builder_config.synth_config)
    return {split: self._generate_examples(split, n) for split, n in sizes.items()}

  def _generate_examples(self, split, num_examples):
    keys = set(self.info.features.keys())
    for index, clip in _clips(self._pool, self.builder_config, split, num_examples):
      yield index, {**{k: v for k, v in clip.items() if k in keys}, 'index': index}
