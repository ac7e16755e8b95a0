"""The CREMA-D builder on a tiny copy of its published layout, broken files included."""

import os

import ml_collections
import numpy as np
import pytest

import media_fixtures
from avjax.data import pipeline
from avjax.data.builders import crema_d_av
from avjax.data.builders import manual

SECONDS, FRAMES = 0.8, 20   # 20 frames at 25 fps.
VIDEO_TONE, WAV_TONE = 300, 500
# Two takes for the validation (1009) and test (1010) actors, one for the others.
TAKES = [f'{actor}_{crema_d_av.SENTENCES[k % 12]}_{crema_d_av.EMOTIONS[k % 6]}_'
         f'{crema_d_av.LEVELS[k % 4]}'
         for k, actor in enumerate([*range(1001, 1011), 1009, 1010])]


def _write_layout(root):
  """The good TAKES (30 fps FLV + 16 kHz WAV), then broken ones, all of train actors:
  1001_WSI_ANG_HI's WAV at 44.1 kHz stereo (repaired); 1002-1004_WSI_SAD_HI's FLV truncated,
  empty, garbage; 1005_WSI_SAD_HI without a WAV; 1006_WSI_SAD badly named (both files);
  WAVs alone: 1007_WSI_SAD_HI truncated, 1008_WSI_SAD_HI empty, 1007_WSI_FEA_HI garbage,
  1099_DFA_ANG_XX (no such actor)."""
  flv = lambda name: os.path.join(root, 'VideoFlash', name + '.flv')
  wav = lambda name: os.path.join(root, 'AudioWAV', name + '.wav')
  for name in [*TAKES, '1001_WSI_ANG_HI', '1002_WSI_SAD_HI', '1003_WSI_SAD_HI',
               '1004_WSI_SAD_HI', '1005_WSI_SAD_HI', '1006_WSI_SAD']:
    media_fixtures.write_video(flv(name), seconds=SECONDS, size=(64, 48), fps=30,
                               sample_rate=22050, tone=VIDEO_TONE)
    if name != '1005_WSI_SAD_HI':
      rate, channels = (44100, 2) if name == '1001_WSI_ANG_HI' else (16000, 1)
      media_fixtures.write_audio(wav(name), seconds=SECONDS, sample_rate=rate, channels=channels,
                                 tone=WAV_TONE)
  media_fixtures.truncate(flv('1002_WSI_SAD_HI'))
  media_fixtures.write_empty(flv('1003_WSI_SAD_HI'))
  media_fixtures.write_garbage(flv('1004_WSI_SAD_HI'))
  media_fixtures.truncate(media_fixtures.write_audio(wav('1007_WSI_SAD_HI'), seconds=SECONDS))
  media_fixtures.write_empty(wav('1008_WSI_SAD_HI'))
  media_fixtures.write_garbage(wav('1007_WSI_FEA_HI'))
  media_fixtures.write_audio(wav('1099_DFA_ANG_XX'), seconds=SECONDS)


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  """Config s64 from the whole copy, config audio from a copy of AudioWAV alone."""
  root = str(tmp_path_factory.mktemp('crema_d_manual'))
  _write_layout(root)
  audio_root = str(tmp_path_factory.mktemp('crema_d_audio_manual'))
  os.symlink(os.path.join(root, 'AudioWAV'), os.path.join(audio_root, 'AudioWAV'))
  data_dir = str(tmp_path_factory.mktemp('crema_d_tfds'))
  prepared = {}
  for config, manual_dir in (('s64', root), ('audio', audio_root)):
    data = ml_collections.ConfigDict(dict(name='crema_d_av', config=config, data_dir=data_dir,
                                          manual_dir=manual_dir))
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
  assert speakers == [str(a) for a in range(1001, 1011)]
  assert info.features['emotion'].names == ['ANG', 'DIS', 'FEA', 'HAP', 'NEU', 'SAD']
  by_split = {}
  for split, source in sources.items():
    for example in _examples(source):
      name = os.path.basename(example['path'].decode())[:-4]
      actor, sentence, emotion, level = name.split('_')
      assert speakers[example['speaker']] == actor
      assert crema_d_av.SENTENCES[example['sentence']] == sentence
      assert info.features['emotion'].int2str(example['emotion']) == emotion
      assert info.features['intensity'].int2str(example['intensity']) == level
      by_split.setdefault(split, set()).add(actor)
  assert by_split == {'train': {str(a) for a in range(1001, 1009)}, 'validation': {'1009'},
                      'test': {'1010'}}


def test_a_take_s_labels(prepared):
  _, sources = prepared['s64']
  example, = [e for e in _examples(sources['train'])
              if e['path'].decode() == 'VideoFlash/1008_ITH_DIS_XX.flv']
  assert (example['speaker'], example['sentence'], example['emotion'],
          example['intensity']) == (7, 7, 1, 3)


def test_video_frames_and_the_audio_of_the_wav(prepared):
  _, sources = prepared['s64']
  assert {s: len(v) for s, v in sources.items()} == {'train': 9, 'validation': 2, 'test': 2}
  for source in sources.values():
    for example in _examples(source):
      assert example['video'].shape == (FRAMES, 64, 64, 3) and example['video'].dtype == np.uint8
      assert example['audio'].shape == (FRAMES * 640,) and example['audio'].dtype == np.int16
      spectrum = np.abs(np.fft.rfft(example['audio'].astype(np.float64)))
      assert np.argmax(spectrum) / SECONDS == pytest.approx(WAV_TONE, abs=2)  # Not the FLV's.


def test_audio_config_reads_audio_wav_alone(prepared):
  data, sources = prepared['audio']
  assert {s: len(v) for s, v in sources.items()} == {'train': 12, 'validation': 2, 'test': 2}
  example = sources['test'][0]
  assert 'video' not in example and example['audio'].shape == (int(SECONDS * 16000),)
  assert pipeline.prepared_builder(data).info.metadata['frame_size'] is None


def _report(data):
  return manual.read_report(pipeline.prepared_builder(data).data_dir)


def test_report_of_the_video_config(prepared):
  report = _report(prepared['s64'][0])
  train = report['train']
  assert (train['files'], train['examples']) == (14, 9)
  assert {(f['path'], f['kind']) for f in train['skipped_files']} == {
      ('VideoFlash/1002_WSI_SAD_HI.flv', 'truncated'),
      ('VideoFlash/1003_WSI_SAD_HI.flv', 'empty'),
      ('VideoFlash/1004_WSI_SAD_HI.flv', 'unreadable'),
      ('VideoFlash/1005_WSI_SAD_HI.flv', 'missing audio'),
      ('VideoFlash/1006_WSI_SAD.flv', 'unexpected name')}
  assert [(f['path'], [r.split(' ')[0] for r in f['repairs']]) for f in train['repaired_files']
          ] == [('VideoFlash/1001_WSI_ANG_HI.flv', ['resampled', 'down-mixed'])]
  assert manual.summary('crema_d_av', report) == (
      'crema_d_av: 13 examples from 18 files (train 9, validation 2, test 2); skipped 5 '
      '(1 empty, 1 missing audio, 1 truncated, 1 unexpected name, 1 unreadable); '
      'repaired 2 (1 down-mixed, 1 resampled)')


def test_report_of_the_audio_config(prepared):
  report = _report(prepared['audio'][0])
  assert {(f['path'], f['kind']) for f in report['train']['skipped_files']} == {
      ('AudioWAV/1006_WSI_SAD.wav', 'unexpected name'),
      ('AudioWAV/1099_DFA_ANG_XX.wav', 'unexpected name'),
      ('AudioWAV/1007_WSI_SAD_HI.wav', 'truncated'),
      ('AudioWAV/1008_WSI_SAD_HI.wav', 'empty'),
      ('AudioWAV/1007_WSI_FEA_HI.wav', 'unreadable')}
  assert [f['path'] for f in report['train']['repaired_files']] == ['AudioWAV/1001_WSI_ANG_HI.wav']
  assert manual.summary('crema_d_av', report) == (
      'crema_d_av: 16 examples from 21 files (train 12, validation 2, test 2); skipped 5 '
      '(1 empty, 1 truncated, 2 unexpected name, 1 unreadable); '
      'repaired 2 (1 down-mixed, 1 resampled)')


def test_parse_name_and_the_split_rule():
  assert crema_d_av.parse_name('1091_DFA_ANG_XX') == (1091, dict(sentence=8, emotion=0,
                                                                  intensity=3))
  for bad in ('1000_DFA_ANG_XX', '1001_DFA_ANG', '1001_ABC_ANG_XX', '1001_DFA_ANG_XX_2'):
    with pytest.raises(ValueError):
      crema_d_av.parse_name(bad)
  splits = [manual.speaker_split(a - 1001) for a in crema_d_av.ACTORS]
  assert [splits.count(s) for s in ('train', 'validation', 'test')] == [73, 9, 9]
  assert splits[8:10] == ['validation', 'test'] and splits[88:] == ['validation', 'test', 'train']


def test_a_missing_copy_lists_the_layout(tmp_path):
  data = ml_collections.ConfigDict(dict(name='crema_d_av', config='s64',
                                        data_dir=str(tmp_path / 'tfds'),
                                        manual_dir=str(tmp_path / 'nothing')))
  with pytest.raises(manual.ManualDownloadError) as e:
    pipeline.load_source(data, 'train')
  message = str(e.value)
  assert str(tmp_path / 'nothing') in message and crema_d_av.CremaDAv.HOMEPAGE in message
  assert 'AudioWAV/1001_DFA_ANG_XX.wav' in message and 'VideoFlash/1001_DFA_ANG_XX.flv' in message
  media_fixtures.write_audio(str(tmp_path / 'nothing' / 'AudioWAV' / '1001_DFA_ANG_XX.wav'))
  with pytest.raises(manual.ManualDownloadError, match='has no VideoFlash'):
    pipeline.load_source(data, 'train')
