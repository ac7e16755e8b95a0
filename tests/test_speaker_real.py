"""The speaker suite on real data: a tiny VoxCeleb1 copy (test_data_voxceleb's layout) with
utterances of several lengths, scored by the MFCC baseline only (nothing pretrains)."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

import media_fixtures
import test_data_voxceleb
from avjax import tasks
from avjax.data import ops
from avjax.data import pipeline
from avjax.evaluate import speaker as speaker_suite
from avjax.evaluate import verification
from avjax.models import twostream

# Utterances made longer than the layout's 0.6 s (15 frames): path -> seconds.
LONGER = {'id10270/v1/00002.wav': 1.0, 'id10271/w1/00001.wav': 0.8,
          'id10001/Av1/00001.wav': 1.2}


def _frames(path):
  return round(LONGER.get(path, test_data_voxceleb.SECONDS) * 25)


@pytest.fixture(scope='module')
def vox1(tmp_path_factory):
  """The tiny config of the suite on voxceleb1/verification, prepared."""
  root = str(tmp_path_factory.mktemp('voxceleb1_manual'))
  test_data_voxceleb._write_vox1(root)  # pylint: disable=protected-access
  for path, seconds in LONGER.items():
    media_fixtures.write_audio(os.path.join(root, 'wav', path), seconds, tone=(
        test_data_voxceleb.tone(test_data_voxceleb.VOX1_SPEAKERS, path.split('/')[0])))
  config = speaker_suite.get_config('tiny')
  config.data.update(name='voxceleb1', config='verification', manual_dir=root,
                     data_dir=str(tmp_path_factory.mktemp('voxceleb1_tfds')))
  pipeline.prepared_builder(config.data)
  return config


def _paths(data):
  return [name[len('wav/'):] for name in data['name']]


def test_real_splits_load_ragged_utterances_without_content_labels(vox1):
  data = speaker_suite.load_data(vox1)
  test = data['test']
  assert sorted(_paths(test)) == ['id10270/v1/00001.wav', 'id10270/v1/00002.wav',
                                  'id10270/v2/00001.wav', 'id10271/w1/00001.wav',
                                  'id10272/x2/00001.wav']
  for split, d in data.items():
    assert 'viseme' not in d and 'words' not in d and ('audio' in d) == (split == 'test')
    np.testing.assert_array_equal(d['frames'], [_frames(p) for p in _paths(d)])
    assert [len(m) for m in d['mel']] == [4 * f for f in d['frames']]  # 100 mel frames/s.
  assert [len(w) for w in test['audio']] == [640 * f for f in test['frames']]
  assert speaker_suite.probe_splits(data) == ('train', 'validation')
  # Crops spread over each utterance's own length: the last one ends at its end.
  crops = speaker_suite.crops_of(test['mel'], 10, 3)
  assert crops.shape == (5, 3, 40, 40)
  for mel, utterance_crops in zip(test['mel'], crops):
    np.testing.assert_array_equal(utterance_crops[-1], mel[len(mel) - 40:])
  probe = speaker_suite.probe_inputs({s: data[s] for s in ('train', 'validation')})
  assert {x.shape for x in probe.values()} == {(5, 60, 40), (2, 60, 40)}
  subset = speaker_suite.load_split(vox1, 'train', limit=3)  # Speaker-stratified.
  assert sorted(subset['speaker']) == [0, 1, 2] and set(subset['name']) < set(data['train']['name'])


def test_mfcc_verification_scores_the_builders_trials(vox1, tmp_path):
  config = ml_collections.ConfigDict(vox1.to_dict())
  config.update(methods=(), label_fractions=())
  rows = speaker_suite.run(config, str(tmp_path))
  assert rows == json.loads((tmp_path / 'results.json').read_text())['rows']
  found = {(r['task'], r['method'], r['metric']): r['value'] for r in rows}
  assert set(found) == {('verification', 'mfcc', m) for m in (
      'eer', 'min_dcf_0.01', 'min_dcf_0.05', 'identification')} | {
          ('probe', method, f'speaker_from_{head}') for method in ('chance', 'mfcc')
          for head in ('identity', 'content')}
  # The trials, mapped by `index` here: each speaker's clips are one tone, so a perfect split.
  builder = pipeline.prepared_builder(config.data)
  source = pipeline.load_source(config.data, 'test')
  by_index = {int(source[i]['index']): source[i] for i in range(len(source))}
  labels, a, b = np.array(builder.info.metadata['trials']).T
  embed = lambda ids: speaker_suite.mfcc_embeddings(
      [ops.to_float(by_index[i]['audio']) for i in ids], config.crop_frames, config.crops)
  scores = verification.cosine_scores(embed(a), embed(b))
  assert found['verification', 'mfcc', 'eer'] == verification.eer(scores, labels)[0] == 0.0
  assert found['verification', 'mfcc', 'identification'] == 1.0  # id10270/v2 among 3 speakers.
  assert 0 <= found['probe', 'chance', 'speaker_from_identity'] <= 1
  assert found['probe', 'mfcc', 'speaker_from_identity'] == 1.0  # Another video, one tone.
  text = (tmp_path / 'results.md').read_text()
  assert 'Verified on voxceleb1/verification' in text and 'no disentangle variant run' in text
  assert '(4 trials of the list name files missing or broken, dropped by the build)' in text
  assert 'No viseme or word probes: voxceleb1/verification has no per-frame' in text
  # id10001 and id10002 have two videos each (train and validation), id10003 one.
  assert 'of 2 speakers, from tracks (sessions, videos) the probe was not fitted' in text
  assert 'a single track, fitted on but not scored: 1' in text
  assert 'avsynth' not in text and (tmp_path / 'det.png').stat().st_size > 1000


def test_speaker_probe_of_ragged_utterances(vox1):
  data = speaker_suite.load_data(vox1)
  encoder = twostream.AudioEncoder(features=(4, 8, 8, 8, 8, 16), embedding=16)
  shapes = jax.eval_shape(encoder.init, jax.random.key(0), data['train']['mel'][0][None, :40])
  rng = np.random.default_rng(0)  # Random weights without compiling an init (seconds here).
  params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32) * 0.3,
                        shapes['params'])
  rows = speaker_suite.probe_rows('random', encoder, params, data, vox1)
  assert [r['metric'] for r in rows] == ['speaker_from_identity', 'speaker_from_content']
  assert all(0 <= r['value'] <= 1 for r in rows)


def test_supervised_runs_train_on_the_verification_datasets_speakers(vox1, tmp_path):
  method = speaker_suite.finetune_config(vox1, '', 0.5, str(tmp_path))
  assert (method.data.name, method.data.config, method.data.manual_dir) == (
      'voxceleb1', 'verification', vox1.data.manual_dir)
  task = tasks.TASKS[method.task](method)
  assert task.head.features == len(test_data_voxceleb.VOX1_SPEAKERS)  # From class_names.
  train = pipeline.train_source(method.data, method.seed)
  assert len(train) == 3  # Half of the 5 train clips, rounded up, stratified by speaker.
  example = task.preprocess(train[0], np.random.default_rng(0))
  assert example['mel'].shape == (40, 40) and example['label'] in (0, 1, 2)  # Train speakers.


@pytest.mark.parametrize('pretrain', ['voxceleb1', 'voxceleb2/audio'])
def test_pretraining_on_a_dataset_without_video_fails_before_any_work(tmp_path, pretrain):
  config = speaker_suite.get_config('tiny')
  config.data.update(name='voxceleb1', config='verification', data_dir=str(tmp_path / 'tfds'),
                     manual_dir=str(tmp_path / 'nothing'))  # Never read.
  name, _, data_config = pretrain.partition('/')
  config.pretrain_data.update(name=name, config=data_config)
  with pytest.raises(ValueError, match=rf"pretrain on dataset {pretrain}, which lacks the "
                                       r"features \['video'\]"):
    speaker_suite.run(config, str(tmp_path / 'work'))
  config.pretrain_data.update(name='voxceleb2', config='')
  speaker_suite.check_datasets(config)  # Faces and tracks: fine.
  config.data.update(name='lrw', config='')
  with pytest.raises(ValueError, match=r"verifies speakers on dataset lrw, which lacks the "
                                       r"features \['speaker', 'track'\]"):
    speaker_suite.check_datasets(config)
  assert not (tmp_path / 'work').exists() and not (tmp_path / 'tfds').exists()


def test_a_dataset_config_without_trials_and_utterances_shorter_than_a_crop(vox1, tmp_path):
  config = ml_collections.ConfigDict(vox1.to_dict())
  config.data.config = 'identification'
  with pytest.raises(ValueError, match=r'voxceleb1/identification/1.0.0 lists no verification '
                                       r"trials \(metadata\['trials'\]\)"):
    speaker_suite.run(config, str(tmp_path / 'work'))
  config.data.config = 'verification'
  config.update(methods=(), crop_frames=20)
  with pytest.raises(ValueError, match=r'train: 4 utterances are shorter than a 20-frame crop '
                                       r'\(0.8 s, config.crop_frames\), e.g. '
                                       r'wav/id10001/Av1/00002.wav \(15 frames\)'):
    speaker_suite.run(config, str(tmp_path / 'work'))
  assert not (tmp_path / 'work').exists()
