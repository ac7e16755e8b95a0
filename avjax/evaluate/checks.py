"""What a suite checks of its datasets before it trains anything.

Each suite hands over what it will read: the configs of the runs it trains
(`check_run`: `data.train_split` and `data.eval_split`, the `data.label_key` of a
`label_fraction` subset, and the features the task's `preprocess` reads from the
first train example), and the splits and features its own probes read
(`check_splits`, `check_features`). A dataset is prepared if needed, as it
would be by the first run, since only a prepared dataset knows its splits; a
dataset without what is read is a one-line ValueError naming it and the
missing split or feature, raised before any training.
"""

import functools

import numpy as np

from avjax import tasks
from avjax.data import pipeline


def check_splits(data_config, splits, use):
  """ValueError unless the dataset `data_config` (prepared if needed) has each of
  `splits` (names or TFDS slices); `use` says what reads them."""
  builder = pipeline.prepared_builder(data_config)
  known = builder.info.splits
  for split in splits:
    name = split.split('[')[0]
    if name not in known:
      raise ValueError(f'dataset {builder.info.full_name} has no split {name!r}, needed by '
                       f'{use}; its splits are {sorted(known)}')


def check_features(data_config, features, use):
  """ValueError unless the dataset `data_config` has each of `features` (known before
  it is prepared); `use` says what reads them."""
  info = pipeline.unprepared_builder(data_config).info
  missing = [k for k in features if k not in info.features]
  if missing:
    raise ValueError(f'dataset {info.full_name} lacks the features {missing}, needed by '
                     f'{use}; its features are {sorted(info.features)}')


def check_preprocess(method, use):
  """ValueError if `method.task`'s preprocess reads a feature that the first example of
  `method.data`'s train split lacks, that example read as training reads it
  (`tasks.data_source`: a task's join raises its own ValueError for a dataset without
  what it joins by); a ValueError of the example's own propagates: training would
  stop on it too."""
  data = method.data
  task = tasks.TASKS[method.task](method)
  load = functools.partial(pipeline.load_source, data, data.train_split)
  example = tasks.data_source(task, load, data, method.seed)[0]
  try:
    task.preprocess(example, np.random.default_rng(method.seed))
  except KeyError as e:
    key, info = e.args[0] if e.args else None, pipeline.unprepared_builder(data).info
    if not isinstance(key, str) or key in example or key in info.features:
      raise
    raise ValueError(
        f'dataset {info.full_name} lacks the feature {key!r}, needed by {use} (task '
        f'{method.task}); its features are {sorted(info.features)}') from e


def check_run(method, use, splits=()):
  """ValueError unless the dataset of the training run `method` (a configs/NAME.py
  config) has what the trainer reads: the train and eval splits, the label_key a
  label_fraction < 1 stratifies by, the features its task's preprocess reads; and
  `splits` that the suite reads after training (e.g. 'test')."""
  data = method.data
  check_splits(data, (data.train_split, data.eval_split, *splits), use)
  if data.label_fraction < 1 and data.label_key:
    check_features(data, (data.label_key,),
                   f'{use} (a class-stratified label_fraction {data.label_fraction:g})')
  check_preprocess(method, use)
