"""TFDS builder for avsynth, the procedural audio-visual world.

Configs: `heads` and `scenes` (the defaults), `heads_tiny` and `scenes_tiny`
(seconds to prepare, for tests). Examples are written as array_record with
media stored as raw arrays under zlib, so neither building nor reading needs
TensorFlow. Records are stored in TFDS's shuffled order; each example's
`index` is its position in generation order. The `heads` test split's
speaker-verification trials ship in the dataset's metadata:
`builder.info.metadata['trials']`, rows `(label, index_a, index_b)` with
label 1 for the same speaker, naming test examples by `index`.

  import avjax.data.builders
  src = tfds.data_source('avsynth/heads', split='train')
"""

import concurrent.futures
import functools
import multiprocessing
import os

import numpy as np
import tensorflow_datasets as tfds

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
  return tfds.features.Tensor(shape=(None, size, size, 3), dtype=np.uint8, encoding='zlib')


def _frames(dtype=np.float32):
  return tfds.features.Tensor(shape=(None,), dtype=dtype)


def _index():
  """The clip's position in its split in generation order (records are shuffled)."""
  return tfds.features.Scalar(dtype=np.int32)


def _heads_features(config):
  return tfds.features.FeaturesDict({
      'index': _index(),
      'audio': tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding='zlib'),
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
      'snr_db': tfds.features.Scalar(dtype=np.float32),
  })


def _scenes_features(config):
  size = config.frame_size
  return tfds.features.FeaturesDict({
      'index': _index(),
      'audio': tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding='zlib'),
      'video': _video(config),
      'action': tfds.features.ClassLabel(names=scenes.ACTIONS),
      'source_mask': tfds.features.Tensor(
          shape=(None, size, size), dtype=np.uint8, encoding='zlib'),
      'num_objects': tfds.features.Scalar(dtype=np.int32),
      'snr_db': tfds.features.Scalar(dtype=np.float32),
  })


def _render(world, preset, split, index):
  """Renders one clip; runs in a worker process."""
  module = WORLDS[world]
  return index, module.render_clip(module.PRESETS[preset], split, index, seed=0)


class Avsynth(tfds.core.GeneratorBasedBuilder):
  """avsynth: talking heads and sounding scenes with known ground truth."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'First release.',
                   '1.1.0': 'Feature `index`, which the heads trials refer to.'}
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

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: every clip is rendered.
    module = WORLDS[self.builder_config.world]
    sizes = module.split_sizes(self.builder_config.synth_config)
    return {split: self._generate_examples(split, n) for split, n in sizes.items()}

  def _generate_examples(self, split, num_examples):
    config = self.builder_config
    render = functools.partial(_render, config.world, config.preset, split)
    keys = set(self.info.features.keys())
    workers = min(os.cpu_count() or 1, 8)
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
      for index, clip in pool.map(render, range(num_examples), chunksize=8):
        yield index, {**{k: v for k, v in clip.items() if k in keys}, 'index': index}
