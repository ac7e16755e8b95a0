"""Grain pipelines: determinism, worker processes, host slices, checkpointed position,
several crops per record."""

import grain
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from avjax.data import pipeline


def preprocess(example, rng):
  """A stand-in task preprocess: a random crop that depends on the rng."""
  start = rng.integers(0, 8)
  return {'audio': example['audio'][start:start + 64].astype(np.float32),
          'speaker': example['speaker']}


@pytest.fixture(scope='module')
def source(data_dir):
  config = ml_collections.ConfigDict(dict(name='avsynth', config='heads_tiny', data_dir=data_dir))
  return pipeline.load_source(config, 'train')


def _take(it, n):
  return [next(it) for _ in range(n)]


def _assert_same(a, b):
  for x, y in zip(a, b, strict=True):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


def test_same_seed_same_batches_with_and_without_workers(source):
  ds = pipeline.train_dataset(source, preprocess, batch_size=4, seed=3)
  in_process = _take(pipeline.make_iterator(ds, num_workers=0), 6)
  with_workers = _take(pipeline.make_iterator(ds, num_workers=2), 6)
  _assert_same(in_process, with_workers)
  other_seed = _take(pipeline.make_iterator(
      pipeline.train_dataset(source, preprocess, batch_size=4, seed=4)), 6)
  assert not all(np.array_equal(a['audio'], b['audio']) for a, b in zip(in_process, other_seed))


def test_epochs_cover_the_split_and_reshuffle(source):
  n = len(source)
  ds = pipeline.train_dataset(source, lambda e, rng: {'audio': e['audio'][:16]}, 1, seed=0)
  it = pipeline.make_iterator(ds)
  epochs = [[next(it)['audio'][0].tobytes() for _ in range(n)] for _ in range(2)]
  assert len(set(epochs[0])) == n and set(epochs[0]) == set(epochs[1])
  assert epochs[0] != epochs[1]


def test_host_slices_are_disjoint_equal_and_cover_the_global_batches(source):
  seen = []
  for index in range(3):
    ds = pipeline.eval_dataset(source, lambda e, rng: e['audio'][:16], 1, 0, index, 3)
    seen.append({ds[i][0].tobytes() for i in range(len(ds))})
  whole = len(source) // 3 * 3  # Examples in whole global batches: the rest is dropped.
  assert [len(s) for s in seen] == [whole // 3] * 3 and len(set.union(*seen)) == whole


def test_iterator_position_survives_a_checkpoint(source, tmp_path):
  ds = pipeline.train_dataset(source, preprocess, batch_size=4, seed=1, crops_per_clip=2)
  it = pipeline.make_iterator(ds, num_workers=2)
  _take(it, 5)
  manager = ocp.CheckpointManager(tmp_path, item_handlers={'data': grain.checkpoint.CheckpointHandler()})
  manager.save(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
  manager.wait_until_finished()
  expected = _take(it, 4)
  _assert_same(expected, [ds[i] for i in range(5, 9)])  # The workers' are in-process batches.
  fresh = pipeline.make_iterator(ds, num_workers=2)
  manager.restore(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  _assert_same(_take(fresh, 4), expected)


def index_and_draw(example, rng):
  """A stand-in preprocess: the record's `index` and a random draw."""
  return {'index': np.int64(example['index']), 'draw': rng.integers(2**31)}


def test_crops_per_clip_preprocess_each_record_k_times_as_neighbouring_rows(source):
  crops = pipeline.train_dataset(source, index_and_draw, 6, seed=2, crops_per_clip=3)
  single = pipeline.train_dataset(source, index_and_draw, 2, seed=2)
  for i in range(len(source) // 2 + 3):  # 2 records a batch: into the second epoch.
    np.testing.assert_array_equal(crops[i]['index'], np.repeat(single[i]['index'], 3))
    draws = crops[i]['draw'].reshape(2, 3)
    np.testing.assert_array_equal(draws[:, 0], single[i]['draw'])  # Crop 0: the record's rng.
    assert all(len(set(row)) == 3 for row in draws)  # The others draw on from it.


def test_crops_per_clip_make_the_same_global_batches_on_two_hosts(source):
  one = pipeline.train_dataset(source, index_and_draw, 8, 0, crops_per_clip=2)
  hosts = [pipeline.train_dataset(source, index_and_draw, 4, 0, index, 2, crops_per_clip=2)
           for index in range(2)]
  for i in range(len(source) // 4 + 2):  # 4 records a global batch: into the second epoch.
    stacked = {k: np.concatenate([hosts[0][i][k], hosts[1][i][k]]) for k in one[i]}
    _assert_same([stacked], [one[i]])
    assert not set(hosts[0][i]['index']) & set(hosts[1][i]['index'])


def test_crops_per_clip_must_divide_the_batch(source):
  with pytest.raises(ValueError, match='crops_per_clip=2 does not divide the batch of 5'):
    pipeline.train_dataset(source, index_and_draw, 5, seed=0, crops_per_clip=2)
