"""The RAVDESS builder on a tiny copy of its published layout, broken files included."""

import os

import ml_collections
import numpy as np
import pytest

import media_fixtures
from avjax.data import pipeline
from avjax.data.builders import manual
from avjax.data.builders import ravdess

SECONDS, FRAMES = 0.8, 20   # 20 frames at 25 fps.
TONE = 440
ACTORS = range(1, 11)       # 1-8 train, 9 validation, 10 test.


def _codes(actor):
  """Vocal channel, emotion, intensity, statement, repetition (varied by actor) and actor."""
  k = actor - 1
  return f'{1 + k % 2:02d}-{1 + k % 8:02d}-{1 + k // 2 % 2:02d}-{1 + k // 3 % 2:02d}-' \
         f'{1 + k // 4 % 2:02d}-{actor:02d}'


def _write_layout(root):
  """Per actor an audio-visual MP4 (01-...) and an audio-only WAV (03-...), Actor_08's MP4
  with stereo audio, and Actor_01's video-only 02-01-01-01-01-01-01.mp4 (left out); broken:
  MP4s truncated (02), empty (03), garbage (04), without audio (05), emotion 09 (06), actor 08
  in Actor_07, a name with six fields (09); WAVs 03-01-05-02-01-01-AA stereo (01, repaired),
  truncated (03), empty (04), garbage (05), and 03-01-05-02-01-01-6.wav (06)."""
  path = lambda actor, name: os.path.join(root, f'Actor_{actor:02d}', name)
  for actor in ACTORS:
    media_fixtures.write_video(path(actor, f'01-{_codes(actor)}.mp4'), seconds=SECONDS,
                               size=(80, 48), fps=30, sample_rate=48000,
                               channels=2 if actor == 8 else 1, tone=TONE)
    media_fixtures.write_audio(path(actor, f'03-{_codes(actor)}.wav'), seconds=SECONDS,
                               sample_rate=48000, tone=TONE)
  media_fixtures.write_video(path(1, '02-01-01-01-01-01-01.mp4'), seconds=SECONDS,
                             size=(80, 48), audio=False)
  broken = lambda actor, modality: path(actor, f'{modality}-01-05-02-01-01-{actor:02d}.'
                                        + ('wav' if modality == '03' else 'mp4'))
  media_fixtures.truncate(media_fixtures.write_video(broken(2, '01'), seconds=SECONDS,
                                                     size=(80, 48), sample_rate=48000))
  media_fixtures.write_empty(broken(3, '01'))
  media_fixtures.write_garbage(broken(4, '01'))
  media_fixtures.write_video(broken(5, '01'), seconds=SECONDS, size=(80, 48), audio=False)
  media_fixtures.write_video(path(6, '01-01-09-01-01-01-06.mp4'), seconds=SECONDS,
                             size=(80, 48), sample_rate=48000)
  media_fixtures.write_video(path(7, '01-01-05-02-01-01-08.mp4'), seconds=SECONDS,
                             size=(80, 48), sample_rate=48000)
  media_fixtures.write_video(path(9, '01-01-05-02-01-09.mp4'), seconds=SECONDS, size=(80, 48),
                             sample_rate=48000)
  media_fixtures.write_audio(broken(1, '03'), seconds=SECONDS, sample_rate=48000, channels=2)
  media_fixtures.truncate(media_fixtures.write_audio(broken(3, '03'), seconds=SECONDS,
                                                     sample_rate=48000))
  media_fixtures.write_empty(broken(4, '03'))
  media_fixtures.write_garbage(broken(5, '03'))
  media_fixtures.write_audio(path(6, '03-01-05-02-01-01-6.wav'), seconds=SECONDS,
                             sample_rate=48000)


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('ravdess_manual'))
  _write_layout(root)
  data_dir = str(tmp_path_factory.mktemp('ravdess_tfds'))
  prepared = {}
  for config in ('s64', 'audio'):
    data = ml_collections.ConfigDict(dict(name='ravdess', config=config, data_dir=data_dir,
                                          manual_dir=root))
    prepared[config] = data, {s: pipeline.load_source(data, s)
                              for s in ('train', 'validation', 'test')}
  return prepared


def _examples(source):
  return [source[i] for i in range(len(source))]


@pytest.mark.parametrize('config', ['s64', 'audio'])
def test_labels_from_names_and_speaker_disjoint_splits(prepared, config):
  data, sources = prepared[config]
  info = pipeline.prepared_builder(data).info
  speakers = info.metadata['class_names']['speaker']
  assert speakers == [f'Actor_{a:02d}' for a in ACTORS]
  by_split = {}
  for split, source in sources.items():
    for example in _examples(source):
      folder, name = example['path'].decode().split('/')
      codes = [int(c) for c in name[:-4].split('-')]
      assert codes[0] == (3 if config == 'audio' else 1)
      assert speakers[example['speaker']] == folder and int(folder[-2:]) == codes[6]
      assert info.features['vocal_channel'].int2str(example['vocal_channel']) == (
          'speech', 'song')[codes[1] - 1]
      assert info.features['emotion'].int2str(example['emotion']) == ravdess.EMOTIONS[codes[2] - 1]
      assert info.features['intensity'].int2str(example['intensity']) == (
          'normal', 'strong')[codes[3] - 1]
      assert info.features['statement'].int2str(example['statement']).startswith(
          ('Kids', 'Dogs')[codes[4] - 1])
      assert example['repetition'] == codes[5]
      assert info.features['sex'].int2str(example['sex']) == ('female', 'male')[codes[6] % 2]
      by_split.setdefault(split, set()).add(folder)
  assert by_split == {'train': {f'Actor_{a:02d}' for a in range(1, 9)},
                      'validation': {'Actor_09'}, 'test': {'Actor_10'}}


def test_an_actor_s_labels(prepared):
  _, sources = prepared['s64']
  example, = [e for e in _examples(sources['train'])
              if e['path'].decode() == 'Actor_06/01-02-06-01-02-02-06.mp4']
  assert {k: int(example[k]) for k in ('speaker', 'vocal_channel', 'emotion', 'intensity',
                                       'statement', 'repetition', 'sex')} == dict(
      speaker=5, vocal_channel=1, emotion=5, intensity=0, statement=1, repetition=2, sex=0)


def test_video_frames_and_their_audio_track(prepared):
  _, sources = prepared['s64']
  assert {s: len(v) for s, v in sources.items()} == {'train': 8, 'validation': 1, 'test': 1}
  for source in sources.values():
    for example in _examples(source):
      assert example['video'].shape == (FRAMES, 64, 64, 3) and example['video'].dtype == np.uint8
      assert example['audio'].shape == (FRAMES * 640,) and example['audio'].dtype == np.int16
      spectrum = np.abs(np.fft.rfft(example['audio'].astype(np.float64)))
      assert np.argmax(spectrum) / SECONDS == pytest.approx(TONE, abs=2)


def test_audio_config_reads_the_wavs(prepared):
  _, sources = prepared['audio']
  assert {s: len(v) for s, v in sources.items()} == {'train': 9, 'validation': 1, 'test': 1}
  for example in _examples(sources['train']):
    assert 'video' not in example and example['audio'].shape == (int(SECONDS * 16000),)


def _report(data):
  return manual.read_report(pipeline.prepared_builder(data).data_dir)


def test_report_of_the_video_config(prepared):
  report = _report(prepared['s64'][0])
  assert {(f['path'], f['kind']) for s in report.values() for f in s['skipped_files']} == {
      ('Actor_02/01-01-05-02-01-01-02.mp4', 'truncated'),
      ('Actor_03/01-01-05-02-01-01-03.mp4', 'empty'),
      ('Actor_04/01-01-05-02-01-01-04.mp4', 'unreadable'),
      ('Actor_05/01-01-05-02-01-01-05.mp4', 'no audio track'),
      ('Actor_06/01-01-09-01-01-01-06.mp4', 'unexpected name'),
      ('Actor_07/01-01-05-02-01-01-08.mp4', 'unexpected name'),
      ('Actor_09/01-01-05-02-01-09.mp4', 'unexpected name')}
  mismatch, = [f for f in report['train']['skipped_files'] if 'Actor_07' in f['path']]
  assert mismatch['detail'] == 'actor 08 in folder Actor_07'
  assert [f['path'] for f in report['train']['repaired_files']] == [f'Actor_08/01-{_codes(8)}.mp4']
  assert manual.summary('ravdess', report) == (
      'ravdess: 10 examples from 17 files (train 8, validation 1, test 1); skipped 7 (1 empty, '
      '1 no audio track, 1 truncated, 3 unexpected name, 1 unreadable); '
      'repaired 1 (1 down-mixed)')


def test_report_of_the_audio_config(prepared):
  report = _report(prepared['audio'][0])
  skipped = {f['path']: f for f in report['train']['skipped_files']}
  assert {path: f['kind'] for path, f in skipped.items()} == {
      'Actor_03/03-01-05-02-01-01-03.wav': 'truncated',
      'Actor_04/03-01-05-02-01-01-04.wav': 'empty',
      'Actor_05/03-01-05-02-01-01-05.wav': 'unreadable',
      'Actor_06/03-01-05-02-01-01-6.wav': 'unexpected name'}
  assert 'MM-VV-EE-II-SS-RR-AA' in skipped['Actor_06/03-01-05-02-01-01-6.wav']['detail']
  repaired, = report['train']['repaired_files']
  assert repaired['path'] == 'Actor_01/03-01-05-02-01-01-01.wav'
  assert repaired['repairs'] == ['down-mixed from 2 channels (expected 1)']
  assert manual.summary('ravdess', report) == (
      'ravdess: 11 examples from 15 files (train 9, validation 1, test 1); skipped 4 (1 empty, '
      '1 truncated, 1 unexpected name, 1 unreadable); repaired 1 (1 down-mixed)')


def test_parse_name_and_the_split_rule():
  assert ravdess.parse_name('01-02-08-02-01-02-24', 24) == dict(
      modality=1, vocal_channel=2, emotion=8, intensity=2, statement=1, repetition=2, actor=24)
  for bad in ('01-01-09-01-01-01-01', '04-01-01-01-01-01-01', '01-01-01-01-01-01-25',
              '01-01-01-01-01-01', '01-01-01-01-01-01-1', '01-01-01-01-01-01-02'):
    with pytest.raises(ValueError):
      ravdess.parse_name(bad, 1)
  splits = [manual.speaker_split(a - 1) for a in range(1, 25)]
  assert [a for a, s in zip(range(1, 25), splits) if s != 'train'] == [9, 10, 19, 20]
  assert splits[8:10] == ['validation', 'test'] and splits[18:20] == ['validation', 'test']


def test_a_missing_copy_lists_the_layout(tmp_path):
  data = ml_collections.ConfigDict(dict(name='ravdess', config='s64',
                                        data_dir=str(tmp_path / 'tfds'),
                                        manual_dir=str(tmp_path / 'nothing')))
  with pytest.raises(manual.ManualDownloadError) as e:
    pipeline.load_source(data, 'train')
  message = str(e.value)
  assert str(tmp_path / 'nothing') in message and ravdess.Ravdess.HOMEPAGE in message
  assert 'Actor_01/01-01-03-02-01-01-01.mp4' in message
  media_fixtures.write_audio(str(tmp_path / 'nothing' / 'Actor_01' / '03-01-01-01-01-01-01.wav'))
  with pytest.raises(manual.ManualDownloadError, match='has no modality-01 .mp4 files'):
    pipeline.load_source(data, 'train')
