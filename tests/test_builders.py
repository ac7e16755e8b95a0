"""The avsynth TFDS builder: fields, splits, trials, no TensorFlow, clear errors."""

import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from avjax.data import pipeline
from avjax.data.synth import heads
from avjax.data.synth import scenes


def _data_config(data_dir, config):
  return ml_collections.ConfigDict(dict(name='avsynth', config=config, data_dir=data_dir))


def test_heads_fields_and_splits(data_dir):
  preset = heads.PRESETS['heads_tiny']
  sizes = heads.split_sizes(preset)
  for split, size in sizes.items():
    assert len(pipeline.load_source(_data_config(data_dir, 'heads_tiny'), split)) == size
  example = pipeline.load_source(_data_config(data_dir, 'heads_tiny'), 'train')[0]
  t = int(preset.duration_s * preset.fps)
  assert example['audio'].dtype == np.int16
  assert example['audio'].shape == (int(preset.duration_s * preset.sample_rate),)
  assert example['video'].shape == (t, preset.frame_size, preset.frame_size, 3)
  assert example['video'].dtype == np.uint8
  for key in ('arousal', 'valence', 'mouth_open', 'viseme'):
    assert example[key].shape == (t,), key
  assert example['mouth_box'].shape == (t, 4)
  assert example['words'].shape == example['word_start'].shape == example['word_end'].shape
  assert 0 <= example['emotion'] < len(heads.EMOTIONS)


def test_stored_examples_equal_rendered(data_dir):
  preset = heads.PRESETS['heads_tiny']
  source = pipeline.load_source(_data_config(data_dir, 'heads_tiny'), 'test')
  rendered = [heads.render_clip(preset, 'test', i) for i in range(len(source))]
  by_audio = {c['audio'].tobytes(): c for c in rendered}
  for i in range(len(source)):  # TFDS stores records in a hashed order.
    stored = source[i]
    clip = by_audio[stored['audio'].tobytes()]
    np.testing.assert_array_equal(stored['video'], clip['video'])
    np.testing.assert_array_equal(stored['mouth_box'], clip['mouth_box'])
    assert stored['speaker'] == clip['speaker'] and stored['emotion'] == clip['emotion']


def test_scenes_fields(data_dir):
  preset = scenes.PRESETS['scenes_tiny']
  source = pipeline.load_source(_data_config(data_dir, 'scenes_tiny'), 'train')
  assert len(source) == scenes.split_sizes(preset)['train']
  example = source[0]
  t = int(preset.duration_s * preset.fps)
  assert example['source_mask'].shape == (t, preset.frame_size, preset.frame_size)
  assert example['source_mask'].dtype == np.uint8
  assert 0 <= example['action'] < len(scenes.ACTIONS)


def test_trials_ship_with_test_split(data_dir):
  import tensorflow_datasets as tfds
  builder = tfds.builder('avsynth/heads_tiny', data_dir=data_dir)
  trials = np.asarray(builder.info.metadata['trials'])
  assert trials.shape[1] == 3 and len(trials) > 0
  assert trials[:, 0].sum() * 2 == len(trials)  # Balanced same/different.
  assert trials[:, 1:].max() < heads.split_sizes(heads.PRESETS['heads_tiny'])['test']


def test_trials_name_examples_by_index(data_dir):
  # Records are stored shuffled: a trial's indices are the examples' `index` feature.
  import tensorflow_datasets as tfds
  trials = np.asarray(tfds.builder('avsynth/heads_tiny', data_dir=data_dir).info.metadata['trials'])
  source = pipeline.load_source(_data_config(data_dir, 'heads_tiny'), 'test')
  speaker = {source[i]['index']: source[i]['speaker'] for i in range(len(source))}
  assert sorted(speaker) == list(range(len(source)))
  same = np.array([speaker[a] == speaker[b] for _, a, b in trials])
  np.testing.assert_array_equal(same, trials[:, 0] == 1)


def test_reading_imports_no_tensorflow(data_dir):
  code = ('import sys, ml_collections\n'
          'from avjax.data import pipeline\n'
          f'c = ml_collections.ConfigDict(dict(name="avsynth", config="heads_tiny", data_dir={data_dir!r}))\n'
          'src = pipeline.load_source(c, "train"); src[0]\n'
          'assert "tensorflow" not in sys.modules, "tensorflow was imported"\n')
  subprocess.run([sys.executable, '-c', code], check=True)


def test_building_imports_no_tensorflow(tmp_path):
  code = ('import sys, ml_collections\n'
          'from avjax.data import pipeline\n'
          f'c = ml_collections.ConfigDict(dict(name="avsynth", config="scenes_tiny", data_dir={str(tmp_path)!r}))\n'
          'pipeline.load_source(c, "validation")\n'
          'assert "tensorflow" not in sys.modules, "tensorflow was imported"\n')
  subprocess.run([sys.executable, '-c', code], check=True)


def test_unknown_config_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="no config 'talking'"):
    pipeline.load_source(_data_config(str(tmp_path), 'talking'), 'train')


def test_unknown_dataset_is_a_clear_error(tmp_path):
  config = ml_collections.ConfigDict(dict(name='nosuchset', config='', data_dir=str(tmp_path)))
  with pytest.raises(ValueError, match="unknown dataset 'nosuchset'"):
    pipeline.load_source(config, 'train')


def test_missing_split_is_a_clear_error(data_dir):
  with pytest.raises(ValueError, match="no split 'dev'"):
    pipeline.load_source(_data_config(data_dir, 'heads_tiny'), 'dev')


def test_unwritable_data_dir_is_a_clear_error(tmp_path):
  not_a_dir = tmp_path / 'file'
  not_a_dir.write_text('')
  with pytest.raises(PermissionError, match='not writable'):
    pipeline.load_source(_data_config(str(not_a_dir / 'tfds'), 'heads_tiny'), 'train')
