"""The LRW builder on a tiny copy of its published layout, broken files included."""

import os

import jax
import ml_collections
import numpy as np
import pytest

import media_fixtures
from avjax.data import pipeline
from avjax.data.builders import lrw
from avjax.data.builders import manual

WORDS = ('ABOUT', 'WORLD')
COUNTS = {'train': 3, 'val': 1, 'test': 1}


def _write_layout(root):
  """2 words x (3 train, 1 val, 1 test) clips, then: train/ABOUT_00002 truncated, train/
  ABOUT_00003 empty, WORLD_00001's .txt missing, WORLD_00003 at 44.1 kHz stereo."""
  for w, word in enumerate(WORDS):
    for folder, count in COUNTS.items():
      for i in range(1, count + 1):
        path = os.path.join(root, 'lipread_mp4', word, folder, f'{word}_{i:05d}.mp4')
        rate, channels = (44100, 2) if (word, folder, i) == ('WORLD', 'train', 3) else (16000, 1)
        media_fixtures.write_video(path, seconds=1.16, size=(64, 64), sample_rate=rate,
                                   channels=channels, tone=300 + 100 * w)
        with open(path[:-4] + '.txt', 'w') as f:
          f.write(f'Text: {word}\nConf: 3\n\n\nDuration: {0.4 + 0.2 * w:.2f} seconds\n')
  train = os.path.join(root, 'lipread_mp4', '{}', 'train', '{}_{:05d}.{}')
  media_fixtures.truncate(train.format('ABOUT', 'ABOUT', 2, 'mp4'))
  media_fixtures.write_empty(train.format('ABOUT', 'ABOUT', 3, 'mp4'))
  os.remove(train.format('WORLD', 'WORLD', 1, 'txt'))


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('lrw_manual'))
  _write_layout(root)
  data = ml_collections.ConfigDict(dict(name='lrw', config='', manual_dir=root,
                                        data_dir=str(tmp_path_factory.mktemp('lrw_tfds'))))
  sources = {s: pipeline.load_source(data, s) for s in ('train', 'validation', 'test')}
  return data, sources


def test_splits_labels_and_media(prepared):
  data, sources = prepared
  assert {s: len(v) for s, v in sources.items()} == {'train': 4, 'validation': 2, 'test': 2}
  names = pipeline.prepared_builder(data).info.metadata['class_names']['word']
  assert names == list(WORDS)
  for split, source in sources.items():
    for i in range(len(source)):
      example = source[i]
      path = example['path'].decode()
      word = path.split('/')[1]
      assert example['word'] == WORDS.index(word) and list(example['words']) == [example['word']]
      assert path.split('/')[2] == {'validation': 'val'}.get(split, split)
      assert example['video'].shape == (29, 64, 64, 3)
      assert example['audio'].shape == (29 * 640,) and example['audio'].dtype == np.int16
      # The word is centred: 0.4 s (10 frames) for ABOUT, 0.6 s (15) for WORLD.
      start, end = int(example['word_start'][0]), int(example['word_end'][0])
      if path == 'lipread_mp4/WORLD/train/WORLD_00001.mp4':  # No .txt: the whole clip.
        assert (start, end) == (0, 29)
      else:
        assert end - start == (10, 15)[example['word']] and abs(start + end - 29) <= 1


def test_tone_survives_decoding(prepared):
  _, sources = prepared
  example = sources['test'][0]
  spectrum = np.abs(np.fft.rfft(example['audio'][:16000].astype(np.float64)))
  assert np.argmax(spectrum) == 300 + 100 * example['word']


def test_broken_files_are_skipped_or_repaired_and_reported(prepared):
  data, _ = prepared
  builder = pipeline.prepared_builder(data)
  report = manual.read_report(builder.data_dir)
  train = report['train']
  assert train['files'] == 6 and train['examples'] == 4
  assert train['skipped'] == {'truncated': 1, 'empty': 1}
  assert {(f['path'], f['kind']) for f in train['skipped_files']} == {
      ('lipread_mp4/ABOUT/train/ABOUT_00002.mp4', 'truncated'),
      ('lipread_mp4/ABOUT/train/ABOUT_00003.mp4', 'empty')}
  repaired = {f['path']: f['repairs'] for f in train['repaired_files']}
  assert sorted(repaired) == ['lipread_mp4/WORLD/train/WORLD_00001.mp4',
                              'lipread_mp4/WORLD/train/WORLD_00003.mp4']
  assert [r.split(' ')[0] for r in repaired['lipread_mp4/WORLD/train/WORLD_00003.mp4']] == [
      'resampled', 'down-mixed']
  line = manual.summary('lrw', report)
  assert line.startswith('lrw: 8 examples from 10 files (train 4, validation 2, test 2); '
                         'skipped 2 (1 empty, 1 truncated); repaired 3 ')


def test_index_is_the_position_in_the_sorted_file_list(prepared):
  _, sources = prepared
  train = sources['train']
  paths = {int(train[i]['index']): train[i]['path'].decode() for i in range(len(train))}
  assert sorted(paths) == [0, 3, 4, 5]  # 1 and 2 were broken.
  assert [paths[i] for i in sorted(paths)] == sorted(paths.values())


def test_word_frames_reads_the_duration_line(tmp_path):
  path = tmp_path / 'A_00001.txt'
  path.write_text('Text: A\nConf: 1\n\n\nDuration: 0.28 seconds\n')
  assert lrw.word_frames(str(path), 29) == (11, 18)  # 7 frames around 14.5.


def test_a_missing_copy_lists_the_layout(tmp_path):
  data = ml_collections.ConfigDict(dict(name='lrw', config='', data_dir=str(tmp_path / 'tfds'),
                                        manual_dir=str(tmp_path / 'nothing')))
  with pytest.raises(manual.ManualDownloadError) as e:
    pipeline.load_source(data, 'train')
  message = str(e.value)
  assert str(tmp_path / 'nothing') in message
  assert 'lipread_mp4/ABOUT/train/ABOUT_00001.mp4' in message and lrw.Lrw.HOMEPAGE in message
  (tmp_path / 'nothing').mkdir()
  (tmp_path / 'nothing' / 'README').write_text('not the dataset')
  with pytest.raises(manual.ManualDownloadError, match='has no lipread_mp4'):
    pipeline.load_source(data, 'train')


@pytest.mark.parametrize('name', ['recon', 'aot', 'odd'])
def test_tasks_preprocess_lrw_clips_after_one_override(prepared, name):
  from avjax import config_lib
  from avjax import tasks
  _, sources = prepared
  config = config_lib.load(name, 'tiny,data=lrw')
  assert (config.data.name, config.data.config) == ('lrw', '')
  assert config.probe.labels in ((), ('word',))
  task = tasks.TASKS[config.task](config)
  features = task.preprocess(sources['train'][0], np.random.default_rng(0))
  assert all(np.all(np.isfinite(v)) for v in features.values())
  if name == 'recon':  # Whole 64x64 frames; the mouth weight on the fixed lower-middle region.
    assert features['video'].shape == (config.recon.num_frames, 64, 64, 3)
    mask = np.asarray(task.expand(jax.tree.map(lambda x: x[None], features))['mouth_mask'])
    mask = mask[0, 0, ..., 0]
    assert mask[35:61, 16:48].all() and mask.sum() == 26 * 32


def test_a_clip_a_task_cannot_use_is_named(prepared):
  from avjax.data import pipeline as pipeline_lib
  _, sources = prepared
  def preprocess(example, rng):
    del rng
    raise ValueError(f'a clip of {len(example["video"])} frames is too short')
  ds = pipeline_lib.eval_dataset(sources['test'], preprocess, 1, seed=0)
  with pytest.raises(ValueError, match=r'lipread_mp4/\w+/test/\w+_00001.mp4: a clip of 29 frames'):
    ds[0]
