"""multitask: a weighted sum of tasks that share their encoders by module name.

`config.multitask.weights` names the tasks and their weights, e.g.
{'recon': 1.0, 'aot': 0.5, 'odd': 0.5}. Every task's parameters are a dict of
top-level modules; the merged parameters hold each name once, so the
`audio_encoder` that recon, aot and odd all build is one set of weights that
every loss trains, while the heads (`frame_decoder`, `aot_head`, ...) stay
apart. Each task is applied to the merged parameters (linen's `apply` ignores
top-level modules its model does not have).

A batch is a dict {task name: that task's compact features}, each preprocessed
from the same example with its own random generator and expanded by its own
task (`expand`: every task's). Metrics are prefixed with the task's name; the
loss is sum(weight * task loss).
"""

import jax

from avjax.tasks import aot
from avjax.tasks import odd
from avjax.tasks import recon

COMPONENTS = {'recon': recon.Recon, 'aot': aot.ArrowOfTime, 'odd': odd.OddOneOut}


def merge_params(named_params):
  """One dict of top-level modules from {task: params}; a shared name is kept once.

  The first task's copy of a shared module is kept; copies must agree in
  structure and shapes, or a ValueError names the module.
  """
  merged = {}
  for task_name, params in named_params.items():
    for module, value in params.items():
      if module not in merged:
        merged[module] = value
      elif _shapes(merged[module]) != _shapes(value):
        raise ValueError(f'task {task_name!r} builds a {module!r} unlike the one another task '
                         'builds; shared modules need the same shapes, heads distinct names')
  return merged


def _shapes(tree):
  return jax.tree.structure(tree), [x.shape for x in jax.tree.leaves(tree)]


class Multitask:
  """The multitask task; see `avjax.tasks` for the contract."""

  def __init__(self, config):
    self.weights = dict(config.multitask.weights)
    if not self.weights or not set(self.weights) <= set(COMPONENTS):
      raise ValueError(f'multitask.weights {self.weights} must name tasks among '
                       f'{sorted(COMPONENTS)}')
    self.tasks = {name: COMPONENTS[name](config) for name in self.weights}
    self.features = tuple(sorted({k for task in self.tasks.values() for k in task.features}))

  def _keys(self, rng):
    return dict(zip(self.tasks, jax.random.split(rng, len(self.tasks))))

  def init(self, rng, batch):
    keys = self._keys(rng)
    return merge_params({name: task.init(keys[name], batch[name])
                         for name, task in self.tasks.items()})

  def join(self, source, load, data_config, seed):
    """`source` joined by each task that joins (`avjax.tasks.data_source`)."""
    for task in self.tasks.values():
      if hasattr(task, 'join'):
        source = task.join(source, load, data_config, seed)
    return source

  def preprocess(self, example, rng):
    rngs = dict(zip(self.tasks, rng.spawn(len(self.tasks))))
    return {name: task.preprocess(example, rngs[name]) for name, task in self.tasks.items()}

  def expand(self, batch):
    """{task name: that task's `expand` of its compact features}."""
    return {name: task.expand(batch[name]) for name, task in self.tasks.items()}

  def loss(self, params, batch, rng):
    keys, total, metrics = self._keys(rng), 0.0, {}
    for name, task in self.tasks.items():
      loss, task_metrics = task.loss(params, batch[name], keys[name])
      total += self.weights[name] * loss
      metrics.update({f'{name}_{k}': v for k, v in task_metrics.items()})
    return total, dict(metrics, loss=total)

  def evaluate(self, params, batch):
    return {f'{name}_{k}': v for name, task in self.tasks.items()
            for k, v in task.evaluate(params, batch[name]).items()}

  def visualize(self, params, batch):
    if 'recon' not in self.tasks:
      return None
    return self.tasks['recon'].visualize(params, batch['recon'])

  def encoders(self):
    return {name: encoder for task in self.tasks.values()
            for name, encoder in task.encoders().items()}
