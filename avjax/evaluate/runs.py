"""Helpers the evaluation suites share: a method's config under the suite's
preset, training runs, test-split passes and result rows."""

import jax
import numpy as np
from absl import logging

from avjax import checkpoint
from avjax import config_lib
from avjax import tasks
from avjax import train
from avjax.data import pipeline


def avsynth(preset):
  """The `data` of `run_config` for an avsynth preset ('heads', 'scenes_tiny', ...)."""
  return dict(name='avsynth', config=preset, manual_dir='')


def dataset_name(data):
  """'NAME/CONFIG' of a `data` config (or 'NAME', for the dataset's default config)."""
  return '/'.join(filter(None, (data.name, data.config)))


def parse_data(spec, manual_dir=''):
  """The `data` of `run_config` for 'NAME' or 'NAME/CONFIG' ('' config: the dataset's default)."""
  name, _, data_config = spec.partition('/')
  return dict(name=name, config=data_config, manual_dir=manual_dir)


def run_config(config, name, data, overrides=None):
  """configs/NAME.py under the suite's preset and steps, on `data` ({'name', 'config',
  'manual_dir'}: its `data=NAME` argument, then that builder config; the suite's
  data_dir), with `overrides` ({'dotted.key': value})."""
  real = f'data={data["name"]}' if data['name'] != 'avsynth' else ''
  arg = ','.join(filter(None, [config.preset, real]))
  method = config_lib.load(name, arg, config.configs_dir)
  method.data.update(config=data['config'] or method.data.config, manual_dir=data['manual_dir'],
                     data_dir=config.data.data_dir)
  method.total_steps = config.total_steps.get(name) or method.total_steps
  method.update_from_flattened_dict(overrides or {})
  return method


def train_run(method, run_dir):
  """Trains (or resumes) `method` in RUN_DIR; returns (task, its trained params)."""
  logging.info('training %s in %s', method.task, run_dir)
  train.train_and_evaluate(method, run_dir)
  return tasks.TASKS[method.task](method), checkpoint.restore_params(run_dir)


def split_examples(method, task, split='test', keep=lambda example: True):
  """(The examples of `split` that `keep(example)` accepts, preprocessed by `task` with
  the config's seed, each as it is among all of them; how many `keep` left out)."""
  source = pipeline.load_source(method.data, split)
  kept = lambda example, rng: task.preprocess(example, rng) if keep(example) else {}
  ds = pipeline.eval_dataset(source, kept, 1, method.seed)
  examples = [jax.tree.map(lambda x: x[0], ds[i]) for i in range(len(ds))]
  return [e for e in examples if e], sum(not e for e in examples)


def batches(examples, batch_size):
  """Near-equal batches (stacked) of all the examples, none dropped."""
  chunks = np.array_split(np.arange(len(examples)), max(1, -(-len(examples) // batch_size)))
  return [jax.tree.map(lambda *x: np.stack(x), *[examples[i] for i in c]) for c in chunks]


def mean_metrics(fn, params, test_batches):
  """Example-weighted means of the scalar metrics `fn(params, batch)` over batches."""
  fn = jax.jit(fn)
  sizes = [len(jax.tree.leaves(b)[0]) for b in test_batches]
  values = [jax.device_get(fn(params, b)) for b in test_batches]
  return {k: float(np.average([v[k] for v in values], weights=sizes)) for k in values[0]}


def row(method, mode, task, metric, value, label_fraction=1.0, **extra):
  """A results row (`avjax.evaluate.results`), clean audio."""
  return dict(method=method, mode=mode, task=task, metric=metric, value=float(value),
              snr_db=None, label_fraction=label_fraction, **extra)
