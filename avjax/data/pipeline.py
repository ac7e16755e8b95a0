"""Grain input pipelines over TFDS data sources.

  source = load_source(config.data, 'train')       # prepares avsynth on first use
  ds = train_dataset(source, task.preprocess, per_host_batch, seed=0)
  it = make_iterator(ds, num_workers=2)            # checkpointable with grain.checkpoint

Each host reads its own slice of the records (`jax.process_index()` of
`jax.process_count()`), shuffles it with a seed (a new order each epoch), runs
the task's `preprocess(example, rng)` and batches. Same seed, same batches,
with or without worker processes.
"""

import functools
import os
import tempfile

import grain
import numpy as np
import threadpoolctl
from absl import flags
from absl import logging
import tensorflow_datasets as tfds

from avjax.data import builders  # noqa: F401  (registers avjax's TFDS builders)
from avjax.data.builders import manual

AVJAX_DATASETS = ('avsynth', 'lrw', 'voxceleb1', 'voxceleb2', 'crema_d_av', 'ravdess',
                  'ucf101_av', 'video_folder')


def load_source(data_config, split):
  """Returns the array_record data source of `split`, preparing it if needed.

  Args:
    data_config: `config.data`, with `name` (a TFDS builder), `config` (its
      builder config) and `data_dir` ('' for TFDS's default).
    split: a split name such as 'train' or a TFDS slice such as 'train[:10%]'.
  """
  builder = prepared_builder(data_config)
  base_split = split.split('[')[0]
  if base_split not in builder.info.splits:
    raise ValueError(f'dataset {builder.info.full_name} has no split {base_split!r}; '
                     f'its splits are {sorted(builder.info.splits)}')
  return builder.as_data_source(split=split)


def prepared_builder(data_config):
  """The TFDS builder of `data_config` (as `load_source`'s), preparing it if needed;
  its `info` holds the dataset's metadata.

  A real dataset is read from `data_config.manual_dir` ('' = DATA_DIR/manual/NAME).
  """
  builder = unprepared_builder(data_config)
  if not builder.is_prepared():
    _check_writable(builder.data_dir)
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
  return builder


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


def train_source(data_config, seed=0):
  """The train split's source: all of `train_split`, or a class-stratified
  `label_fraction` of it, stratified by the feature `label_key`."""
  source = load_source(data_config, data_config.train_split)
  if data_config.label_fraction >= 1:
    return source
  if not data_config.label_key:
    raise ValueError(f'data.label_fraction={data_config.label_fraction} needs data.label_key, '
                     'the feature to stratify by')
  labels = [source[i][data_config.label_key] for i in range(len(source))]
  return Subset(source, label_subset(labels, data_config.label_fraction, seed))


def _host_slice(source, process_index, process_count):
  return grain.MapDataset.source(source)[process_index::process_count]


def _naming_the_file(preprocess, example, rng):
  """`preprocess(example, rng)`; its ValueError names the example's file (`path`), if any."""
  try:
    return preprocess(example, rng)
  except ValueError as e:
    if 'path' not in example:
      raise
    raise ValueError(f'{bytes(example["path"]).decode()}: {e}') from e


def train_dataset(source, preprocess, batch_size, seed, process_index=0, process_count=1):
  """An endless, per-epoch reshuffled, preprocessed and batched MapDataset."""
  ds = _host_slice(source, process_index, process_count).seed(seed)
  ds = ds.shuffle().repeat().random_map(functools.partial(_naming_the_file, preprocess))
  return ds.batch(batch_size, drop_remainder=True)


def eval_dataset(source, preprocess, batch_size, seed, process_index=0, process_count=1):
  """The split in record order, preprocessed with a fixed seed, batched."""
  ds = _host_slice(source, process_index, process_count).seed(seed)
  return ds.random_map(functools.partial(_naming_the_file, preprocess)).batch(
      batch_size, drop_remainder=True)


def make_iterator(ds, num_workers=0, prefetch_buffer=4):
  """A checkpointable iterator, with `num_workers` worker processes if > 0."""
  it = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=prefetch_buffer, prefetch_buffer_size=prefetch_buffer))
  if num_workers > 0:
    if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags (pytest, notebooks).
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers),
                        worker_init_fn=_one_blas_thread)
  return iter(it)


def _one_blas_thread(worker_index, worker_count):
  """Grain worker start-up: numpy's BLAS on one thread. Workers already fill the
  cores, and a thread pool per worker made small matmuls (log-mel) several times slower."""
  del worker_index, worker_count
  threadpoolctl.threadpool_limits(1, user_api='blas')
