"""avjax.data.workers: processes that never re-import the caller's __main__."""

import functools
import os
import time

import numpy as np
import pytest

from avjax.data import workers
from avjax.data.synth import heads


def test_results_in_order_equal_to_calls_in_process():
  config = heads.PRESETS['heads_tiny']
  render = functools.partial(heads.render_clip, config, 'validation', seed=0)
  indices = [3, 0, 7, 1, 5]
  with workers.Pool(2) as pool:
    clips = list(pool.map(render, indices))
  for index, clip in zip(indices, clips):
    expected = render(index)
    assert clip.keys() == expected.keys()
    for key in expected:
      np.testing.assert_array_equal(clip[key], expected[key], err_msg=f'clip {index} {key}')


def test_a_failed_call_names_its_item_and_cause_and_the_pool_goes_on():
  render = functools.partial(heads.render_clip, heads.PRESETS['heads_tiny'], 'validation')
  with workers.Pool(2) as pool:
    with pytest.raises(workers.WorkerError, match='IndexError: index 99 out of range') as failure:
      list(pool.map(render, [0, 99, 1, 2]))
    assert failure.value.item == 99
    assert 'in clip_identity' in str(failure.value.__cause__)  # The worker's traceback.
    assert list(pool.map(abs, range(-3, 3))) == [3, 2, 1, 0, 1, 2]


def test_a_map_stopped_early_leaves_the_next_its_own_answers():
  with workers.Pool(2) as pool:
    first = pool.map(abs, range(-20, 0))
    assert next(first) == 20
    first.close()
    assert list(pool.map(abs, range(-4, 0))) == [4, 3, 2, 1]


def test_a_worker_that_dies_is_an_error_with_its_exit_code():
  with workers.Pool(1) as pool:
    with pytest.raises(workers.WorkerError, match='exit code 3') as failure:
      list(pool.map(os._exit, [3]))
    assert failure.value.item == 3


def test_print_in_a_call_does_not_reach_the_answers(capfd):
  with workers.Pool(1) as pool:
    assert list(pool.map(print, ['hello', 'world'])) == [None, None]
  assert capfd.readouterr().err.split() == ['hello', 'world']


def test_an_unpicklable_call_is_a_clear_error():
  with workers.Pool(1) as pool:
    with pytest.raises(workers.WorkerError, match='cannot send the call to a worker'):
      list(pool.map(lambda x: x, [1]))


def test_closing_a_pool_that_owes_answers_ends_it_at_once():
  pool = workers.Pool(1)
  left = pool.map(time.sleep, [0, 60, 60])
  assert next(left) is None  # The next two calls are sent and their answers left unread.
  start = time.monotonic()
  pool.close()
  assert time.monotonic() - start < 5
  left.close()  # Nothing left to drain.
