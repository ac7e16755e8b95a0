"""The host side of the input pipeline: features decoded, batching, workers sized
from the host, bounded prefetch."""

import pathlib

import grain
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.core import shuffle

from avjax.data import pipeline

GiB = 2**30


def _data(data_dir, **kwargs):
  return ml_collections.ConfigDict({
      'name': 'avsynth', 'config': 'heads_tiny', 'data_dir': data_dir, 'train_split': 'train',
      'label_fraction': 1.0, 'label_key': '', **kwargs})


def test_only_the_features_a_task_reads_are_returned(data_dir):
  full = pipeline.load_source(_data(data_dir), 'train')
  read = pipeline.load_source(_data(data_dir), 'train', features=('audio', 'speaker', 'path'))
  assert len(read) == len(full)
  for i in (0, len(full) - 1):
    assert set(read[i]) == {'audio', 'speaker'}  # heads has no `path`.
    np.testing.assert_array_equal(read[i]['audio'], full[i]['audio'])
    assert read[i]['speaker'] == full[i]['speaker']
  parsed = read._features  # pylint: disable=protected-access
  assert set(parsed.keys()) == {'audio', 'speaker'}


def test_a_stratified_train_source_reads_its_labels_and_the_features(data_dir):
  data = _data(data_dir, label_fraction=0.5, label_key='emotion')
  subset = pipeline.train_source(data, seed=0, features=('audio',))
  assert set(subset[0]) == {'audio'}
  assert len(subset) == -(-len(pipeline.load_source(data, 'train')) // 2)


def _examples(n):
  rng = np.random.default_rng(0)
  return grain.MapDataset.source([
      {'video': rng.integers(0, 255, (3, 4, 4), np.uint8), 'shift': np.int32(i),
       'meta': {'flip': np.bool_(i % 2)}} for i in range(n)])


def test_batches_are_grains_batches():
  ds = _examples(10)
  ours, grains = pipeline.batch(ds, 4), ds.batch(4, drop_remainder=True)
  assert len(ours) == len(grains) == 2
  for i in range(2):
    for key in ('video', 'shift'):
      assert ours[i][key].dtype == grains[i][key].dtype
      np.testing.assert_array_equal(ours[i][key], grains[i][key])
    np.testing.assert_array_equal(ours[i]['meta']['flip'], grains[i]['meta']['flip'])
  np.testing.assert_array_equal(pipeline.batch(ds.repeat(), 4)[2]['shift'], [8, 9, 0, 1])
  np.testing.assert_array_equal(ours[3]['shift'], grains[3]['shift'])  # Epoch 2, batch 2.
  np.testing.assert_array_equal(ours[3]['shift'], [4, 5, 6, 7])
  np.testing.assert_array_equal(pipeline.batch(ds, 2)[1::2][1]['shift'], [6, 7])
  bare = pipeline.batch(ds.map(lambda e: e['video']), 3)[0]
  np.testing.assert_array_equal(bare, np.stack([ds[i]['video'] for i in range(3)]))


def test_a_batch_of_unlike_elements_names_the_output():
  ds = _examples(4).map(lambda e: {**e, 'video': e['video'][:1 + e['shift'] % 2]})
  with pytest.raises(ValueError, match=r"output\['video'\] is uint8\[2, 4, 4\] in element 1"):
    pipeline.batch(ds, 4)[0]


def test_a_worker_makes_batches_in_shared_memory_and_frees_a_failed_one(monkeypatch):
  monkeypatch.setattr(pipeline, '_BATCHES_IN_SHARED_MEMORY', True)  # As `_init_worker` sets.
  made = pipeline.batch(_examples(4), 4)[0]
  for array in (made['video'], made['shift'], made['meta']['flip']):
    assert isinstance(array, pipeline.SharedMemoryArray)
    array.unlink_on_del()  # Grain's main process does this.
  shm = pathlib.Path('/dev/shm')
  before = set(shm.iterdir())
  failing = _examples(4).map(lambda e: e if e['shift'] < 2 else None)
  with pytest.raises(ValueError):
    pipeline.batch(failing, 4)[0]
  assert not {p for p in set(shm.iterdir()) - before if p.name.startswith('psm_')}


def test_in_process_and_worker_options_hold_a_bounded_number_of_batches():
  read, workers = pipeline.pipeline_options(0, 3)
  assert (read.num_threads, read.prefetch_buffer_size, workers) == (1, 3, None)
  read, workers = pipeline.pipeline_options(5, 2)
  assert (read.num_threads, read.prefetch_buffer_size) == (0, 0)  # No threads' batches.
  assert (workers.num_workers, workers.per_worker_buffer_size) == (5, 2)
  assert pipeline.held_batches(5, 2) == 30 and pipeline.held_batches(0, 3) == 3
  with pytest.raises(ValueError, match='prefetch_buffer=0'):
    pipeline.pipeline_options(2, 0)


@pytest.mark.parametrize('batch_bytes', [2**20, 80 * 2**20, 160 * 2**20, GiB])
def test_default_workers_keep_their_batches_within_the_memory_budget(batch_bytes):
  workers = pipeline.default_workers(208, batch_bytes, prefetch_buffer=1)
  held = pipeline.WORKER_BYTES + pipeline.held_batches(1, 1) * batch_bytes
  assert 1 <= workers <= 207
  assert workers * held <= pipeline.WORKERS_MEMORY or workers == 1
  assert workers == 207 or (workers + 1) * held > pipeline.WORKERS_MEMORY


@pytest.mark.parametrize('affinity, machine, env, workers', [
    (range(12), 64, {'SLURM_NTASKS_PER_NODE': '8'}, 11),  # Bound by srun: its 12 CPUs.
    (range(64), 64, {'SLURM_NTASKS_PER_NODE': '8'}, 7),  # Not bound: 64 / 8 tasks.
    (range(64), 64, {'JAX_COORDINATOR_ADDRESS': 'localhost:123', 'JAX_NUM_PROCESSES': '4'},
     15),  # launch.local's 4 processes.
    (range(16), 16, {'JAX_COORDINATOR_ADDRESS': 'host0:123', 'JAX_NUM_PROCESSES': '4'}, 15),
    (range(2), 2, {}, 1), (range(1), 1, {}, 1)])
def test_auto_workers_from_the_cpus_of_the_process(monkeypatch, affinity, machine, env,
                                                    workers):
  monkeypatch.setattr(pipeline.os, 'sched_getaffinity', lambda pid: set(affinity))
  monkeypatch.setattr(pipeline.os, 'cpu_count', lambda: machine)
  assert pipeline.auto_workers(2**20, 1, environ=env) == workers
  assert pipeline.auto_workers(GiB, 1, environ=env) == 1  # Memory-bound.


def test_a_process_of_several_devices_may_hold_more(monkeypatch):
  monkeypatch.setattr(pipeline.os, 'sched_getaffinity', lambda pid: set(range(64)))
  monkeypatch.setattr(pipeline.os, 'cpu_count', lambda: 64)
  one = pipeline.auto_workers(GiB, 1, environ={})
  monkeypatch.setattr(pipeline.jax, 'local_device_count', lambda: 4)
  four = pipeline.auto_workers(GiB, 1, environ={})
  assert (one, four) == (1, 4 * pipeline.WORKERS_MEMORY // (pipeline.WORKER_BYTES + 4 * GiB))


def test_auto_workers_make_the_same_batches(data_dir):
  source = pipeline.load_source(_data(data_dir), 'train', features=('audio',))
  ds = pipeline.train_dataset(source, lambda e, rng: {'audio': e['audio'][:32]}, 4, seed=0)
  expected = [ds[i]['audio'] for i in range(3)]
  it = pipeline.make_iterator(ds, num_workers=-1, prefetch_buffer=1)
  for want in expected:
    np.testing.assert_array_equal(next(it)['audio'], want)


def test_avsynth_is_stored_uncompressed_and_tfds_is_left_as_it_was(data_dir):
  builder = pipeline.prepared_builder(_data(data_dir))
  files = list(pathlib.Path(builder.data_dir).glob('*.array_record-*'))
  records = sum(split.num_bytes for split in builder.info.splits.values())
  assert sum(f.stat().st_size for f in files) >= records  # No zstd in array_record.
  video = builder.info.features['video']
  assert video._encoding == tfds.features.Encoding.BYTES  # pylint: disable=protected-access
  write = file_adapters.ArrayRecordFileAdapter.__dict__['write_examples'].__func__
  assert write.__module__ == file_adapters.__name__
  assert shuffle.MAX_MEM_BUFFER_SIZE == 1000 << 20
