"""Tests for the speaker task (supervised speaker classification, or fine-tuning of a
disentangle export) and the speaker suite's pieces."""

import jax
import numpy as np
import pytest
from sklearn import decomposition

from avjax import checkpoint
from avjax import export
from avjax import tasks
from avjax import train
from avjax.data import ops
from avjax.data.synth import heads
from avjax.evaluate import linear_probe
from avjax.evaluate import speaker as speaker_suite
from configs import disentangle as disentangle_config
from configs import speaker as speaker_config

TINY_RUN = dict(batch_size=4, total_steps=2, log_every=1, eval_every=2, checkpoint_every=2)


def tiny_config(name, module, data_dir, **overrides):
  config = module.get_config('tiny')
  config.data.data_dir = data_dir
  config.update(TINY_RUN)
  config.update_from_flattened_dict(overrides)
  return config


def test_speaker_crops_are_utterance_normalised_log_mel():
  config = speaker_config.get_config('tiny')
  task = tasks.TASKS['speaker'](config)
  audio = ops.to_int16(0.1 * np.random.default_rng(0).normal(size=16000))
  features = task.preprocess({'audio': audio, 'speaker': np.int32(3)},
                             np.random.default_rng(1))
  mel = speaker_suite.disentangle.log_mel_features(audio)
  size = 4 * config.speaker.crop_frames
  assert features['mel'].shape == (size, 40) and features['label'] == 3
  starts = [s for s in range(0, len(mel) - size + 1, 4)
            if np.array_equal(mel[s:s + size], features['mel'])]
  assert len(starts) == 1  # A crop of the whole utterance's features, on a frame boundary.
  with pytest.raises(ValueError, match='shorter than the 40-frame crop'):
    task.preprocess({'audio': audio[:4000], 'speaker': np.int32(0)}, np.random.default_rng(0))


def test_speaker_starts_from_a_disentangle_export_and_checks_its_shape(data_dir, tmp_path):
  pretrain = tiny_config('disentangle', disentangle_config, data_dir)
  train.train_and_evaluate(pretrain, str(tmp_path / 'pretrain'))
  export.export_encoders(str(tmp_path / 'pretrain'), str(tmp_path / 'export'))
  exported = checkpoint.restore_params(str(tmp_path / 'pretrain'))['speaker_encoder']
  config = tiny_config('speaker', speaker_config, data_dir,
                       **{'speaker.init_from': str(tmp_path / 'export')})
  task = tasks.TASKS['speaker'](config)
  batch = {'mel': np.zeros((2, 4 * config.speaker.crop_frames, 40), np.float32)}
  params = task.init(jax.random.key(0), batch)
  jax.tree.map(np.testing.assert_array_equal, params['speaker_encoder'], exported)
  assert params['head']['kernel'].shape == (config.model.embedding, 4)  # heads_tiny speakers.
  config.model.embedding = 8
  with pytest.raises(ValueError, match='differs from the one config.model builds'):
    tasks.TASKS['speaker'](config).init(jax.random.key(0), batch)


def test_speaker_loss_falls_on_a_fixed_batch():
  config = speaker_config.get_config('tiny')
  task = tasks.TASKS['speaker'](config)
  rng = np.random.default_rng(0)
  batch = {'mel': rng.normal(size=(4, 40, 40)).astype(np.float32),
           'label': np.arange(4, dtype=np.int32)}
  params = task.init(jax.random.key(0), batch)
  grad = jax.jit(jax.grad(lambda p: task.loss(p, batch, None)[0]))
  loss = jax.jit(lambda p: task.loss(p, batch, None)[0])
  before = float(loss(params))
  for _ in range(20):
    params = jax.tree.map(lambda p, g: p - 0.05 * g, params, grad(params))
  assert float(loss(params)) < 0.5 * before


def test_trial_positions_follow_the_index_feature():
  index = np.array([3, 0, 2, 1])  # The `index` feature of each record, shuffled.
  labels, a, b = speaker_suite.trial_positions([(1, 0, 3), (0, 2, 1)], index)
  np.testing.assert_array_equal(labels, [1, 0])
  np.testing.assert_array_equal(index[a], [0, 2])
  np.testing.assert_array_equal(index[b], [3, 1])
  with pytest.raises(ValueError, match=r'name examples \[7\]'):
    speaker_suite.trial_positions([(1, 0, 7)], index)


def test_crops_are_evenly_spaced_and_cover_both_ends():
  np.testing.assert_array_equal(speaker_suite.crop_starts(50, 20, 4), [0, 10, 20, 30])
  mels = [np.arange(200 * 40, dtype=np.float32).reshape(200, 40)] * 2
  crops = speaker_suite.crops_of(mels, 20, 3)
  assert crops.shape == (2, 3, 80, 40)
  np.testing.assert_array_equal(crops[0, 2], mels[0][120:200])
  with pytest.raises(ValueError, match='shorter than a 20-frame crop'):
    speaker_suite.crop_starts(10, 20, 2)


def test_mfcc_embedding_is_crop_statistics():
  audio = np.random.default_rng(0).normal(size=(2, 16000)).astype(np.float32) * 0.1
  got = speaker_suite.mfcc_embeddings(audio, 10, 2)
  crop = lambda w, s: ops.mfcc(w[s:s + 6400])
  for i, w in enumerate(audio):
    stats = [np.concatenate([crop(w, s).mean(0), crop(w, s).std(0)]) for s in (0, 9600)]
    expected = sum(x / np.linalg.norm(x) for x in stats)
    np.testing.assert_allclose(got[i], expected / np.linalg.norm(expected), rtol=1e-5)


def test_first_session_mask_and_word_features():
  speakers, tracks = np.array([5, 5, 5, 6, 6]), np.array([11, 10, 11, 12, 13])
  np.testing.assert_array_equal(speaker_suite.first_session_mask(speakers, tracks),
                                [False, True, False, True, False])
  steps = np.arange(2 * 6 * 2, dtype=np.float32).reshape(2, 6, 2)
  x, y = speaker_suite.word_features(steps, [[(4, 1, 3)], [(7, 2, 2), (8, 0, 6)]])
  np.testing.assert_array_equal(y, [4, 7, 8])
  np.testing.assert_allclose(x, [steps[0, 1:3].mean(0), steps[1, 2], steps[1].mean(0)])
  assert speaker_suite.majority_accuracy([1, 1, 2], [1, 2, 2, 2]) == 0.25


def test_pca_matches_scikit_learn():
  x = np.random.default_rng(0).normal(size=(50, 6)) * np.arange(1, 7)
  ours = speaker_suite.pca_2d(x)
  reference = decomposition.PCA(2).fit_transform(x)
  np.testing.assert_allclose(np.abs(ours), np.abs(reference), atol=1e-8)


def test_track_split_never_shares_a_track_and_is_drawn_by_seed():
  track = np.append(np.repeat(np.arange(24), 4), [99, 99])  # 8 speakers x 3 tracks, and
  speaker = np.append(np.arange(24).repeat(4) // 3, [8, 8])  # speaker 8 with one track.
  splits = [speaker_suite.track_split(speaker, track, 1 / 3, seed) for seed in range(4)]
  for fit, scored in splits:
    assert not set(track[fit]) & set(track[scored])
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, scored])), np.arange(len(track)))
    assert len(set(track[scored])) == 8 and set(speaker[scored]) == set(range(8))
    assert set(speaker[fit]) == set(range(9))  # Speaker 8: fitted, never scored.
  np.testing.assert_array_equal(speaker_suite.track_split(speaker, track, 1 / 3, 0)[1],
                                splits[0][1])
  assert len({tuple(scored) for _, scored in splits}) > 1  # The seed draws the tracks.
  single = dict(speaker=np.array([0, 1]), track=np.array([0, 1]))
  assert speaker_suite.speaker_set(np.zeros((4, 1)), {'train': single, 'validation': single},
                                   1 / 3, 0) is None  # Nobody to score.
  six = np.arange(6).repeat(2)  # One speaker's 6 tracks: a share, at least 1, all but 1 at most.
  for share, count in ((1 / 3, 2), (0.0, 1), (1.0, 5)):
    scored = speaker_suite.track_split(np.zeros(12, int), six, share, 0)[1]
    assert len(set(six[scored])) == count


def test_speaker_probe_scores_speakers_not_sessions():
  # avsynth heads: validation clip k of a speaker lies in its train clips' session k.
  config = heads.PRESETS['heads']
  identity = lambda split: np.array([heads.clip_identity(config, split, i)
                                     for i in range(heads.split_sizes(config)[split])]).T
  data = {split: dict(zip(('speaker', 'track'), identity(split)))
          for split in speaker_suite.SPEAKER_PROBE_SPLITS}
  tracks = config.num_train_speakers * config.sessions_per_speaker
  one_hot = lambda split, key: np.eye(tracks)[data[split][key]]
  old = lambda key: linear_probe.ridge_accuracy(
      one_hot('train', key), data['train']['speaker'],
      one_hot('validation', key), data['validation']['speaker'])
  new = lambda key: linear_probe.ridge_accuracy(*speaker_suite.probe_sets(  # Steps [N, 1, D].
      {split: one_hot(split, key)[:, None] for split in data}, data, 0, 0, 1 / 3)['speaker'])
  assert old('track') == 1.0  # Train -> validation: the session names the speaker.
  assert new('track') <= 2 / config.num_train_speakers  # Unseen sessions: chance, 1/48.
  assert old('speaker') == new('speaker') == 1.0
