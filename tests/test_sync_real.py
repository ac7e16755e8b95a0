"""The sync suite on real data: a tiny UCF-101 (test_data_ucf101's layout, clips of
varying length) as its downstream dataset; the cheap pieces only, no training."""

import os

import ml_collections
import numpy as np
import pytest

import media_fixtures
import test_data_ucf101
from avjax.data import ops
from avjax.data import pipeline
from avjax.evaluate import runs
from avjax.evaluate import sync as sync_suite
from avjax.tasks import action as action_task
from avjax.tasks import sync as sync_task

SECONDS = 2.0  # 50 frames: room for configs/sync.py:tiny's window of 20 and its shifts.
# Test clips (g01) shortened: 25 frames fit action's window of 20, not sync's 31; 15 fit neither.
SHORT = {('BandMarching', 'g01_c01'): 1.0, ('HandstandPushups', 'g01_c02'): 0.6}


@pytest.fixture(scope='module')
def config(tmp_path_factory):
  """The tiny suite's config on the tiny UCF-101, prepared."""
  root = str(tmp_path_factory.mktemp('ucf_manual'))
  # pylint: disable=protected-access
  test_data_ucf101._write_layout(root, seconds=SECONDS)
  for (name, clip), seconds in SHORT.items():
    media_fixtures.write_video(os.path.join(root, 'UCF-101', test_data_ucf101._clip(name, clip)),
                               seconds=seconds, sample_rate=44100, channels=2,
                               tone=300 + 100 * test_data_ucf101.CLASSES.index(name))
  config = sync_suite.get_config('tiny')
  config.data.update(runs.parse_data('ucf101_av', root),
                     data_dir=str(tmp_path_factory.mktemp('ucf_tfds')))
  pipeline.prepared_builder(config.data)
  return config


def test_the_suite_config_holds_each_dataset():
  config = sync_suite.get_config()
  assert config.data.to_dict() == dict(name='avsynth', config='scenes', data_dir='',
                                       manual_dir='')
  assert config.pretrain_data.to_dict() == dict(name='avsynth', config='scenes', manual_dir='')
  assert config.separation_data.to_dict() == dict(name='avsynth', config='heads', manual_dir='')
  tiny = sync_suite.get_config('tiny')
  assert (tiny.data.config, tiny.pretrain_data.config, tiny.separation_data.config) == (
      'scenes_tiny', 'scenes_tiny', 'heads_tiny')


def test_action_on_ucf101_has_its_classes_labels_and_stratified_fractions(config):
  method = runs.run_config(config, 'action', config.data, {'data.label_fraction': 0.5})
  assert (method.data.name, method.data.config, method.data.label_key) == (
      'ucf101_av', '', 'action')
  assert action_task.Action(method).head.features == len(test_data_ucf101.CLASSES)
  # Train: 1, 2 and 2 clips of the classes; half of 5 is 3, one of each class.
  subset = pipeline.train_source(method.data, method.seed)
  assert sorted(int(subset[i]['action']) for i in range(len(subset))) == [0, 1, 2]


def test_action_test_windows_every_clip_long_enough(config):
  test, left_out = sync_suite.action_test(config)
  assert left_out == (1, 5, 'shorter than 20 frames')  # HandstandPushups g01_c02, 15 frames.
  (batch,) = test  # 4 clips, batch_size 4.
  assert sorted(batch['label'].tolist()) == [0, 0, 1, 2]  # Silent ApplyEyeMakeup clips kept.
  assert batch['video'].shape == (4, 20, 32, 32, 3)  # 20 frames, every one, 64x64 halved.
  assert batch['audio'].shape == (4, 20 * ops.SAMPLES_PER_FRAME)


def test_pretext_scores_the_audible_clips_with_room_for_a_shift(config):
  method = runs.run_config(config, 'sync', config.data)
  task = sync_task.Sync(method)
  min_frames = sync_task.min_clip_frames(method.sync.window_frames, method.sync.min_shift)
  assert min_frames == 31  # 20 + ceil(0.52 * 20).
  examples, left_out = sync_suite.scored_examples(method, task, min_frames, audible=True)
  # Left out: both ApplyEyeMakeup clips (silent), BandMarching (25 frames), one of the two
  # HandstandPushups (15); the other HandstandPushups clip stays.
  assert left_out == (4, 5, 'silent or shorter than 31 frames')
  (example,) = examples
  assert example['video'].shape == (20, 32, 32, 3)
  assert example['audio'].shape == (2, 20 * ops.SAMPLES_PER_FRAME)
  assert abs(example['shift']) >= np.ceil(0.52 * 20 * ops.SAMPLES_PER_FRAME)
  run = ml_collections.ConfigDict(dict(config.to_dict(), methods=('action', 'separation')))
  run.pretrain_data.update(runs.parse_data('video_folder', '/videos'))
  notes = sync_suite._notes(run, method, {'pretext': left_out})  # pylint: disable=protected-access
  assert notes.startswith('Sync network pretrained on video_folder/s64 (2 steps of batch 8); '
                          'pretext, action tested on ucf101_av/s64; separation on '
                          'avsynth/heads_tiny.')
  assert notes.endswith('Left out of pretext: 4 of 5 test clips (silent or shorter than 31 '
                        'frames).')
  assert 'localisation' not in notes


@pytest.mark.parametrize('window, min_shift', [(20, 0.52), (40, 0.52), (16, 0.5), (7, 0.3)])
def test_min_clip_frames_is_the_shortest_clip_draw_windows_takes(window, min_shift):
  n = sync_task.min_clip_frames(window, min_shift)
  rng = np.random.default_rng(0)
  spf = ops.SAMPLES_PER_FRAME
  for _ in range(20):
    start, shift = sync_task.draw_windows(n, n * spf, window, min_shift, 1.4, rng)
    assert 0 <= start and start + window <= n and 0 <= start * spf + shift <= (n - window) * spf
  with pytest.raises(ValueError, match='fits a clip'):
    sync_task.draw_windows(n - 1, n * spf, window, min_shift, 1.4, rng)


def test_usable_counts_the_frames_of_both_streams_and_the_audio_track():
  clip = lambda frames, samples, **extra: dict(video=np.zeros((frames, 2, 2, 3)),
                                               audio=np.zeros(samples), **extra)
  spf = ops.SAMPLES_PER_FRAME
  assert sync_suite.usable(30)(clip(30, 30 * spf))
  assert not sync_suite.usable(30)(clip(30, 30 * spf - 1))  # 29 whole frames of audio.
  assert not sync_suite.usable(30)(clip(29, 40 * spf))
  assert sync_suite.usable(30)(clip(30, 30 * spf, has_audio=False))
  assert not sync_suite.usable(30, audible=True)(clip(30, 30 * spf, has_audio=False))
  assert sync_suite.usable(30, audible=True)(clip(30, 30 * spf))  # avsynth: no has_audio.


def test_what_real_data_cannot_score_stops_the_suite_before_any_work(tmp_path):
  config = sync_suite.get_config('tiny')
  config.data.update(runs.parse_data('ucf101_av', str(tmp_path / 'nothing')))
  with pytest.raises(ValueError, match='`source_mask`, which dataset ucf101_av/s64 does not'):
    sync_suite.run(config, str(tmp_path / 'work'))
  config.data.update(runs.parse_data('lrw'))
  config.methods = ('action',)
  with pytest.raises(ValueError, match=r"needs the features \['action'\], which dataset lrw"):
    sync_suite.run(config, str(tmp_path / 'work'))
  assert not list(tmp_path.iterdir())
