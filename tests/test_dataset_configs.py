"""Every config switches dataset with one argument (`data=NAME`), or says which features
the dataset lacks for its task."""

import pytest

from avjax import config_lib

# config: the datasets its task can train on (the others lack a feature it needs).
USABLE = {
    'recon': {'lrw', 'voxceleb2', 'crema_d_av', 'ravdess', 'ucf101_av', 'video_folder'},
    'multitask': {'lrw', 'voxceleb2', 'crema_d_av', 'ravdess', 'ucf101_av', 'video_folder'},
    'aot': set(config_lib.DATASETS),
    'odd': set(config_lib.DATASETS),
    'disentangle': {'voxceleb2'},
    'sync': {'lrw', 'voxceleb2', 'crema_d_av', 'ravdess', 'ucf101_av', 'video_folder'},
    'separation': {'lrw', 'voxceleb2', 'crema_d_av', 'ravdess', 'ucf101_av', 'video_folder'},
    'action': {'ucf101_av'},
    'speaker': {'voxceleb1', 'voxceleb2', 'crema_d_av', 'ravdess'},
}


@pytest.mark.parametrize('name', sorted(USABLE))
def test_data_argument_switches_dataset_or_names_what_is_missing(name):
  for dataset in config_lib.DATASETS:
    if dataset in USABLE[name]:
      config = config_lib.load(name, f'data={dataset}')
      assert (config.data.name, config.data.config) == (dataset, '')
      assert config.probe.labels in ((), (config_lib.DATASETS[dataset],))
    else:
      with pytest.raises(ValueError, match=f'needs the features .* which dataset {dataset}'):
        config_lib.load(name, f'data={dataset}')
  assert config_lib.load(name, 'data=avsynth').data.name == 'avsynth'
  dataset = min(USABLE[name])
  accel = config_lib.load(name, f'accel,data={dataset}')
  assert (accel.data.name, accel.dtype) == (dataset, 'bfloat16')
  with pytest.raises(ValueError, match='unknown dataset'):
    config_lib.load(name, 'data=imagenet')
