"""Checkpoint faults: a damaged checkpoint is set aside for the newest readable one, and a
failed save is one OSError that leaves the checkpoints before it restorable."""

import contextlib
import gc
import logging
import resource

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avjax import checkpoint
from avjax import train

# A failed read or write leaves orbax's pending TensorStore callbacks and coroutines to
# report themselves when collected; `avjax.main` quiets them (quiet_failed_saves).
pytestmark = pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')


def make_state(step, rows=256):
  """A TrainState whose values tell its step; random, so that nothing compresses away."""
  rng = np.random.default_rng(step)
  params = {'dense': {'kernel': jnp.asarray(rng.normal(size=(rows, 64)), np.float32),
                      'bias': jnp.full((64,), float(step))}}
  return train.TrainState(step=jnp.int32(step), params=params,
                          opt_state=(jnp.float32(step),))


def abstract(state):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      state)


def data_iterator():
  """A checkpointable Grain iterator over 0, 1, 2, ...: an item read tells the position."""
  return iter(grain.MapDataset.range(1000).to_iter_dataset())


@pytest.fixture
def workdir(tmp_path):
  """Checkpoints at steps 1 and 2, each with the data position after 10 items a step."""
  manager = checkpoint.make_manager(str(tmp_path), keep=3)
  it = data_iterator()
  for step in (1, 2):
    for _ in range(10):
      next(it)
    checkpoint.save(manager, step, make_state(step), it)
  checkpoint.wait(manager)
  yield tmp_path
  gc.collect()  # Here, where this module's filter applies, not in a later test.


def damage(workdir, step, item):
  """Cuts checkpoint STEP's `item` short: the state's largest file, or the data position."""
  files = [p for p in (workdir / 'checkpoints' / str(step) / item).rglob('*')
           if p.is_file() and (item == 'state' or p.suffix == '.json')]
  largest = max(files, key=lambda p: p.stat().st_size)
  with open(largest, 'r+b') as f:
    f.truncate(largest.stat().st_size // 2)


def assert_state_of_step(state, step):
  expected = make_state(step)
  assert int(state.step) == step
  jax.tree.map(np.testing.assert_array_equal, state.params, expected.params)


@pytest.mark.parametrize('item', ['state', 'data'])
def test_a_damaged_latest_checkpoint_resumes_from_the_one_before(workdir, item, caplog):
  damage(workdir, 2, item)
  manager = checkpoint.make_manager(str(workdir), keep=3)
  it = data_iterator()
  with caplog.at_level(logging.WARNING):
    state = checkpoint.restore(manager, abstract(make_state(0)), it)
  assert_state_of_step(state, 1)
  assert next(it) == 10  # The data position of the same step, whatever was read first.
  lines = [r.getMessage() for r in caplog.records if 'unreadable' in r.getMessage()]
  assert len(lines) == 1 and lines[0].startswith('checkpoint step 2 is unreadable (')
  assert f'moved to {workdir / "checkpoints" / "2.unreadable"}, resuming from step 1' in lines[0]
  # The run saves step 2 again, next to the damaged copy.
  checkpoint.save(manager, 2, make_state(2), it)
  checkpoint.wait(manager)
  assert manager.all_steps() == [1, 2] and (workdir / 'checkpoints' / '2.unreadable').is_dir()


def test_no_readable_checkpoint_is_one_error_naming_each_step(workdir):
  damage(workdir, 1, 'state')
  damage(workdir, 2, 'state')
  manager = checkpoint.make_manager(str(workdir), keep=3)
  with pytest.raises(OSError, match=r'no readable checkpoint in .*checkpoints: step 2: .*; '
                                    r'step 1: ') as error:
    checkpoint.restore(manager, abstract(make_state(0)), data_iterator())
  assert '\n' not in str(error.value)
  assert not list((workdir / 'checkpoints').glob('*.unreadable'))  # Nothing was moved.


def test_a_checkpoint_of_another_model_is_an_error_not_skipped(workdir):
  manager = checkpoint.make_manager(str(workdir), keep=3)
  with pytest.raises(ValueError, match=r'\(step 2\) of a different model'):
    checkpoint.restore(manager, abstract(make_state(0, rows=8)), data_iterator())
  assert manager.all_steps() == [1, 2]


def test_restore_params_of_another_run_reads_its_newest_readable_checkpoint(workdir):
  damage(workdir, 2, 'state')
  params = checkpoint.restore_params(str(workdir))
  jax.tree.map(np.testing.assert_array_equal, params, make_state(1).params)
  assert (workdir / 'checkpoints' / '2').is_dir()  # Another run's workdir stays as it is.


@contextlib.contextmanager
def file_size_limit(limit):
  """Writes past `limit` bytes fail (EFBIG: Python ignores SIGXFSZ), as on a full disk."""
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
  try:
    yield
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_failed_save_is_one_oserror_and_a_rerun_resumes_from_the_step_before(workdir):
  manager = checkpoint.make_manager(str(workdir), keep=2)
  it = data_iterator()
  checkpoint.restore(manager, abstract(make_state(0)), it)
  with file_size_limit(16 * 1024), pytest.raises(OSError) as error:
    checkpoint.save(manager, 3, make_state(3), it)
    checkpoint.wait(manager)
  message = str(error.value)
  assert message.startswith(f'saving checkpoint step 3 in {workdir / "checkpoints"} failed (')
  assert 'File too large' in message and '\n' not in message
  # A rerun resumes from step 2 and saves step 3; its manager removes the failed save's
  # leftovers (3.orbax-checkpoint-tmp) before its first save.
  manager = checkpoint.make_manager(str(workdir), keep=2)
  it = data_iterator()
  assert_state_of_step(checkpoint.restore(manager, abstract(make_state(0)), it), 2)
  assert next(it) == 20
  checkpoint.save(manager, 3, make_state(3), it)
  checkpoint.wait(manager)
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['2', '3']
