"""recon's reference still from another record: the dataset-level join
(avjax/data/references.py, `Recon.join`), and the one-line errors when a dataset lacks
what the still needs."""

import ml_collections
import numpy as np
import pytest

from avjax import tasks
from avjax import train
from avjax.data import pipeline
from avjax.data import references
from avjax.tasks import recon
from configs import multitask as multitask_config
from configs import recon as recon_config


def test_partners_share_the_first_group_they_can_and_vary_with_the_seed():
  track = np.array([0, 0, 0, 1, 2, 2, 3])
  speaker = np.array([0, 0, 0, 0, 1, 1, 2])
  drawn = set()
  for seed in range(20):
    partner = references.partners([track, speaker], seed)
    np.testing.assert_array_equal(partner, references.partners([track, speaker], seed))
    for i, j in enumerate(partner[:6]):
      assert j != i and speaker[j] == speaker[i]
      assert track[j] == track[i] or i == 3  # Record 3 is alone in its track.
    assert partner[6] == 6  # Alone in track and speaker: itself.
    drawn.add(tuple(partner))
  assert len(drawn) > 5
  counts = np.bincount(references.partners([np.zeros(4000, int)], 0), minlength=4000)
  assert counts.max() < 10  # Uniform among the others, not one record for all.


def test_with_partner_adds_the_partners_features_but_its_path():
  source = [{'video': np.full(2, i), 'path': f'{i}.mp4'.encode()} for i in range(3)]
  joined = references.WithPartner(source, source, [2, 0, 1], 'reference_')
  assert len(joined) == 3
  example = joined[0]
  assert sorted(example) == ['path', 'reference_video', 'video']
  np.testing.assert_array_equal(example['reference_video'], [2, 2])
  assert example['path'] == b'0.mp4'
  with pytest.raises(ValueError, match='a source of 3 records, its partner source of 2'):
    references.WithPartner(source, source[:2], [0, 1, 2], 'reference_')


def _task(still):
  config = recon_config.get_config('tiny')
  config.recon.update(still=still, align_faces=False)
  return recon.Recon(config)


@pytest.mark.parametrize('still, dataset, missing', [
    ('other_clip', 'lrw', "'speaker' (or 'track')"),
    ('neutral', 'crema_d_av', "'neutral_frame'")])
def test_a_dataset_without_what_the_still_needs_is_a_one_line_error(still, dataset, missing):
  data = ml_collections.ConfigDict(dict(name=dataset, config='', data_dir=''))
  with pytest.raises(ValueError) as e:
    _task(still).join([], lambda features: [], data, 0)
  message = str(e.value)
  assert message.startswith(f'dataset {dataset}/') and missing in message
  assert f"recon.still='{still}'" in message and '\n' not in message


def test_other_clip_stills_come_from_another_clip_of_the_same_track(data_dir):
  data = ml_collections.ConfigDict(dict(name='avsynth', config='heads_tiny', data_dir=data_dir))
  load = lambda features: pipeline.load_source(data, 'train', features)
  task = _task('other_clip')
  source = tasks.data_source(task, load, data, seed=0)
  identity = load(('video', 'track'))
  videos = [identity[i]['video'] for i in range(len(identity))]
  for i in range(len(source)):
    example = source[i]
    assert set(example) >= {'video', 'audio', 'reference_video', 'reference_mouth_box'}
    [j] = [j for j, v in enumerate(videos) if np.array_equal(v, example['reference_video'])]
    assert j != i and identity[j]['track'] == identity[i]['track']
  still = task.preprocess(source[0], np.random.default_rng(0))['still']
  assert any(np.array_equal(still, frame) for frame in source[0]['reference_video'])
  config = multitask_config.get_config('tiny')
  config.recon.still = 'other_clip'
  joined = tasks.data_source(tasks.TASKS['multitask'](config), load, data, seed=0)[0]
  np.testing.assert_array_equal(joined['reference_video'], source[0]['reference_video'])


@pytest.mark.parametrize('still, missing', [('other_clip', "'speaker'"),
                                            ('neutral', "'neutral_frame'")])
def test_training_stops_before_its_first_step_on_such_a_dataset(data_dir, still, missing):
  config = recon_config.get_config('tiny')
  config.recon.still = still
  config.data.update(config='scenes_tiny', data_dir=data_dir)
  config.probe.labels = ()
  with pytest.raises(ValueError, match=f'^dataset avsynth/scenes_tiny/[^ ]* lacks the feature '
                                       f'{missing}'):
    train.build(config)
