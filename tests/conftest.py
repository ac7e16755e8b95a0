"""Shared fixtures: tiny avsynth datasets prepared once per test session, and one
JAX compilation cache for the session's processes."""

import os
import shutil
import tempfile

import pytest


_CACHE = pytest.StashKey[str]()


def pytest_configure(config):
  """Many tests compile the same tiny programs, several in subprocesses (`avjax.main`,
  the suites, notebooks): one persistent cache, made by the controller before the
  xdist workers start and inherited by everything they launch, compiles each once."""
  if hasattr(config, 'workerinput') or 'JAX_COMPILATION_CACHE_DIR' in os.environ:
    return
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='avjax-jax-cache-')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'
  config.stash[_CACHE] = os.environ['JAX_COMPILATION_CACHE_DIR']


def pytest_unconfigure(config):
  if _CACHE in config.stash:
    shutil.rmtree(config.stash[_CACHE], ignore_errors=True)


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
