"""The generic trainer: one sharded, jitted train step for any task.

  train_and_evaluate(config, workdir)

builds the task named by `config.task`, a ('data', 'fsdp') mesh, parameters
born sharded, and runs `train_step` with donated state. It evaluates every
`eval_every` steps, writes metrics (JSON lines, TensorBoard) and a progress
line, and checkpoints state and data position together every
`checkpoint_every` steps; a restart in the same workdir resumes from there,
and SIGTERM saves before exiting.
"""

import functools
import os
import signal
import threading
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.experimental import multihost_utils

from avjax import checkpoint
from avjax import metric_writers
from avjax import parallel
from avjax import tasks
from avjax.data import pipeline
from avjax.evaluate import linear_probe


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


def make_optimizer(opt_config, total_steps):
  """The optax transformation and learning-rate schedule named by `config.optimizer`."""
  warmup = min(opt_config.warmup_steps, max(total_steps - 1, 0))
  if opt_config.schedule == 'cosine':
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, opt_config.learning_rate, max(warmup, 1), max(total_steps, warmup + 1))
  elif opt_config.schedule == 'constant':
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, opt_config.learning_rate, max(warmup, 1)),
         optax.constant_schedule(opt_config.learning_rate)], [max(warmup, 1)])
  else:
    raise ValueError(f'unknown optimizer.schedule {opt_config.schedule!r}; '
                     "known: 'cosine', 'constant'")
  optimizers = {
      'adamw': lambda: optax.adamw(schedule, weight_decay=opt_config.weight_decay),
      'sgd': lambda: optax.chain(optax.add_decayed_weights(opt_config.weight_decay),
                                 optax.sgd(schedule, momentum=opt_config.momentum)),
  }
  if opt_config.name not in optimizers:
    raise ValueError(f'unknown optimizer.name {opt_config.name!r}; known: {sorted(optimizers)}')
  clip = optax.clip_by_global_norm(opt_config.grad_clip) if opt_config.grad_clip else optax.identity()
  return optax.chain(clip, optimizers[opt_config.name]()), schedule


def init_state(rng, batch, *, task, tx):
  params = task.init(rng, batch)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def train_step(state, batch, rng, *, task, tx):
  """One optimizer step; the step's randomness is `fold_in(rng, step)`."""
  step_rng = jax.random.fold_in(rng, state.step)
  grad_fn = jax.value_and_grad(task.loss, has_aux=True)
  (loss, metrics), grads = grad_fn(state.params, batch, step_rng)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {**metrics, 'loss': loss, 'l2_grads': optax.tree.norm(grads),
             'l2_params': optax.tree.norm(params), 'l2_updates': optax.tree.norm(updates)}
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def check_finite(step_metrics):
  """Raises FloatingPointError naming the first step with a non-finite metric."""
  for step, metrics in step_metrics:
    for name, value in metrics.items():
      if not np.isfinite(value):
        raise FloatingPointError(f'non-finite {name} = {value} at step {step}; stopping')


def _check_workdir(workdir):
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, '.write_test')
    open(probe, 'w').close()
    os.remove(probe)
  except OSError as e:
    raise PermissionError(f'workdir {workdir} cannot be written: {e.strerror}') from e


def _make_task(config):
  if config.task not in tasks.TASKS:
    raise ValueError(f'unknown task {config.task!r}; known: {sorted(tasks.TASKS)}')
  return tasks.TASKS[config.task](config)


class _Evaluator:
  """Averages `task.evaluate` over the first `num_batches` validation batches,
  plus the linear probe of `config.probe` (see `avjax.evaluate.linear_probe`)."""

  def __init__(self, config, task, mesh, batch_size):
    source = pipeline.load_source(config.data, config.data.eval_split)
    ds = pipeline.eval_dataset(source, task.preprocess, batch_size, config.seed,
                               jax.process_index(), jax.process_count())
    num_batches = min(config.eval_batches, len(ds))
    if num_batches == 0:
      raise ValueError(f'the {config.data.eval_split} split has {len(source)} examples, fewer '
                       f'than one batch of {batch_size} a host; set --config.batch_size or '
                       '--config.data.eval_split')
    self._local = [ds[i] for i in range(num_batches)]
    self._global = [parallel.to_global(b, mesh) for b in self._local]
    self._task = task
    self._eval = jax.jit(task.evaluate)
    self._probe = linear_probe.from_config(config, task)

  def __call__(self, params):
    results = [self._eval(params, batch) for batch in self._global]
    means = {f'val_{k}': float(np.mean([r[k] for r in results])) for k in results[0]}
    if self._probe is not None:
      means.update({f'val_{k}': v for k, v in self._probe(params).items()})
    return means

  def visualize(self, params):
    if jax.process_count() > 1:
      params = multihost_utils.process_allgather(params, tiled=True)
    return self._task.visualize(params, self._local[0])


def train_and_evaluate(config, workdir):
  """Trains `config.task` in `workdir`, resuming from its latest checkpoint."""
  _check_workdir(workdir)
  is_chief = jax.process_index() == 0
  task = _make_task(config)
  mesh = parallel.make_mesh(config.mesh)
  parallel.check_batch_size(config.batch_size, mesh)
  local_batch = parallel.per_host_batch_size(config.batch_size)
  logging.info('mesh %s over %d devices, %d hosts', dict(mesh.shape), mesh.size,
               jax.process_count())

  source = pipeline.train_source(config.data, config.seed)
  train_ds = pipeline.train_dataset(source, task.preprocess, local_batch, config.seed,
                                    jax.process_index(), jax.process_count())
  train_iter = pipeline.make_iterator(train_ds, config.data.num_workers,
                                      config.data.prefetch_buffer)
  tx, schedule = make_optimizer(config.optimizer, config.total_steps)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))

  # Parameters are born sharded: shapes first, then shardings, then a jitted init.
  init_fn = functools.partial(init_state, task=task, tx=tx)
  init_batch = parallel.to_global(train_ds[0], mesh)
  abstract = jax.eval_shape(init_fn, init_rng, init_batch)
  shardings = parallel.state_shardings(mesh, abstract)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)

  manager = checkpoint.make_manager(workdir, config.keep_checkpoints)
  if manager.latest_step() is not None:
    state = checkpoint.restore(manager, abstract, train_iter)
    logging.info('resumed from %s at step %d', manager.directory, int(state.step))
  else:
    state = jax.jit(init_fn, out_shardings=shardings)(init_rng, init_batch)
    if config.init_from:
      params = checkpoint.restore_params(config.init_from)
      state = state.replace(params=jax.device_put(params, shardings.params))
      logging.info('initialised parameters from %s', config.init_from)
  if is_chief:  # Only once the workdir's checkpoint (if any) is known to match.
    checkpoint.save_config(config, workdir)

  step_fn = jax.jit(
      functools.partial(train_step, task=task, tx=tx),
      in_shardings=(shardings, parallel.batch_sharding(mesh), None),
      out_shardings=(shardings, None), donate_argnums=0)
  evaluator = _Evaluator(config, task, mesh, local_batch)
  writer = metric_writers.MetricWriter(workdir) if is_chief else metric_writers.NullWriter()
  step = int(state.step)
  progress = metric_writers.Progress(step, config.total_steps, config.batch_size)
  stop = _sigterm_event()
  pending = []
  while step < config.total_steps and not stop.is_set():
    batch = parallel.to_global(next(train_iter), mesh)
    state, metrics = step_fn(state, batch, train_rng)
    step += 1
    pending.append((step, metrics))
    last = step == config.total_steps or stop.is_set()
    must_save = last or step % config.checkpoint_every == 0
    if last or must_save or step % config.log_every == 0:
      pending = jax.device_get(pending)
      check_finite(pending)
      means = {k: np.mean([m[k] for _, m in pending]) for k in pending[-1][1]}
      writer.scalars(step, {**means, 'learning_rate': schedule(step - 1),
                            **progress.report(step)})
      pending = []
    if last or step % config.eval_every == 0:
      results = evaluator(state.params)
      logging.info('step %d: %s', step, ', '.join(f'{k}={v:.4f}' for k, v in results.items()))
      writer.scalars(step, results)
      image = evaluator.visualize(state.params)
      if image is not None:
        writer.image(step, 'samples', image)
    if must_save:
      checkpoint.save(manager, step, state, train_iter)
  manager.wait_until_finished()
  writer.close()
  if stop.is_set():
    logging.info('SIGTERM: saved step %d and stopped', step)
  return state


def _sigterm_event():
  """An event set on SIGTERM (preemption), so the loop can save and stop."""
  event = threading.Event()
  if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, lambda *_: event.set())
  return event
