"""Grain input pipelines over TFDS data sources.

  source = load_source(config.data, 'train', task.features)  # prepares avsynth on first use
  ds = train_dataset(source, task.preprocess, per_host_batch, seed=0)
  it = make_iterator(ds, num_workers=-1)  # checkpointable; workers sized from the host

The records are shuffled with a seed (a new order each epoch) and preprocessed by
the task's `preprocess(example, rng)`, the rng keyed by the seed and the
example's global position; each host (`jax.process_index()` of
`jax.process_count()`) makes its own rows of every global batch. Same seed, same
global batches, on one host or several, with or without worker processes.
`crops_per_clip` > 1 preprocesses each record read that many times, for rows
next to each other in a batch: reading and decoding cost that much less per row.
Only the features a task reads are decoded; each worker process makes one batch
at a time, into shared memory, and keeps `prefetch_buffer` ready.
"""

import ctypes
import functools
import os
import socket
import tempfile
import zlib

import grain
from grain.multiprocessing import SharedMemoryArray
import jax
import numpy as np
import threadpoolctl
from absl import flags
from absl import logging
from jax.experimental import multihost_utils
import tensorflow_datasets as tfds

from avjax.data import builders  # noqa: F401  (registers avjax's TFDS builders)
from avjax.data.builders import manual

AVJAX_DATASETS = ('avsynth', 'lrw', 'voxceleb1', 'voxceleb2', 'crema_d_av', 'ravdess',
                  'ucf101_av', 'video_folder')


def load_source(data_config, split, features=None):
  """Returns the array_record data source of `split`, preparing it if needed.

  Args:
    data_config: `config.data`, with `name` (a TFDS builder), `config` (its
      builder config) and `data_dir` ('' for TFDS's default).
    split: a split name such as 'train' or a TFDS slice such as 'train[:10%]'.
    features: the example keys to read (a task's `features`, those its preprocess
      reads), or None for all. The others are neither decoded nor returned, except a
      dataset's `path`, kept to name the file in errors; keys the dataset lacks are
      left out.
  """
  builder = prepared_builder(data_config)
  base_split = split.split('[')[0]
  if base_split not in builder.info.splits:
    raise ValueError(f'dataset {builder.info.full_name} has no split {base_split!r}; '
                     f'its splits are {sorted(builder.info.splits)}')
  if features is None:
    return builder.as_data_source(split=split)
  return Features(builder, split, [k for k in builder.info.features
                                   if k in features or k == 'path'])


class Features:
  """The examples of a TFDS builder's `split` with only the features `keys`, whose
  records are read whole but the other features neither parsed nor decoded; a data
  source."""

  def __init__(self, builder, split, keys):
    self._records = builder.as_data_source(
        split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    self._features = tfds.features.FeaturesDict({k: builder.info.features[k] for k in keys})

  def __len__(self):
    return len(self._records)

  def __getitem__(self, i):
    return self._features.deserialize_example_np(self._records[i])


def prepared_builder(data_config):
  """The TFDS builder of `data_config` (as `load_source`'s), preparing it if needed;
  its `info` holds the dataset's metadata.

  A real dataset is read from `data_config.manual_dir` ('' = DATA_DIR/manual/NAME).
  With several processes (`jax.distributed`), process 0 prepares a missing dataset
  while the others wait at a barrier; then, where a host's data dir is its own (not
  shared), the first process of that host, while the others wait again.
  """
  builder = unprepared_builder(data_config)
  if not (jax.distributed.is_initialized() and jax.process_count() > 1):
    if not builder.is_prepared():
      _prepare(builder, data_config)
    return builder
  for preparer in (jax.process_index() == 0, _first_on_host()):
    if preparer and not builder.is_prepared():
      _prepare(builder, data_config)
    multihost_utils.sync_global_devices(f'avjax: prepared {builder.info.full_name}')
    builder = unprepared_builder(data_config)  # Reads what another process wrote.
  return builder


def _first_on_host():
  """Whether this process comes first of those on its machine (by host name); every
  process calls it."""
  host = np.int32(zlib.crc32(socket.gethostname().encode()) & 0x7fffffff)
  return first_of_its_kind(multihost_utils.process_allgather(host), jax.process_index())


def first_of_its_kind(kinds, index):
  """Whether `kinds[index]` is the first of its value in `kinds`."""
  kinds = np.asarray(kinds)
  return int(np.argmax(kinds == kinds[index])) == index


def _prepare(builder, data_config):
  """Writes the dataset of `builder` in array_record, with a progress bar."""
  _check_writable(builder.data_dir)
  logging.info('preparing dataset %s in %s', builder.info.full_name, builder.data_dir)
  manual_dir = data_config.get('manual_dir') or default_manual_dir(builder)
  try:
    builder.download_and_prepare(file_format='array_record', download_config=(
        tfds.download.DownloadConfig(manual_dir=manual_dir)))
  except AssertionError as e:  # TFDS's word for a missing or empty manual dir.
    if 'Manual directory' not in str(e):
      raise
    raise manual.ManualDownloadError(f'{builder.name}: {e}') from e
  report = manual.read_report(builder.data_dir)
  if report:
    logging.warning('%s (report: %s)', manual.summary(builder.name, report),
                    os.path.join(builder.data_dir, manual.REPORT))


def class_names(data_config, key):
  """The class names of feature `key`: its ClassLabel's, or those the dataset's
  build found (`metadata['class_names']`, e.g. LRW's words)."""
  info = prepared_builder(data_config).info
  if isinstance(info.features[key] if key in info.features else None,
                tfds.features.ClassLabel):
    return list(info.features[key].names)
  names = info.metadata.get('class_names', {}).get(key)
  if names is None:
    raise ValueError(f'dataset {info.full_name} has no classes of {key!r}')
  return list(names)


def default_manual_dir(builder):
  """DATA_DIR/manual/NAME, where a real dataset's copy is looked for by default."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.fspath(builder.data_dir))))
  return os.path.join(root, 'manual', builder.name)


def unprepared_builder(data_config):
  """The TFDS builder of `data_config` ({'name', 'config', 'data_dir'}), nothing prepared:
  its features and builder config are known; unknown names are clear errors."""
  name = f'{data_config.name}/{data_config.config}' if data_config.config else data_config.name
  try:
    return tfds.builder(name, data_dir=data_config.get('data_dir') or None,
                        file_format='array_record')
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(f'unknown dataset {data_config.name!r}; avjax datasets are '
                     f'{AVJAX_DATASETS}') from e
  except ValueError as e:
    if 'BuilderConfig' in str(e):
      raise ValueError(f'dataset {data_config.name!r} has no config {data_config.config!r}: '
                       f"{e}; a config's data=NAME argument (configs/recon.py:data=lrw) "
                       'picks a dataset and its default config') from e
    raise


def _check_writable(data_dir):
  """Raises a clear error if nothing can be written under `data_dir`; creates nothing."""
  path = os.path.abspath(os.fspath(data_dir))
  while not os.path.exists(path):
    path = os.path.dirname(path)
  try:
    tempfile.TemporaryFile(dir=path).close()
  except OSError as e:
    raise PermissionError(f'cannot prepare the dataset: data directory {data_dir} is not '
                          f'writable ({path}: {e.strerror}); set --config.data.data_dir') from e


def label_subset(classes, fraction, seed, min_examples=1):
  """Indices (sorted) of a class-stratified `fraction` of the examples.

  Takes max(min_examples, ceil(fraction * N)) examples, each class in
  proportion to its size; the same seed gives nested subsets as the fraction
  grows.
  """
  classes = np.asarray(classes)
  n = min(len(classes), max(min_examples, int(np.ceil(fraction * len(classes) - 1e-9))))
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(classes))
  key = np.empty(len(classes))
  for c in np.unique(classes):
    members = order[classes[order] == c]  # Shuffled members of class c.
    key[members] = (np.arange(len(members)) + 0.5) / len(members)
  return np.sort(np.lexsort((rng.permutation(len(classes)), key))[:n])


class Subset:
  """The records `indices` of a data source, itself a data source."""

  def __init__(self, source, indices):
    self._source, self._indices = source, np.asarray(indices)

  def __len__(self):
    return len(self._indices)

  def __getitem__(self, i):
    return self._source[int(self._indices[i])]


def train_source(data_config, seed=0, features=None):
  """The train split's source (of `features`, as `load_source`'s): all of
  `train_split`, or a class-stratified `label_fraction` of it, stratified by the
  feature `label_key`."""
  source = load_source(data_config, data_config.train_split, features)
  if data_config.label_fraction >= 1:
    return source
  if not data_config.label_key:
    raise ValueError(f'data.label_fraction={data_config.label_fraction} needs data.label_key, '
                     'the feature to stratify by')
  label_source = load_source(data_config, data_config.train_split, (data_config.label_key,))
  labels = [label_source[i][data_config.label_key] for i in range(len(label_source))]
  return Subset(source, label_subset(labels, data_config.label_fraction, seed))


def _host_slice(batches, process_index, process_count):
  """This host's share of each global batch, from `batches` of the per-host size:
  global batch i is batches[i * process_count:(i + 1) * process_count], one per host
  in process order (as `parallel.to_global` stacks them); an incomplete one is dropped."""
  whole = len(batches) - len(batches) % process_count
  return batches[:whole][process_index::process_count]


def _naming_the_file(preprocess, example, rng):
  """`preprocess(example, rng)`; its ValueError names the example's file (`path`), if any."""
  try:
    return preprocess(example, rng)
  except ValueError as e:
    if 'path' not in example:
      raise
    raise ValueError(f'{bytes(example["path"]).decode()}: {e}') from e


def train_dataset(source, preprocess, batch_size, seed, process_index=0, process_count=1,
                  crops_per_clip=1):
  """An endless, per-epoch reshuffled, preprocessed MapDataset of this host's
  `batch_size` share of each global batch (`_host_slice`). The order and each
  example's preprocessing rng depend on the seed and the example's global position
  only: hosts draw differently, and N hosts make the global batches one host does.

  With `crops_per_clip` = k > 1, each record is preprocessed k times (`_crops`), as
  k consecutive rows of a batch: a batch holds `batch_size / k` records, its rows
  correlated in groups of k, and the records read and decoded per row are 1/k: a
  shuffled pass over the records gives k rows of each.
  """
  ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat()
  if crops_per_clip == 1:
    ds = ds.random_map(functools.partial(_naming_the_file, preprocess))
  else:
    ds = ds.random_map(functools.partial(_crops, preprocess, crops_per_clip))
  return _host_slice(batch(ds, batch_size, crops_per_clip), process_index, process_count)


def _crops(preprocess, count, example, rng):
  """`count` preprocessings of one `example` (`_naming_the_file`), as a tuple: crop c
  draws from `rng`, the example's, where crop c - 1 left it."""
  return tuple(_naming_the_file(preprocess, example, rng) for _ in range(count))


def eval_dataset(source, preprocess, batch_size, seed, process_index=0, process_count=1):
  """The split in record order, preprocessed with a fixed seed (keyed by the record),
  as this host's `batch_size` share of each global batch (`_host_slice`)."""
  ds = grain.MapDataset.source(source).seed(seed)
  ds = ds.random_map(functools.partial(_naming_the_file, preprocess))
  return _host_slice(batch(ds, batch_size), process_index, process_count)


def batch(ds, batch_size, rows_per_element=1):
  """`ds` in batches of `batch_size` consecutive elements, each leaf an array with a
  new leading axis, as `MapDataset.batch(batch_size, drop_remainder=True)` makes
  them; but each element is copied into its row as soon as it is made, so making a
  batch holds the batch and one element, not every element (and the decoded records
  they are views of) and then their stack. With `rows_per_element` = k > 1, each
  element is a tuple of k rows (`_crops`), and a batch `batch_size / k` elements."""
  if batch_size % rows_per_element:
    raise ValueError(f'data.crops_per_clip={rows_per_element} does not divide the batch of '
                     f'{batch_size} examples (per host)')
  return _Batch(ds, batch_size, rows_per_element)


class _Batch(grain.MapDataset):
  """See `batch`."""

  def __init__(self, parent, batch_size, rows_per_element):
    super().__init__(parent)
    self._batch_size, self._rows_per_element = batch_size, rows_per_element

  def __len__(self):
    return len(self._parent) * self._rows_per_element // self._batch_size

  def __str__(self):
    return f'Batch(batch_size={self._batch_size}, rows_per_element={self._rows_per_element})'

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    epoch, index = divmod(index, len(self))  # Each epoch batched on its own, as Grain's.
    k = self._rows_per_element
    start = epoch * len(self._parent) + index * self._batch_size // k
    first = self._parent[start]
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(first[0] if k > 1 else first)
    paths = [jax.tree_util.keystr(path) for path, _ in paths_and_leaves]
    rows = [_batch_array((self._batch_size, *np.shape(x)), np.asarray(x).dtype)
            for _, x in paths_and_leaves]
    try:
      for j in range(self._batch_size // k):
        element = first if j == 0 else self._parent[start + j]
        for i, example in enumerate(element if k > 1 else (element,), j * k):
          for path, row, value in zip(paths, rows, treedef.flatten_up_to(example), strict=True):
            _put_row(row, i, value, path)
    except BaseException:
      for row in rows:
        if isinstance(row, SharedMemoryArray):
          row.shm.unlink()  # Never handed to Grain: its memory goes with the array.
      raise
    return jax.tree.unflatten(treedef, rows)


# True in `make_iterator`'s Grain worker processes (set by `_init_worker`): there a
# batch is made in shared memory, which Grain hands to the main process as it is.
_BATCHES_IN_SHARED_MEMORY = False


def _batch_array(shape, dtype):
  """An empty array for a batch: in shared memory in a Grain worker (else Grain
  copies the batch there: a copy, and its pages faulted in, per batch)."""
  if _BATCHES_IN_SHARED_MEMORY and not dtype.hasobject and 0 not in shape:
    return SharedMemoryArray(shape, dtype)
  return np.empty(shape, dtype)


def _put_row(rows, i, value, path):
  value = np.asarray(value)
  if value.shape != rows.shape[1:] or value.dtype != rows.dtype:
    raise ValueError(f'preprocess output{path} is {value.dtype}{list(value.shape)} in '
                     f'element {i} of a batch, {rows.dtype}{list(rows.shape[1:])} in its first; '
                     'every element of a batch needs the same shapes and dtypes')
  rows[i] = value


# A Grain worker's resident memory besides its batches: Python, numpy, Grain, TFDS,
# JAX and the task's modules (180 MiB measured for recon and sync, shared pages split).
WORKER_BYTES = 200 * 2**20
# What the Grain workers may hold together for each local device, within the 8 GiB
# that a device's input pipeline is sized to (one process a device: 8 GiB a process);
# the rest is the main process's (its pipeline's share measured under 200 MiB).
WORKERS_MEMORY = 7 * 2**30


def make_iterator(ds, num_workers=0, prefetch_buffer=1):
  """A checkpointable iterator of `ds`'s batches.

  With `num_workers` > 0 worker processes, each makes one batch at a time and
  keeps at most `prefetch_buffer` finished ones, as does the main process for each
  worker (`held_batches`); -1 picks the count (`auto_workers`). With 0 the batches
  are made in this process, by one thread, `prefetch_buffer` ahead.
  """
  if num_workers < 0:
    num_workers = auto_workers(batch_bytes(ds[0]), prefetch_buffer)
  read, workers = pipeline_options(num_workers, prefetch_buffer)
  it = ds.to_iter_dataset(read)
  if workers is not None:
    if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags (pytest, notebooks).
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(workers, worker_init_fn=_init_worker)
  return iter(it)


def pipeline_options(num_workers, prefetch_buffer):
  """Grain's (ReadOptions, MultiprocessingOptions or None) for `make_iterator`: a
  worker reads and makes its batches in order, with no threads of its own (whose
  batches would be held too); in-process, one thread makes `prefetch_buffer` ahead."""
  if num_workers == 0:
    return grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch_buffer), None
  if prefetch_buffer < 1:
    raise ValueError(f'data.prefetch_buffer={prefetch_buffer}: worker processes need 1 '
                     'or more (batches each keeps ready)')
  return (grain.ReadOptions(num_threads=0, prefetch_buffer_size=0),
          grain.MultiprocessingOptions(num_workers=num_workers,
                                       per_worker_buffer_size=prefetch_buffer))


def held_batches(num_workers, prefetch_buffer):
  """The most batches `make_iterator`'s pipeline holds besides the one it returned:
  per worker, one being made or waiting to be queued, `prefetch_buffer` queued, one
  being taken and `prefetch_buffer` taken by the main process; in-process,
  `prefetch_buffer`."""
  return num_workers * (2 * prefetch_buffer + 2) if num_workers else prefetch_buffer


def batch_bytes(batch):
  """Bytes of a batch's arrays."""
  return sum(np.asarray(x).nbytes for x in jax.tree.leaves(batch))


def cpu_share(cpus, machine_cpus, local_processes):
  """The CPUs a process may use: all of its `cpus` (its affinity) when the launcher
  bound it to fewer than the machine's (SLURM's --cpus-per-task), else an even share
  among the run's `local_processes` on this machine."""
  return cpus if cpus < machine_cpus else max(1, cpus // local_processes)


def default_workers(cpus, bytes_per_batch, prefetch_buffer, memory=WORKERS_MEMORY):
  """Grain workers for a process of `cpus` CPUs: one per CPU but the one the process
  itself uses, and no more than `memory` holds (WORKER_BYTES each, and the batches
  they hold, `held_batches`); at least 1."""
  per_worker = WORKER_BYTES + held_batches(1, prefetch_buffer) * bytes_per_batch
  return max(1, min(cpus - 1, memory // per_worker))


def local_process_count(environ):
  """This run's processes on this machine, as the launchers tell: SLURM's tasks per
  node, launch.local's processes (a coordinator on localhost), else 1."""
  slurm = environ.get('SLURM_NTASKS_PER_NODE', '')
  if slurm.isdigit():
    return int(slurm)
  if environ.get('JAX_COORDINATOR_ADDRESS', '').startswith('localhost:'):
    return int(environ.get('JAX_NUM_PROCESSES', '1'))
  return 1


def auto_workers(bytes_per_batch, prefetch_buffer, environ=os.environ):
  """`default_workers` for this process's CPUs (`os.sched_getaffinity`, `cpu_share`)
  and WORKERS_MEMORY for each of its devices."""
  machine = os.cpu_count() or 1
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else machine
  share = cpu_share(cpus, machine, local_process_count(environ))
  workers = default_workers(share, bytes_per_batch, prefetch_buffer,
                            WORKERS_MEMORY * jax.local_device_count())
  logging.info('%d Grain workers: %d of %d CPUs, %.0f MiB batches', workers, share, machine,
               bytes_per_batch / 2**20)
  return workers


def _init_worker(worker_index, worker_count):
  """Grain worker start-up: batches in shared memory (`_batch_array`), numpy's BLAS on
  one thread (workers already fill the cores, and a thread pool per worker made
  small matmuls, log-mel, several times slower), and malloc keeping freed memory for
  reuse (`_reuse_freed_memory`)."""
  del worker_index, worker_count
  global _BATCHES_IN_SHARED_MEMORY
  _BATCHES_IN_SHARED_MEMORY = True
  threadpoolctl.threadpool_limits(1, user_api='blas')
  _reuse_freed_memory()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h.


def _reuse_freed_memory():
  """glibc's malloc: blocks up to 32 MiB from the heap, and up to 512 MiB of freed
  heap kept, not returned to the system. Otherwise every record read (0.7-1.4 MB for
  avsynth) was a fresh mmap paged in and out again: half of a worker's CPU time.
  Nothing to do for another C library."""
  try:
    mallopt = ctypes.CDLL(None).mallopt
  except (OSError, AttributeError):
    return
  mallopt(_M_MMAP_THRESHOLD, 32 << 20)
  mallopt(_M_TRIM_THRESHOLD, 512 << 20)
