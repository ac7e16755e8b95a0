"""The VoxCeleb1 and VoxCeleb2 builders on tiny copies of their published layouts, broken
files included."""

import os

import ml_collections
import numpy as np
import pytest

import media_fixtures
from avjax.data import pipeline
from avjax.data.builders import manual
from avjax.data.builders import voxceleb

SPLITS = ('train', 'validation', 'test')
SECONDS = 0.6
SAMPLES = int(SECONDS * 16000)  # 9600: 15 frames of 640.

# VoxCeleb1: speaker -> {video: utterances}. id10002/bbb/00001 is 44.1 kHz stereo.
VOX1 = {'id10001': {'Av1': 2, 'Bv2': 1}, 'id10002': {'aaa': 1, 'bbb': 1},
        'id10003': {'ccc': 2},  # One video: nothing held out.
        'id10270': {'v1': 2, 'v2': 1}, 'id10271': {'w1': 1, 'w2': 1},
        'id10272': {'x1': 1, 'x2': 1}}
VOX1_SPEAKERS = sorted(VOX1)
# The cleaned list; test examples (sorted): 0 id10270/v1/00001, 1 id10270/v1/00002,
# 2 id10270/v2/00001, 3 id10271/w1/00001, 4 id10271/w2/00001 (truncated),
# 5 id10272/x1/00001 (empty), 6 id10272/x2/00001.
VERI_TEST2 = """\
1 id10270/v1/00001.wav id10270/v2/00001.wav
0 id10270/v1/00001.wav id10271/w1/00001.wav
1 id10271/w1/00001.wav id10271/w2/00001.wav
0 id10270/v1/00002.wav id10272/x1/00001.wav
0 id10272/x2/00001.wav id10271/w1/00001.wav

1 id10270/v2/00001.wav id10270/v1/00002.wav
1 id10270/v1/00002.wav id10270/v9/00001.wav
0 id10273/z1/00001.wav id10270/v2/00001.wav
"""
KEPT_TRIALS = [[1, 0, 2], [0, 0, 3], [0, 6, 3], [1, 2, 1]]
IDEN_SPLIT = """\
1 id10001/Av1/00001.wav
1 id10001/Av1/00002.wav
1 id10001/Av1/00003.wav
2 id10001/Bv2/00001.wav
1 id10002/aaa/00001.wav
2 id10002/bbb/00001.wav
3 id10003/ccc/00001.wav
3 id10003/ccc/00002.wav
1 id10099/gone/00001.wav
3 id10270/v1/00001.wav
"""

# VoxCeleb2 dev and test: speaker -> {video: clips}.
VOX2_DEV = {'id00012': {'aaa': 1, 'bbb': 1}, 'id00015': {'ccc': 2, 'ddd': 1},
            'id00017': {'eee': 2, 'fff': 1}}
VOX2_TEST = {'id00020': {'ggg': 1, 'hhh': 1}}
VOX2_SPEAKERS = sorted({**VOX2_DEV, **VOX2_TEST})


def tone(speaker_ids, speaker):
  return 200 + 100 * speaker_ids.index(speaker)


def _utterances(layout):
  return [(s, v, u) for s, videos in layout.items() for v, n in videos.items()
          for u in range(1, n + 1)]


def _write_vox1(root):
  """VOX1's WAVs, then: id10001/Av1/00003 garbage, id10271/w2/00001 truncated,
  id10272/x1/00001 empty, id10003/ccc/take1.wav badly named, a .txt (ignored); both
  trial lists (veri_test.txt would make id10003 a test speaker) and iden_split.txt."""
  wav = os.path.join(root, 'wav', '{}', '{}', '{}')
  for speaker, video, u in _utterances(VOX1):
    rate, channels = (44100, 2) if (speaker, video) == ('id10002', 'bbb') else (16000, 1)
    media_fixtures.write_audio(wav.format(speaker, video, f'{u:05d}.wav'), SECONDS, rate,
                               channels, tone(VOX1_SPEAKERS, speaker))
  media_fixtures.write_garbage(wav.format('id10001', 'Av1', '00003.wav'))
  media_fixtures.truncate(wav.format('id10271', 'w2', '00001.wav'))
  media_fixtures.write_empty(wav.format('id10272', 'x1', '00001.wav'))
  media_fixtures.write_audio(wav.format('id10003', 'ccc', 'take1.wav'), SECONDS)
  with open(wav.format('id10003', 'ccc', 'notes.txt'), 'w') as f:
    f.write('not audio')
  files = {'veri_test2.txt': VERI_TEST2, 'iden_split.txt': IDEN_SPLIT,
           'veri_test.txt': VERI_TEST2 + '1 id10003/ccc/00001.wav id10003/ccc/00002.wav\n'}
  for name, text in files.items():
    with open(os.path.join(root, name), 'w') as f:
      f.write(text)


def _write_vox2_clip(root, part, speaker, video, name, audio=True):
  """An mp4 and its m4a; video 'bbb' at 44.1 kHz stereo."""
  rate, channels = (44100, 2) if video == 'bbb' else (16000, 1)
  hz = tone(VOX2_SPEAKERS, speaker)
  path = os.path.join(root, part, '{}', speaker, video, name + '.{}')
  media_fixtures.write_video(path.format('mp4', 'mp4'), SECONDS, (64, 64), sample_rate=rate,
                             channels=channels, audio=audio, tone=hz)
  media_fixtures.write_audio(path.format('aac', 'm4a'), SECONDS, rate, channels, hz)


def _write_vox2(root):
  """VOX2's mp4s and m4as, then: id00012/bbb at 44.1 kHz stereo, id00015/ddd truncated,
  id00017/eee/00002 empty, id00017/fff garbage, id00015/ccc/00002.mp4 without audio,
  id00012/aaa/clip badly named."""
  for part, layout in (('dev', VOX2_DEV), ('test', VOX2_TEST)):
    for speaker, video, u in _utterances(layout):
      _write_vox2_clip(root, part, speaker, video, f'{u:05d}', audio=(video, u) != ('ccc', 2))
  _write_vox2_clip(root, 'dev', 'id00012', 'aaa', 'clip')
  for folder, ext in (('mp4', 'mp4'), ('aac', 'm4a')):
    dev = os.path.join(root, 'dev', folder, '{}', '{}', '{}.' + ext)
    media_fixtures.truncate(dev.format('id00015', 'ddd', '00001'))
    media_fixtures.write_empty(dev.format('id00017', 'eee', '00002'))
    media_fixtures.write_garbage(dev.format('id00017', 'fff', '00001'))
  os.makedirs(os.path.join(root, 'dev', 'txt'))  # Published beside them; not read.


def _prepare(tmp_path_factory, name, configs, write):
  root = str(tmp_path_factory.mktemp(f'{name}_manual'))
  write(root)
  data_dir = str(tmp_path_factory.mktemp(f'{name}_tfds'))
  prepared = {}
  for config in configs:
    data = ml_collections.ConfigDict(dict(name=name, config=config, manual_dir=root,
                                          data_dir=data_dir))
    pipeline.prepared_builder(data)
    builder = pipeline.prepared_builder(data)  # Read back: metadata as written.
    sources = {s: pipeline.load_source(data, s) for s in SPLITS if s in builder.info.splits}
    prepared[config] = builder, {s: _examples(v) for s, v in sources.items()}
  return prepared


def _examples(source):
  """The examples of a data source, paths decoded."""
  examples = [source[i] for i in range(len(source))]
  return [{**e, 'path': e['path'].decode()} for e in examples]


def _speaker_track(path):
  """('idXXXXX', 'idXXXXX/VIDEO') of a path under wav/, dev/mp4/, test/aac/, ..."""
  parts = path.split('/')
  speaker = next(i for i, p in enumerate(parts) if p.startswith('id'))
  return parts[speaker], '/'.join(parts[speaker:speaker + 2])


def _assert_labels(builder, examples):
  names = builder.info.metadata['class_names']
  for example in examples:
    speaker, track = _speaker_track(example['path'])
    assert names['speaker'][example['speaker']] == speaker
    assert names['track'][example['track']] == track


def _frequency(audio):
  return np.argmax(np.abs(np.fft.rfft(audio.astype(np.float64)))) * 16000 / len(audio)


@pytest.fixture(scope='module')
def vox1(tmp_path_factory):
  return _prepare(tmp_path_factory, 'voxceleb1', ('verification', 'identification'),
                  _write_vox1)


@pytest.fixture(scope='module')
def vox2(tmp_path_factory):
  return _prepare(tmp_path_factory, 'voxceleb2', ('s64', 'audio'), _write_vox2)


def _paths(splits):
  return {s: sorted(e['path'][len('wav/'):] for e in examples) for s, examples in splits.items()}


def test_vox1_verification_splits_hold_out_last_videos_and_test_speakers(vox1):
  builder, splits = vox1['verification']
  assert _paths(splits) == {
      'train': ['id10001/Av1/00001.wav', 'id10001/Av1/00002.wav', 'id10002/aaa/00001.wav',
                'id10003/ccc/00001.wav', 'id10003/ccc/00002.wav'],
      'validation': ['id10001/Bv2/00001.wav', 'id10002/bbb/00001.wav'],
      'test': ['id10270/v1/00001.wav', 'id10270/v1/00002.wav', 'id10270/v2/00001.wav',
               'id10271/w1/00001.wav', 'id10272/x2/00001.wav']}
  test_speakers = {e['speaker'] for e in splits['test']}
  assert not test_speakers & {e['speaker'] for s in ('train', 'validation') for e in splits[s]}
  assert builder.info.metadata['class_names']['speaker'] == VOX1_SPEAKERS
  for examples in splits.values():
    _assert_labels(builder, examples)
    for example in examples:
      assert example['audio'].shape == (SAMPLES,) and example['audio'].dtype == np.int16
      assert 'video' not in example
      speaker = _speaker_track(example['path'])[0]
      assert abs(_frequency(example['audio']) - tone(VOX1_SPEAKERS, speaker)) < 2


def test_vox1_trials_name_test_examples_by_index(vox1):
  builder, splits = vox1['verification']
  metadata = builder.info.metadata
  assert metadata['trial_list'] == 'veri_test2.txt'  # Preferred over veri_test.txt.
  assert metadata['trials'] == KEPT_TRIALS
  assert metadata['trials_dropped'] == 4  # 2 name missing files, 2 broken ones.
  by_index = {int(e['index']): e for e in splits['test']}
  for label, a, b in metadata['trials']:
    assert label == int(by_index[a]['speaker'] == by_index[b]['speaker'])
  assert by_index[6]['path'] == 'wav/id10272/x2/00001.wav'


def test_vox1_verification_report(vox1):
  builder, _ = vox1['verification']
  report = manual.read_report(builder.data_dir)
  skipped = {s: {(f['path'], f['kind']) for f in r['skipped_files']} for s, r in report.items()}
  assert skipped == {
      'train': {('wav/id10001/Av1/00003.wav', 'unreadable'),
                ('wav/id10003/ccc/take1.wav', 'unexpected name')},
      'validation': set(),
      'test': {('wav/id10271/w2/00001.wav', 'truncated'),
               ('wav/id10272/x1/00001.wav', 'empty')}}
  repaired = report['validation']['repaired_files']
  assert [f['path'] for f in repaired] == ['wav/id10002/bbb/00001.wav']
  assert [r.split(' ')[0] for r in repaired[0]['repairs']] == ['resampled', 'down-mixed']
  assert manual.summary('voxceleb1', report) == (
      'voxceleb1: 12 examples from 16 files (train 5, validation 2, test 5); skipped 4 '
      '(1 empty, 1 truncated, 1 unexpected name, 1 unreadable); repaired 2 (1 down-mixed, '
      '1 resampled)')


def test_vox1_identification_follows_iden_split(vox1):
  builder, splits = vox1['identification']
  assert _paths(splits) == {
      'train': ['id10001/Av1/00001.wav', 'id10001/Av1/00002.wav', 'id10002/aaa/00001.wav'],
      'validation': ['id10001/Bv2/00001.wav', 'id10002/bbb/00001.wav'],
      'test': ['id10003/ccc/00001.wav', 'id10003/ccc/00002.wav', 'id10270/v1/00001.wav']}
  assert 'trials' not in builder.info.metadata
  for examples in splits.values():
    _assert_labels(builder, examples)
  report = manual.read_report(builder.data_dir)
  assert {(f['path'], f['kind']) for f in report['train']['skipped_files']} == {
      ('wav/id10001/Av1/00003.wav', 'unreadable'), ('wav/id10099/gone/00001.wav', 'missing')}
  assert sorted(int(e['index']) for e in splits['train']) == [0, 1, 3]  # 2 broken, 4 missing.


def test_vox1_falls_back_to_veri_test_and_needs_a_trial_list(tmp_path):
  for speaker, video in (('id10270', 'v1'), ('id10270', 'v2'), ('id10001', 'a')):
    media_fixtures.write_audio(str(tmp_path / 'manual' / 'wav' / speaker / video / '00001.wav'),
                               SECONDS)
  data = ml_collections.ConfigDict(dict(name='voxceleb1', config='verification',
                                        manual_dir=str(tmp_path / 'manual'),
                                        data_dir=str(tmp_path / 'tfds')))
  with pytest.raises(manual.ManualDownloadError, match='has no veri_test2.txt or veri_test.txt'):
    pipeline.prepared_builder(data)
  (tmp_path / 'manual' / 'veri_test.txt').write_text(
      '1 id10270/v1/00001.wav id10270/v2/00001.wav\n')
  builder = pipeline.prepared_builder(data)
  assert builder.info.metadata['trial_list'] == 'veri_test.txt'
  assert builder.info.metadata['trials'] == [[1, 0, 1]]
  assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {
      'train': 1, 'test': 2}  # One video: no validation.


def test_vox2_av_splits_media_and_labels(vox2):
  builder, splits = vox2['s64']
  assert {s: sorted(e['path'] for e in v) for s, v in splits.items()} == {
      'train': ['dev/mp4/id00012/aaa/00001.mp4', 'dev/mp4/id00015/ccc/00001.mp4',
                'dev/mp4/id00017/eee/00001.mp4'],
      'validation': ['dev/mp4/id00012/bbb/00001.mp4'],
      'test': ['test/mp4/id00020/ggg/00001.mp4', 'test/mp4/id00020/hhh/00001.mp4']}
  names = builder.info.metadata['class_names']
  assert names['speaker'] == VOX2_SPEAKERS and len(names['track']) == 8
  for examples in splits.values():
    _assert_labels(builder, examples)
    for example in examples:
      assert example['video'].shape == (15, 64, 64, 3) and example['video'].dtype == np.uint8
      assert example['audio'].shape == (15 * 640,)
      speaker = _speaker_track(example['path'])[0]
      assert abs(_frequency(example['audio']) - tone(VOX2_SPEAKERS, speaker)) < 2


def test_vox2_av_report(vox2):
  builder, _ = vox2['s64']
  report = manual.read_report(builder.data_dir)
  skipped = {s: {(f['path'].split('/', 2)[2], f['kind']) for f in r['skipped_files']}
             for s, r in report.items()}
  assert skipped == {
      'train': {('id00012/aaa/clip.mp4', 'unexpected name'),
                ('id00015/ccc/00002.mp4', 'no audio track'),
                ('id00017/eee/00002.mp4', 'empty')},
      'validation': {('id00015/ddd/00001.mp4', 'truncated'),
                     ('id00017/fff/00001.mp4', 'unreadable')},
      'test': set()}
  assert [f['path'] for f in report['validation']['repaired_files']] == [
      'dev/mp4/id00012/bbb/00001.mp4']
  assert manual.summary('voxceleb2', report) == (
      'voxceleb2: 6 examples from 11 files (train 3, validation 1, test 2); skipped 5 '
      '(1 empty, 1 no audio track, 1 truncated, 1 unexpected name, 1 unreadable); '
      'repaired 2 (1 down-mixed, 1 resampled)')


def test_vox2_audio_reads_the_m4a_files(vox2):
  builder, splits = vox2['audio']
  assert {s: len(v) for s, v in splits.items()} == {'train': 4, 'validation': 1, 'test': 2}
  assert all(e['path'].split('/')[1] == 'aac' and e['path'].endswith('.m4a')
             for v in splits.values() for e in v)
  for examples in splits.values():
    _assert_labels(builder, examples)
    for example in examples:
      assert example['audio'].shape == (SAMPLES,) and 'video' not in example
  report = manual.read_report(builder.data_dir)
  assert report['train']['skipped'] == {'unexpected name': 1, 'empty': 1}
  assert report['validation']['skipped'] == {'truncated': 1, 'unreadable': 1}
  assert [f['path'] for f in report['validation']['repaired_files']] == [
      'dev/aac/id00012/bbb/00001.m4a']


def test_split_rule_holds_out_each_speakers_last_video():
  paths = ['id00001/b/00001.wav', 'id00001/a/00001.wav', 'id00001/c/00002.wav',
           'id00002/z/00001.wav', 'x.wav']
  train, validation = voxceleb.split_held_out(paths)
  assert validation == ['id00001/c/00002.wav']
  assert train == ['id00001/b/00001.wav', 'id00001/a/00001.wav', 'id00002/z/00001.wav', 'x.wav']


@pytest.mark.parametrize('name, config, layout_line', [
    ('voxceleb1', 'verification', 'wav/id10001/1zcIwhmdeo4/00001.wav'),
    ('voxceleb2', 's64', 'dev/mp4/id00012/21Uxsk56VDQ/00001.mp4')])
def test_a_missing_copy_lists_the_layout(tmp_path, name, config, layout_line):
  data = ml_collections.ConfigDict(dict(name=name, config=config, data_dir=str(tmp_path / 't'),
                                        manual_dir=str(tmp_path / 'nothing')))
  with pytest.raises(manual.ManualDownloadError) as e:
    pipeline.load_source(data, 'train')
  assert str(tmp_path / 'nothing') in str(e.value) and layout_line in str(e.value)
  (tmp_path / 'nothing').mkdir()
  (tmp_path / 'nothing' / 'README').write_text('not the dataset')
  required = {'voxceleb1': 'has no wav', 'voxceleb2': 'has no dev/mp4'}[name]
  with pytest.raises(manual.ManualDownloadError, match=required):
    pipeline.load_source(data, 'train')


def test_identification_needs_iden_split(tmp_path):
  media_fixtures.write_audio(str(tmp_path / 'wav' / 'id10001' / 'a' / '00001.wav'), SECONDS)
  data = ml_collections.ConfigDict(dict(name='voxceleb1', config='identification',
                                        manual_dir=str(tmp_path), data_dir=str(tmp_path / 't')))
  with pytest.raises(manual.ManualDownloadError, match='has no iden_split.txt'):
    pipeline.prepared_builder(data)
