"""The UCF-101 builder on a tiny copy of its published layout, broken files included."""

import os

import ml_collections
import numpy as np
import pytest

import media_fixtures
from avjax.data import media
from avjax.data import pipeline
from avjax.data.builders import manual
from avjax.data.builders import ucf101_av

# classInd order; ApplyEyeMakeup has no audio (as in UCF-101), BandMarching has.
CLASSES = ('ApplyEyeMakeup', 'BandMarching', 'HandstandPushups')
FILE_CLASS = {'HandstandPushups': 'HandStandPushups'}  # UCF's file names differ in case.
CLIPS = ('g01_c01', 'g01_c02', 'g02_c01', 'g02_c02', 'g03_c01')
SECONDS, FRAMES = 0.6, 15


def _clip(name, clip):
  return f'{name}/v_{FILE_CLASS.get(name, name)}_{clip}.avi'


def _write_layout(root, seconds=SECONDS):
  """3 classes x 5 clips, `seconds` long, of groups g01 (test), g02 (train), g03
  (validation), then: ApplyEyeMakeup g02_c02 garbage, HandstandPushups g03_c01 empty,
  BandMarching g01_c02 listed with no file, BandMarching g03_c01 at 16 kHz mono (UCF's is
  44.1 kHz stereo), an unlisted Juggling/ clip (not in classInd) and an unlisted, badly
  named file."""
  videos = os.path.join(root, 'UCF-101')
  for c, name in enumerate(CLASSES):
    for clip in CLIPS:
      rate, channels = (16000, 1) if (name, clip) == ('BandMarching', 'g03_c01') else (44100, 2)
      media_fixtures.write_video(os.path.join(videos, _clip(name, clip)), seconds=seconds,
                                 sample_rate=rate, channels=channels, audio=c > 0,
                                 tone=300 + 100 * c)
  media_fixtures.write_garbage(os.path.join(videos, _clip('ApplyEyeMakeup', 'g02_c02')))
  media_fixtures.write_empty(os.path.join(videos, _clip('HandstandPushups', 'g03_c01')))
  os.remove(os.path.join(videos, _clip('BandMarching', 'g01_c02')))
  media_fixtures.write_empty(os.path.join(videos, 'Juggling/v_Juggling_g01_c01.avi'))
  media_fixtures.write_empty(os.path.join(videos, 'BandMarching/clip.avi'))
  lists = os.path.join(root, 'ucfTrainTestlist')
  os.makedirs(lists)
  with open(os.path.join(lists, 'classInd.txt'), 'w') as f:
    f.writelines(f'{i} {name}\r\n' for i, name in enumerate(CLASSES, 1))
  with open(os.path.join(lists, 'trainlist01.txt'), 'w') as f:
    f.writelines(f'{_clip(name, clip)} {i}\r\n' for i, name in enumerate(CLASSES, 1)
                 for clip in CLIPS if not clip.startswith('g01'))
  with open(os.path.join(lists, 'testlist01.txt'), 'w') as f:
    f.writelines(f'{_clip(name, clip)}\r\n' for name in CLASSES
                 for clip in CLIPS if clip.startswith('g01'))


def _data_config(tmp_path_factory, root, config=''):
  return ml_collections.ConfigDict(dict(name='ucf101_av', config=config, manual_dir=root,
                                        data_dir=str(tmp_path_factory.mktemp('ucf_tfds'))))


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('ucf_manual'))
  _write_layout(root)
  data = _data_config(tmp_path_factory, root)
  sources = {s: pipeline.load_source(data, s) for s in ('train', 'validation', 'test')}
  return data, sources


def _examples(source):
  return [source[i] for i in range(len(source))]


def test_splits_labels_and_media(prepared):
  data, sources = prepared
  assert {s: len(v) for s, v in sources.items()} == {'train': 5, 'validation': 2, 'test': 5}
  assert pipeline.prepared_builder(data).info.metadata['class_names']['action'] == list(CLASSES)
  groups = {}
  for split, source in sources.items():
    for example in _examples(source):
      path = example['path'].decode()
      name = path.split('/')[1]
      assert example['action'] == CLASSES.index(name)
      assert f'_g{example["group"]:02d}_' in path
      groups.setdefault(split, set()).add(int(example['group']))
      assert example['video'].shape == (FRAMES, 64, 64, 3) and example['video'].dtype == np.uint8
      assert example['audio'].shape == (FRAMES * 640,) and example['audio'].dtype == np.int16
      assert bool(example['has_audio']) == (name != 'ApplyEyeMakeup')
  # Validation is the train list's last group: disjoint from train's and test's groups.
  assert groups == {'train': {2}, 'validation': {3}, 'test': {1}}


def test_audio_is_kept_and_silence_is_silent(prepared):
  _, sources = prepared
  for example in _examples(sources['test']):
    audio = example['audio'].astype(np.float64)
    if not example['has_audio']:
      assert not audio.any()
      continue
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * 16000 / len(audio) == pytest.approx(
        300 + 100 * example['action'], abs=3)


def test_broken_files_are_skipped_or_repaired_and_reported(prepared):
  data, _ = prepared
  report = manual.read_report(pipeline.prepared_builder(data).data_dir)
  skipped = {s: {(f['path'], f['kind']) for f in r['skipped_files']} for s, r in report.items()}
  assert skipped == {
      'train': {('UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c02.avi', 'unreadable'),
                ('UCF-101/Juggling/v_Juggling_g01_c01.avi', 'unexpected name'),
                ('UCF-101/BandMarching/clip.avi', 'unexpected name')},
      'validation': {('UCF-101/HandstandPushups/v_HandStandPushups_g03_c01.avi', 'empty')},
      'test': {('UCF-101/BandMarching/v_BandMarching_g01_c02.avi', 'missing')}}
  details = {f['path']: f['detail'] for f in report['train']['skipped_files']}
  assert 'not in classInd' in details['UCF-101/Juggling/v_Juggling_g01_c01.avi']
  repaired = {f['path']: f['repairs'] for r in report.values() for f in r['repaired_files']}
  assert [r.split(' ')[0] for r in repaired.pop(
      'UCF-101/BandMarching/v_BandMarching_g03_c01.avi')] == ['resampled', 'down-mixed']
  assert sorted(repaired) == [_clip_path('ApplyEyeMakeup', c) for c in CLIPS if c != 'g02_c02']
  assert all(r == ['no audio track: silent audio'] for r in repaired.values())
  assert {s: r['repaired'] for s, r in report.items()} == {
      'train': {'no audio track': 1},
      'validation': {'no audio track': 1, 'resampled': 1, 'down-mixed': 1},
      'test': {'no audio track': 2}}
  assert manual.summary('ucf101_av', report) == (
      'ucf101_av: 12 examples from 17 files (train 5, validation 2, test 5); '
      'skipped 5 (1 empty, 1 missing, 2 unexpected name, 1 unreadable); '
      'repaired 6 (1 down-mixed, 4 no audio track, 1 resampled)')


def _clip_path(name, clip):
  return f'UCF-101/{_clip(name, clip)}'


def test_index_is_the_position_in_the_sorted_list(prepared):
  _, sources = prepared
  paths = {int(e['index']): e['path'].decode() for e in _examples(sources['test'])}
  assert sorted(paths) == [0, 1, 2, 4, 5]  # 3, BandMarching g01_c02, has no file.
  assert [paths[i] for i in sorted(paths)] == sorted(paths.values())


def test_fold_splits_keep_groups_apart():
  train = [f'A/v_A_g{g:02d}_c01.avi' for g in (8, 9, 25)]
  splits = ucf101_av.fold_splits(train, ['A/v_A_g01_c01.avi'])
  assert splits == {'train': train[:2], 'validation': train[2:], 'test': ['A/v_A_g01_c01.avi']}


def test_a_missing_copy_or_fold_lists_the_layout(prepared, tmp_path_factory, tmp_path):
  data, _ = prepared
  with pytest.raises(manual.ManualDownloadError) as e:
    pipeline.load_source(_data_config(tmp_path_factory, str(tmp_path / 'nothing')), 'train')
  assert str(tmp_path / 'nothing') in str(e.value)
  assert 'UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi' in str(e.value)
  assert ucf101_av.Ucf101Av.HOMEPAGE in str(e.value)
  fold2 = _data_config(tmp_path_factory, data.manual_dir, 'fold2_s64')
  with pytest.raises(manual.ManualDownloadError, match='trainlist02.txt, ucfTrainTestlist/test'):
    pipeline.load_source(fold2, 'train')


def test_a_truncated_avi_is_truncated(tmp_path):
  path = media_fixtures.write_video(str(tmp_path / 'v_A_g01_c01.avi'), seconds=SECONDS,
                                    sample_rate=44100, channels=2)
  media_fixtures.truncate(path)
  with pytest.raises(media.MediaError) as e:
    media.read_clip(path, 64, ucf101_av.Ucf101Av.AUDIO, silent_ok=True)
  assert e.value.kind == media.TRUNCATED
