"""The speech suite on real datasets: tiny CREMA-D (emotion, clips of varying length) and
LRW (words) copies, probed with MFCCs only."""

import json
import os

import ml_collections
import numpy as np
import pytest

import media_fixtures
import test_data_lrw
from avjax.data import ops
from avjax.data import pipeline
from avjax.data.builders import crema_d_av
from avjax.evaluate import features
from avjax.evaluate import runs
from avjax.evaluate import speech

EMOTIONS = ('ANG', 'HAP', 'SAD')
# (actor, emotion, seconds): two takes per train actor (1001-1008), three for the
# validation (1009) and test (1010) actors; 0.5 s is 12.5 frames, cut to 12.
TAKES = [(actor, EMOTIONS[k % 3], (0.4, 0.5, 0.6, 0.8)[k % 4])
         for k, actor in enumerate([a for a in range(1001, 1009) for _ in range(2)]
                                   + [1009] * 3 + [1010] * 3)]


def _write_crema_d(root):
  for k, (actor, emotion, seconds) in enumerate(TAKES):
    name = f'{actor}_{crema_d_av.SENTENCES[k % 12]}_{emotion}_XX.wav'
    media_fixtures.write_audio(os.path.join(root, 'AudioWAV', name), seconds=seconds,
                               tone=300 + 200 * EMOTIONS.index(emotion))


def _data(name, config, data_dir, manual_dir):
  return ml_collections.ConfigDict(dict(name=name, config=config, data_dir=data_dir,
                                        manual_dir=manual_dir))


@pytest.fixture(scope='module')
def crema_d(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('crema_d_manual'))
  _write_crema_d(root)
  return _data('crema_d_av', 'audio', str(tmp_path_factory.mktemp('crema_d_tfds')), root)


@pytest.fixture(scope='module')
def lrw(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('lrw_manual'))
  test_data_lrw._write_layout(root)  # pylint: disable=protected-access
  return _data('lrw', '', str(tmp_path_factory.mktemp('lrw_tfds')), root)


def _config(data, **overrides):
  """The tiny suite on `data`: MFCCs only, two label fractions, one noise condition."""
  config = speech.get_config('tiny')
  config.data = data.to_dict()
  config.update({**dict(methods=('mfcc',), finetune=(), label_fractions=(0.5, 1.0),
                        min_examples=2), **overrides})
  return config


def _frames(seconds):
  return int(seconds * 16000) // 640


def test_clips_are_padded_to_the_longest_and_their_lengths_kept(crema_d):
  clips = speech.load_clips(crema_d, 'train')
  source = pipeline.load_source(crema_d, 'train')
  by_path = {source[i]['path'].decode(): i for i in range(len(source))}
  takes = {f'AudioWAV/{a}_{crema_d_av.SENTENCES[k % 12]}_{e}_XX.wav': (e, s)
           for k, (a, e, s) in enumerate(TAKES) if a < 1009}
  assert sorted(by_path) == sorted(takes)
  assert clips['waveform'].shape == (16, _frames(0.8) * 640)
  names = pipeline.class_names(crema_d, 'emotion')
  for path, i in by_path.items():
    emotion, seconds = takes[path]
    n = _frames(seconds)
    assert clips['length'][i] == n and names[clips['emotion'][i]] == emotion
    audio = source[i]['audio']
    np.testing.assert_array_equal(clips['waveform'][i, :n * 640], audio[:n * 640] / 32768.0)
    assert not clips['waveform'][i, n * 640:].any()
  examples = speech.task_examples('emotion', clips, 0)
  np.testing.assert_array_equal(examples.length, clips['length'])
  assert examples.index.shape == (16, _frames(0.8))
  np.testing.assert_array_equal(examples.target, clips['emotion'])
  assert 'words' not in clips and 'affect' not in clips


def test_clips_longer_than_max_clip_frames_are_cropped(crema_d):
  clips = speech.load_clips(crema_d, 'train', max_frames=_frames(0.5))
  assert clips['waveform'].shape == (16, _frames(0.5) * 640)
  assert set(clips['length']) == {_frames(0.4), _frames(0.5)}


def test_noise_and_standardisation_leave_the_padding_out():
  waveforms = np.zeros((2, 1280), np.float32)
  waveforms[0, :640] = np.sin(np.arange(640) / 5)
  waveforms[1] = np.sin(np.arange(1280) / 7)
  noisy = features.with_white_noise(waveforms, 0.0, seed=0, lengths=np.array([640, 1280]))
  assert not noisy[0, 640:].any()
  noise = noisy[0, :640] - waveforms[0, :640]
  assert 10 * np.log10(np.mean(waveforms[0, :640] ** 2) / np.mean(noise ** 2)) == pytest.approx(0)
  np.testing.assert_array_equal(noisy[1], features.with_white_noise(waveforms, 0.0, seed=0)[1])
  train = np.stack([np.r_[np.ones(2), np.zeros(2)], np.r_[3 * np.ones(2), np.zeros(2)]])[..., None]
  scaled, = features.standardize(train, lengths=np.array([2, 2]))
  np.testing.assert_allclose(scaled[:, :2, 0], [[-1, -1], [1, 1]], atol=1e-5)


def test_loudness_features_read_each_clip_s_own_samples():
  rng = np.random.default_rng(0)
  waveforms = np.zeros((2, 3200), np.float32)
  waveforms[0, :1280] = 0.5 * rng.standard_normal(1280)
  waveforms[1] = 0.1 * rng.standard_normal(3200)
  np.testing.assert_allclose(speech.clip_log_energy(waveforms, [1280, 3200]), np.log(
      [np.mean(waveforms[0, :1280] ** 2), np.mean(waveforms[1] ** 2)]), rtol=1e-5)
  mfcc = features.handcrafted_batch(waveforms, 'mfcc')  # [2, 5 frames, 4 hops x 13].
  dropped = speech.without_c0(mfcc)
  assert dropped.shape == (2, 5, 48)
  np.testing.assert_array_equal(dropped[1, 2], ops.mfcc(waveforms[1])[8:12, 1:].reshape(-1))
  # Standardising is per dimension: appending standardised energy = standardising both.
  x, e = rng.normal(size=(2, 3, 5, 4)), rng.normal(3, 2, size=(2, 3, 1, 1)).repeat(5, 2)
  split = lambda a: {'train': a[0], 'validation': a[1], 'test': {None: a[1]}}
  scaled = split(features.standardize(*x)), split(features.standardize(*e))
  joined = speech.loudness_inputs('recon', *scaled)['recon+energy']
  together = features.standardize(*np.concatenate([x, e], -1))
  np.testing.assert_allclose(joined['train'], together[0], atol=1e-9)
  np.testing.assert_allclose(joined['test'][None], together[1], atol=1e-9)
  assert list(speech.loudness_inputs('mfcc', split(mfcc[None].repeat(2, 0)), None)) == [
      'mfcc-c0']


def test_tasks_follow_the_dataset(crema_d, lrw):
  assert speech.dataset_tasks(crema_d) == ('emotion',)
  assert speech.dataset_tasks(lrw) == ('word',)
  avsynth = ml_collections.ConfigDict(dict(runs.avsynth('heads_tiny'), data_dir=''))
  assert speech.dataset_tasks(avsynth) == ('word', 'emotion', 'affect')
  assert speech.resolve_tasks(_config(lrw), ('word',)) == (('word',), ('word',))
  config = _config(crema_d, tasks=('emotion',), finetune_tasks=('emotion',))
  assert speech.resolve_tasks(config, ('emotion',)) == (('emotion',), ('emotion',))


@pytest.mark.parametrize('field, task', [('tasks', 'affect'), ('finetune_tasks', 'word')])
def test_a_task_the_dataset_lacks_is_an_error_before_any_work(crema_d, tmp_path, field, task):
  workdir = tmp_path / 'suite'
  with pytest.raises(ValueError, match=rf"speech task '{task}' needs the features .*which "
                     r"dataset crema_d_av/audio lacks; its tasks: \['emotion'\]"):
    speech.run(_config(crema_d, **{field: (task,)}), str(workdir))
  assert not workdir.exists()


def test_pretraining_reads_pretrain_data(crema_d, lrw):
  config = _config(crema_d)
  config.pretrain_data = runs.parse_data('lrw', lrw.manual_dir)
  method = speech.method_config(config, 'recon')
  assert (method.data.name, method.data.manual_dir) == ('lrw', lrw.manual_dir)
  assert method.data.data_dir == crema_d.data_dir and method.total_steps == 2
  assert not method.recon.align_faces  # recon's own settings for real, face-centred clips.
  default = speech.method_config(_config(crema_d), 'recon').data
  assert (default.name, default.config) == ('avsynth', 'heads_tiny')


def test_emotion_on_crema_d(crema_d, tmp_path):
  rows = speech.run(_config(crema_d), str(tmp_path))
  assert {(r['task'], r['metric']) for r in rows} == {('emotion', 'accuracy'), ('emotion', 'uar')}
  assert {(r['label_fraction'], r['num_train_examples']) for r in rows} == {(0.5, 8), (1.0, 16)}
  assert {r['snr_db'] for r in rows} == {None, 0.0} and {r['seed'] for r in rows} == {0}
  # mfcc at 2 fractions; the loudness rows (energy alone, mfcc without c0) at 100%.
  assert {(r['method'], r['label_fraction']) for r in rows} == {
      ('mfcc', 0.5), ('mfcc', 1.0), ('energy', 1.0), ('mfcc-c0', 1.0)}
  assert len(rows) == 16 and all(0 <= r['value'] <= 1 for r in rows)
  assert json.loads((tmp_path / 'results.json').read_text())['rows'] == rows
  assert 'Probed on crema_d_av/audio.' in (tmp_path / 'results.md').read_text()


def test_words_on_lrw(lrw, tmp_path):
  clips = speech.load_clips(lrw, 'train')
  examples = speech.task_examples('word', clips, speech.max_word_frames({'train': clips}))
  assert clips['waveform'].shape == (4, 29 * 640) and list(clips['length']) == [29] * 4
  np.testing.assert_array_equal(examples.target, [w[0] for w in clips['words']])
  np.testing.assert_array_equal(examples.length, [e[0] - s[0] for s, e in
                                                  zip(clips['word_start'], clips['word_end'])])
  assert speech.num_outputs(lrw, 'word') == len(test_data_lrw.WORDS)
  rows = speech.run(_config(lrw, label_fractions=(1.0,)), str(tmp_path))
  assert {(r['task'], r['metric'], r['num_train_examples']) for r in rows} == {
      ('word', 'accuracy', 4)}
  assert len(rows) == 2
