"""parallel.DevicePrefetch: batches put on the devices ahead by a thread, the data
position of the batches taken, errors raised where the batch is taken."""

import time

import grain
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from avjax import parallel


@pytest.fixture(scope='module')
def mesh():
  return parallel.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1)))


def batches():
  """A Grain iterator of 20 batches {'x': [2i, 2i + 1]} (uint8)."""
  ds = grain.MapDataset.range(40).map(lambda i: {'x': np.uint8(i)}).batch(2)
  return iter(ds.to_iter_dataset())


def wait_for(condition, timeout=10):
  deadline = time.monotonic() + timeout
  while not condition() and time.monotonic() < deadline:
    time.sleep(0.01)
  return condition()


def test_two_batches_ahead_and_the_position_of_those_taken(mesh, tmp_path):
  it = batches()
  with parallel.DevicePrefetch(it, mesh) as prefetch:
    taken = [next(prefetch) for _ in range(3)]
    assert wait_for(lambda: it.get_state()['next_index'] == 5)  # Two more on the devices.
    time.sleep(0.2)
    assert it.get_state()['next_index'] == 5
    manager = ocp.CheckpointManager(
        tmp_path, item_handlers={'data': grain.checkpoint.CheckpointHandler()})
    manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(prefetch)))
    manager.wait_until_finished()
  assert [b['x'].dtype for b in taken] == [np.uint8] * 3
  np.testing.assert_array_equal(np.concatenate([np.asarray(b['x']) for b in taken]), range(6))
  fresh = batches()
  manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  np.testing.assert_array_equal(next(fresh)['x'], [6, 7])  # The first batch not taken.


class Failing:
  """Two batches, then ValueError."""

  def __init__(self):
    self.index = 0

  def __next__(self):
    if self.index == 2:
      raise ValueError('record 4 is damaged')
    self.index += 1
    return {'x': np.full(2, self.index, np.float32)}

  def get_state(self):
    return {'next_index': self.index}


def test_an_error_is_raised_where_the_batch_is_taken(mesh):
  with parallel.DevicePrefetch(Failing(), mesh) as prefetch:
    assert [float(next(prefetch)['x'][0]) for _ in range(2)] == [1, 2]
    for _ in range(2):  # Again on the next call: the thread has stopped.
      with pytest.raises(ValueError, match='record 4 is damaged'):
        next(prefetch)
  assert not prefetch._thread.is_alive()


def test_close_stops_the_thread_waiting_for_room(mesh):
  prefetch = parallel.DevicePrefetch(batches(), mesh, size=1)
  next(prefetch)
  prefetch.close()
  assert not prefetch._thread.is_alive()
