"""Shared fixtures: tiny avsynth datasets prepared once per test session."""

import pytest


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """A TFDS data dir holding avsynth/heads_tiny and avsynth/scenes_tiny."""
  import tensorflow_datasets as tfds
  import avjax.data.builders  # noqa: F401
  path = tmp_path_factory.mktemp('tfds')
  for name in ('avsynth/heads_tiny', 'avsynth/scenes_tiny'):
    tfds.builder(name, data_dir=path, file_format='array_record').download_and_prepare(
        file_format='array_record')
  return str(path)
