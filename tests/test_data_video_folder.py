"""The video_folder builder on a tree of sub-folders and on an AudioSet download, broken files
included; its listing rules on empty placeholder files."""

import hashlib
import os

import ml_collections
import numpy as np
import pytest

import media_fixtures
from avjax.data import media
from avjax.data import pipeline
from avjax.data.builders import manual
from avjax.data.builders import video_folder

SECONDS, FRAMES = 0.6, 15
GOOD = ('cats/a.mp4', 'cats/b.avi', 'cats/clip18.mp4', 'dogs/c.flv', 'dogs/puppies/d.mov',
        'top.mp4')
BROKEN = {'cats/trunc.mp4': 'truncated', 'dogs/empty.mp4': 'empty',
          'dogs/garbage.mkv': 'unreadable', 'cats/silent.mp4': 'no audio track'}


def _in_validation(key):
  """The stated rule: the first 8 bytes of SHA-1, big-endian, below 10% of 2**64."""
  return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], 'big') < 0.1 * 2**64


def _video(root, path, **kwargs):
  """A video at `path`, written as .mp4 and renamed for the containers fixtures do not write
  (ffmpeg reads a file by its content)."""
  full = os.path.join(root, path)
  ext = os.path.splitext(path)[1]
  written = full if ext in ('.mp4', '.avi', '.flv') else full + '.mp4'
  media_fixtures.write_video(written, **kwargs)
  os.replace(written, full)
  return full


def _write_folders(root):
  """GOOD (b.avi at 44.1 kHz stereo, c.flv at 22.05 kHz: FLV has no 16 kHz PCM), BROKEN, a
  text file and a hidden folder."""
  for i, path in enumerate(GOOD):
    rate, channels = {'cats/b.avi': (44100, 2), 'dogs/c.flv': (22050, 1)}.get(path, (16000, 1))
    _video(root, path, seconds=SECONDS, sample_rate=rate, channels=channels, tone=300 + 50 * i)
  media_fixtures.truncate(_video(root, 'cats/trunc.mp4', seconds=SECONDS))
  media_fixtures.write_empty(os.path.join(root, 'dogs/empty.mp4'))
  media_fixtures.write_garbage(os.path.join(root, 'dogs/garbage.mkv'))
  _video(root, 'cats/silent.mp4', seconds=SECONDS, audio=False)
  media_fixtures.write_empty(os.path.join(root, '.hidden/x.mp4'))
  with open(os.path.join(root, 'notes.txt'), 'w') as f:
    f.write('not a video')


CSV_HEADER = ('# Segments csv created Sun Mar  5 10:54:31 2017\n'
              '# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n'
              '# YTID, start_seconds, end_seconds, positive_labels\n')
CSVS = {
    'balanced_train_segments.csv': ['AAAAAAAAAAA, 30.000, 31.000, "/m/a,/m/b"',
                                    'BBBBBBBBBBB, 1.200, 2.000, "/m/b"',
                                    'DDDDDDDDDDD, 0.000, 10.000, "/m/a"',
                                    'FFFFFFFFFFF, thirty, 40.000, "/m/a"'],
    'unbalanced_train_segments.csv': ['EEEEEEEEEEE, 10.000, 11.000, "/m/a"',
                                      'GGGGGGGGGGG, 0.000, 1.000, "/m/c"'],
    'eval_segments.csv': ['CCCCCCCCCCC, 0.000, 1.000, "/m/c,/m/a"']}


def _write_audioset(root):
  """A's file is its 1 s segment (and A hashes into validation), B's the full 3 s video,
  C's an .mkv in a sub-folder; D has no file, F's row does not parse, E's file is cut, G's has
  no audio, and no row names ZZZZZZZZZZZ.mp4."""
  for name, rows in CSVS.items():
    with open(os.path.join(root, name), 'w') as f:
      f.write(CSV_HEADER + ''.join(f'{row}\n' for row in rows))
  _video(root, 'AAAAAAAAAAA_30000.mp4', seconds=1.0, tone=400)
  _video(root, 'videos/BBBBBBBBBBB.mp4', seconds=3.0, tone=500)
  _video(root, 'videos/eval/CCCCCCCCCCC_0.000_1.000.mkv', seconds=1.0, tone=600)
  media_fixtures.truncate(_video(root, 'EEEEEEEEEEE.mp4', seconds=1.0))
  _video(root, 'GGGGGGGGGGG.mp4', seconds=1.0, audio=False)
  media_fixtures.write_empty(os.path.join(root, 'ZZZZZZZZZZZ.mp4'))


def _prepare(tmp_path_factory, write):
  root = str(tmp_path_factory.mktemp('video_folder_manual'))
  write(root)
  data = ml_collections.ConfigDict(dict(name='video_folder', config='', manual_dir=root,
                                        data_dir=str(tmp_path_factory.mktemp('vf_tfds'))))
  builder = pipeline.prepared_builder(data)
  sources = {s: pipeline.load_source(data, s) for s in builder.info.splits}
  return builder, sources, root


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
  return _prepare(tmp_path_factory, _write_folders)


@pytest.fixture(scope='module')
def audioset(tmp_path_factory):
  return _prepare(tmp_path_factory, _write_audioset)


def _examples(source):
  return {source[i]['path'].decode(): source[i] for i in range(len(source))}


def test_folders_give_labels_and_hashed_validation(folders):
  builder, sources, _ = folders
  names = builder.info.metadata['class_names']
  assert names == {'label': ['cats', 'dogs'], 'labels': ['cats', 'dogs']}
  expected = {'train': set(), 'validation': set()}
  for path in GOOD:
    expected['validation' if _in_validation(path) else 'train'].add(path)
  assert expected['validation'] == {'cats/clip18.mp4', 'top.mp4'}  # As the names were chosen.
  assert {s: set(_examples(v)) for s, v in sources.items()} == expected
  for source in sources.values():
    for path, example in _examples(source).items():
      label = -1 if path == 'top.mp4' else names['label'].index(path.split('/')[0])
      assert example['label'] == label
      assert list(example['labels']) == ([label] if label >= 0 else [])
      assert example['video'].shape == (FRAMES, 64, 64, 3) and example['video'].dtype == np.uint8
      assert example['audio'].shape == (FRAMES * 640,) and example['audio'].dtype == np.int16
      spectrum = np.abs(np.fft.rfft(example['audio'].astype(np.float64)))
      assert np.argmax(spectrum) * 16000 / len(example['audio']) == pytest.approx(
          300 + 50 * GOOD.index(path), abs=3)


def test_folders_report(folders):
  builder, _, _ = folders
  report = manual.read_report(builder.data_dir)
  skipped = {(f['path'], f['kind']) for r in report.values() for f in r['skipped_files']}
  assert skipped == set(BROKEN.items())
  for split, r in report.items():
    assert {f['path'] for f in r['skipped_files']} == {
        p for p in BROKEN if (split == 'validation') == _in_validation(p)}
  repaired = {f['path']: f['repairs'] for r in report.values() for f in r['repaired_files']}
  assert sorted(repaired) == ['cats/b.avi', 'dogs/c.flv']
  assert [r.split(' ')[0] for r in repaired['cats/b.avi']] == ['resampled', 'down-mixed']
  assert repaired['dogs/c.flv'] == ['resampled from 22050 Hz (expected 16000 Hz)']
  assert manual.summary('video_folder', report) == (
      'video_folder: 6 examples from 10 files (train 4, validation 2); skipped 4 (1 empty, '
      '1 no audio track, 1 truncated, 1 unreadable); repaired 3 (1 down-mixed, 2 resampled)')


def test_audioset_segments_labels_and_splits(audioset):
  builder, sources, _ = audioset
  assert builder.info.metadata['class_names']['labels'] == ['/m/a', '/m/b', '/m/c']
  examples = {s: _examples(v) for s, v in sources.items()}
  assert {s: set(v) for s, v in examples.items()} == {
      'train': {'videos/BBBBBBBBBBB.mp4'}, 'validation': {'AAAAAAAAAAA_30000.mp4'},
      'test': {'videos/eval/CCCCCCCCCCC_0.000_1.000.mkv'}}
  a = examples['validation']['AAAAAAAAAAA_30000.mp4']
  c = examples['test']['videos/eval/CCCCCCCCCCC_0.000_1.000.mkv']
  assert list(a['labels']) == [0, 1] and a['label'] == 0
  assert list(c['labels']) == [2, 0] and c['label'] == 2
  assert len(a['video']) == len(c['video']) == 25  # The files are their 1 s segments.
  assert len(a['audio']) == 25 * 640


def test_audioset_cuts_a_full_video_to_its_segment(audioset):
  _, sources, root = audioset
  b = _examples(sources['train'])['videos/BBBBBBBBBBB.mp4']
  assert b['video'].shape == (round((2.0 - 1.2) * 25), 64, 64, 3)
  assert b['audio'].shape == (20 * 640,) and list(b['labels']) == [1]
  cut = media.read_video(os.path.join(root, 'videos/BBBBBBBBBBB.mp4'), 64, 1.2, 0.8)
  np.testing.assert_array_equal(b['video'], cut)
  whole = media.read_video(os.path.join(root, 'videos/BBBBBBBBBBB.mp4'), 64)
  assert not np.array_equal(b['video'][0], whole[0])  # testsrc's counter moves.


def test_audioset_report(audioset):
  builder, _, _ = audioset
  report = manual.read_report(builder.data_dir)
  assert {(f['path'], f['kind']) for f in report['train']['skipped_files']} == {
      ('DDDDDDDDDDD', 'missing'), ('balanced_train_segments.csv line 7', 'bad row'),
      ('EEEEEEEEEEE.mp4', 'truncated'), ('GGGGGGGGGGG.mp4', 'no audio track')}
  assert report['validation']['skipped_files'] == report['test']['skipped_files'] == []
  assert manual.summary('video_folder', report) == (
      'video_folder: 3 examples from 7 files (train 1, validation 1, test 1); skipped 4 '
      '(1 bad row, 1 missing, 1 no audio track, 1 truncated); repaired 0')


def _placeholders(root, paths):
  for path in paths:
    media_fixtures.write_empty(os.path.join(root, path))
  return video_folder.video_files(str(root))


def _listing(splits):
  return {s: {i.path: (i.labels['label'] if isinstance(i, manual.Item) else i.kind)
              for i in items} for s, items in splits.items()}


def test_split_folders_are_the_splits(tmp_path):
  files = _placeholders(tmp_path, ['train/cats/x.mp4', 'train/dogs/y.webm', 'train/top.mp4',
                                   'val/cats/z.mp4', 'test/dogs/w.MOV', 'stray/q.mp4'])
  splits, names = video_folder.folder_items(str(tmp_path), files)
  assert names == ['cats', 'dogs']
  assert _listing(splits) == {
      'train': {'train/cats/x.mp4': 0, 'train/dogs/y.webm': 1, 'train/top.mp4': -1,
                'stray/q.mp4': 'unexpected name'},
      'validation': {'val/cats/z.mp4': 0}, 'test': {'test/dogs/w.MOV': 1}}


def test_without_a_validation_folder_validation_is_hashed_from_train(tmp_path):
  paths = [f'train/cats/clip{i}.mp4' for i in range(30)] + ['test/cats/t.mp4']
  splits, _ = video_folder.folder_items(str(tmp_path), _placeholders(tmp_path, paths))
  assert {i.path for i in splits['validation']} == {p for p in paths[:30] if _in_validation(p)}
  assert len(splits['validation']) + len(splits['train']) == 30 and len(splits['test']) == 1
  assert splits['validation']


def test_labels_csv_gives_the_labels(tmp_path):
  files = _placeholders(tmp_path, ['a/1.mp4', 'a/2.mp4', 'b/3.mp4'])
  (tmp_path / 'labels.csv').write_text('path,label\na/1.mp4,speech\n./b/3.mp4,music\n'
                                       'gone.mp4,speech\n')
  labels = video_folder.read_labels(str(tmp_path / 'labels.csv'))
  splits, names = video_folder.folder_items(str(tmp_path), files, labels)
  assert names == ['music', 'speech']
  listing = {p: v for s in _listing(splits).values() for p, v in s.items()}
  assert listing == {'a/1.mp4': 1, 'a/2.mp4': -1, 'b/3.mp4': 0, 'gone.mp4': 'missing'}


def test_a_file_longer_than_its_segment_is_the_full_video():
  segment = video_folder.Segment('AAAAAAAAAAA', 30.0, 40.0, ('/m/a',))
  assert video_folder.cut(segment, 10.0) == (None, None)     # The segment.
  assert video_folder.cut(segment, 10.8) == (None, None)     # The segment, a little long.
  assert video_folder.cut(segment, 300.0) == (30.0, 10.0)    # The full video.
  assert video_folder.cut(segment, 35.0) == (30.0, 10.0)     # Full, ending in the segment.
  late = video_folder.Segment('AAAAAAAAAAA', 100.0, 110.0, ())
  assert video_folder.cut(late, 12.0) == (None, None)        # Ends before it would start.


def test_a_missing_or_videoless_dir_lists_the_layout(tmp_path):
  data = ml_collections.ConfigDict(dict(name='video_folder', config='',
                                        data_dir=str(tmp_path / 'tfds'),
                                        manual_dir=str(tmp_path / 'nothing')))
  with pytest.raises(manual.ManualDownloadError) as e:
    pipeline.load_source(data, 'train')
  assert str(tmp_path / 'nothing') in str(e.value) and 'labels.csv' in str(e.value)
  (tmp_path / 'nothing').mkdir()
  (tmp_path / 'nothing' / 'README').write_text('no videos here')
  with pytest.raises(manual.ManualDownloadError, match='no video files'):
    pipeline.load_source(data, 'train')
