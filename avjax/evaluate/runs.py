"""Helpers the evaluation suites share: a method's config under the suite's
preset, training runs, test-split passes, result rows, and seeds.

Seeds: `run_seeds` runs a suite once per seed K, in WORKDIR/seed_K with the
suite config's `seed` set to K, which every run the suite makes takes: the
training runs (`run_config` sets each method config's `seed`: parameter
initialisation, data order, label subsets of fine-tuning runs) and the
suite's own probes, label subsets, test noise and random baselines. When a
seed finishes, WORKDIR/seed_K/finished.json keeps its config and rows; a
rerun with the same config reuses them (with another config, the seed runs
again, its training runs resuming from their checkpoints). WORKDIR/results.json,
results.md and the plots aggregate the seeds (mean ± standard error,
`results`).
"""

import json
import os

import jax
import numpy as np
from absl import logging

from avjax import checkpoint
from avjax import config_lib
from avjax import tasks
from avjax import train
from avjax.data import pipeline
from avjax.evaluate import results

FINISHED = 'finished.json'  # In a seed's directory: its config and rows, once it finished.


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
  """configs/NAME.py under the suite's preset, steps and seed, on `data` ({'name',
  'config', 'manual_dir'}: its `data=NAME` argument, then that builder config; the
  suite's data_dir), with `overrides` ({'dotted.key': value})."""
  real = f'data={data["name"]}' if data['name'] != 'avsynth' else ''
  arg = ','.join(filter(None, [config.preset, real]))
  method = config_lib.load(name, arg, config.configs_dir)
  method.data.update(config=data['config'] or method.data.config, manual_dir=data['manual_dir'],
                     data_dir=config.data.data_dir)
  method.total_steps = config.total_steps.get(name) or method.total_steps
  method.seed = config.seed
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


# ---- seeds ----

def seed_dir(workdir, seed):
  """WORKDIR/seed_K: the suite run of seed K."""
  return os.path.join(workdir, f'seed_{seed}')


def migrate(workdir, run_dirs):
  """Moves the `run_dirs` of a workdir written before seeds (its runs were seed 0's)
  into WORKDIR/seed_0, where they resume; nothing when seed_0 exists."""
  found = [d for d in run_dirs if os.path.isdir(os.path.join(workdir, d))]
  if not found or os.path.exists(seed_dir(workdir, 0)):
    return
  os.makedirs(seed_dir(workdir, 0))
  for d in found:
    os.rename(os.path.join(workdir, d), os.path.join(seed_dir(workdir, 0), d))
  logging.info('moved %s of %s (a run before seeds: seed 0) into %s', ', '.join(found), workdir,
               seed_dir(workdir, 0))


def _as_json(config):
  return json.loads(config.to_json())


def seed_run(run, config, workdir, seed):
  """The rows of `run(config, WORKDIR/seed_K)` with `config.seed` K: those of
  seed_K/finished.json when it finished with this config, else run (again)."""
  config = config.copy_and_resolve_references()
  config.seed = seed
  directory = seed_dir(workdir, seed)
  path = os.path.join(directory, FINISHED)
  if os.path.exists(path):
    with open(path) as f:
      finished = json.load(f)
    if finished['config'] == _as_json(config):
      logging.info('seed %d finished in %s: its rows are reused', seed, directory)
      return finished['rows']
    logging.info('seed %d finished in %s with another config: it runs again', seed, directory)
  logging.info('seed %d: running the suite in %s', seed, directory)
  rows = run(config, directory)
  with open(path, 'w') as f:
    json.dump(dict(config=_as_json(config), rows=rows), f, indent=1)
  return rows


def run_seeds(run, config, workdir, seeds, run_dirs=()):
  """Runs a suite (`run(config, workdir) -> rows`, writing results.json there) for each
  of `seeds` (`seed_run`, after `migrate` of its `run_dirs`); after each, writes
  WORKDIR/results.{json,md} and plots of the seeds so far, with the first seed's
  reference, notes, comparisons and images; returns the rows of every seed."""
  migrate(workdir, run_dirs)
  rows = []
  for done, seed in enumerate(seeds, 1):
    rows += seed_run(run, config, workdir, seed)
    first = results.read(seed_dir(workdir, seeds[0]))
    seeds_note = (f'Seeds {", ".join(map(str, seeds[:done]))}: each trains every run anew '
                  '(pretraining included) and draws its own label subsets, probe '
                  'initialisations, test noise and random baselines.' if done > 1 else '')
    notes = ' '.join(filter(None, (first['notes'], seeds_note)))
    results.write(workdir, rows, first['reference'], first['title'], notes,
                  first['by_task'], [os.path.join(f'seed_{seeds[0]}', name)
                                     for name in first['images']],
                  results.comparison_pairs(first['comparisons']))
  return rows
