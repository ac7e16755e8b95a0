"""The generic trainer: one sharded, jitted train step for any task.

  train_and_evaluate(config, workdir)

builds (`build(config)`, which `avjax.bench` shares) the task named by
`config.task`, a ('data', 'fsdp') mesh, parameters born sharded and a jitted
`train_step`, and runs it with donated state. It evaluates every
`eval_every` steps, writes metrics (JSON lines, TensorBoard) and a progress
line, and checkpoints state and data position together every
`checkpoint_every` steps; a restart in the same workdir resumes from there,
and SIGTERM saves before exiting (every process the same step). Batches go to the
devices two steps ahead, from a background thread (`parallel.DevicePrefetch`).
"""

import contextlib
import dataclasses
import functools
import signal
import threading
from typing import Any, Callable

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


def set_parameters(params, values):
  """`params` with the leaves that `values` (a nested dict of params' own names) holds
  replaced by those; KeyError naming any that `params` lacks."""
  flat = flax.traverse_util.flatten_dict(params)
  new = flax.traverse_util.flatten_dict(values)
  unknown = ['/'.join(k) for k in new if k not in flat]
  if unknown:
    raise KeyError(f'statistics name no parameters: {unknown[:3]}')
  return flax.traverse_util.unflatten_dict({**flat, **new})


def train_step(state, batch, rng, *, task, tx):
  """One optimizer step; the step's randomness is `fold_in(rng, step)`."""
  step_rng = jax.random.fold_in(rng, state.step)
  grad_fn = jax.value_and_grad(task.loss, has_aux=True)
  (loss, metrics), grads = grad_fn(state.params, batch, step_rng)
  metrics = dict(metrics)
  statistics = metrics.pop('statistics', None)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  if statistics is not None:  # Running averages (BatchNorm-like): set, not trained.
    params = set_parameters(params, statistics)
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
  """Raises PermissionError unless `workdir` (local or a bucket) can be written; each
  process writes its own probe file, as processes share the workdir."""
  path = checkpoint.as_path(workdir)
  probe = path / f'.write_test_{jax.process_index()}'
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe.write_text('')
    probe.unlink()
  except OSError as e:
    raise PermissionError(f'workdir {workdir} cannot be written: {e.strerror or e}') from e


def _make_task(config):
  if config.task not in tasks.TASKS:
    raise ValueError(f'unknown task {config.task!r}; known: {sorted(tasks.TASKS)}')
  return tasks.TASKS[config.task](config)


def eval_batch_size(batch_size, host_examples, local_devices):
  """The per-host evaluation batch: the training one, or when this host's share of the
  split is smaller (a large accelerator batch), the most of it the devices divide."""
  return min(batch_size, host_examples // local_devices * local_devices)


class _Evaluator:
  """Averages `task.evaluate` over the first `num_batches` validation batches,
  plus the linear probe of `config.probe` (see `avjax.evaluate.linear_probe`)."""

  def __init__(self, config, task, mesh, batch_size):
    source = tasks.data_source(
        task, functools.partial(pipeline.load_source, config.data, config.data.eval_split),
        config.data, config.seed)
    host_examples = len(source) // jax.process_count()
    batch_size = eval_batch_size(batch_size, host_examples, mesh.size // jax.process_count())
    if batch_size == 0:
      raise ValueError(f'the {config.data.eval_split} split has {len(source)} examples, fewer '
                       f'than one a device; set --config.data.eval_split')
    ds = pipeline.eval_dataset(source, task.preprocess, batch_size, config.seed,
                               jax.process_index(), jax.process_count())
    num_batches = min(config.eval_batches, len(ds))
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


@dataclasses.dataclass(frozen=True)
class Setup:
  """What `build` makes of a config: all that a training loop or a benchmark runs."""
  task: Any
  mesh: jax.sharding.Mesh
  batch_size: int  # Global.
  local_batch: int  # This host's share.
  train_iter: Any  # This host's batches: a checkpointable iterator.
  schedule: Any  # The learning rate by step.
  first_batch: Any  # The train set's first batch as global arrays: the init's input.
  shardings: Any  # Of the TrainState.
  abstract_state: Any  # TrainState of ShapeDtypeStructs that carry `shardings`.
  init: Callable[[], TrainState]  # The sharded init: a fresh state, born sharded.
  step_fn: Any  # Jitted `train_step(state, batch, rng)`, state donated.
  train_rng: jax.Array


def build(config):
  """The task, mesh, batch sizes, train iterator, optimizer, shardings, sharded
  init and jitted step of `config`; neither the init nor the step is run here."""
  task = _make_task(config)
  mesh = parallel.make_mesh(config.mesh)
  batch_size = parallel.global_batch_size(config, mesh)
  parallel.check_batch_size(batch_size, mesh)
  local_batch = parallel.per_host_batch_size(batch_size)
  logging.info('mesh %s over %d devices, %d hosts', dict(mesh.shape), mesh.size,
               jax.process_count())

  source = tasks.data_source(task, functools.partial(pipeline.train_source, config.data,
                                                     config.seed), config.data, config.seed)
  train_ds = pipeline.train_dataset(source, task.preprocess, local_batch, config.seed,
                                    jax.process_index(), jax.process_count(),
                                    config.data.crops_per_clip)
  train_iter = pipeline.make_iterator(train_ds, config.data.num_workers,
                                      config.data.prefetch_buffer)
  tx, schedule = make_optimizer(config.optimizer, config.total_steps)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))

  # Parameters are born sharded: shapes first, then shardings, then a jitted init.
  init_fn = functools.partial(init_state, task=task, tx=tx)
  first_batch = parallel.to_global(train_ds[0], mesh)
  abstract = jax.eval_shape(init_fn, init_rng, first_batch)
  shardings = parallel.state_shardings(mesh, abstract)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
  step_fn = jax.jit(
      functools.partial(train_step, task=task, tx=tx),
      in_shardings=(shardings, parallel.batch_sharding(mesh), None),
      out_shardings=(shardings, None), donate_argnums=0)
  return Setup(
      task=task, mesh=mesh, batch_size=batch_size, local_batch=local_batch,
      train_iter=train_iter, schedule=schedule, first_batch=first_batch,
      shardings=shardings, abstract_state=abstract,
      init=functools.partial(jax.jit(init_fn, out_shardings=shardings), init_rng, first_batch),
      step_fn=step_fn, train_rng=train_rng)


def train_and_evaluate(config, workdir):
  """Trains `config.task` in `workdir`, resuming from its latest checkpoint."""
  _check_workdir(workdir)
  is_chief = jax.process_index() == 0
  setup = build(config)

  manager = checkpoint.make_manager(workdir, config.keep_checkpoints)
  if manager.latest_step() is not None:  # Resumes from the newest readable checkpoint.
    state = checkpoint.restore(manager, setup.abstract_state, setup.train_iter)
    logging.info('resumed from %s at step %d', manager.directory, int(state.step))
  else:
    state = setup.init()
    if config.init_from:
      params = checkpoint.restore_params(config.init_from)
      state = state.replace(params=jax.device_put(params, setup.shardings.params))
      logging.info('initialised parameters from %s', config.init_from)
  if is_chief:  # Only once the workdir's checkpoint (if any) is known to match.
    checkpoint.save_config(config, workdir)

  evaluator = _Evaluator(config, setup.task, setup.mesh, setup.local_batch)
  writer = metric_writers.MetricWriter(workdir) if is_chief else metric_writers.NullWriter()
  step = int(state.step)
  progress = metric_writers.Progress(step, config.total_steps, setup.batch_size)
  write = functools.partial(_write_metrics, writer, setup.schedule, progress)
  pending, row_due = [], False  # (step, metrics) not yet written; the last step's row waits.
  stop = False
  with parallel.DevicePrefetch(setup.train_iter, setup.mesh) as batches, \
      _preemption(manager) as reached_preemption:
    while step < config.total_steps and not stop:
      state, metrics = setup.step_fn(state, next(batches), setup.train_rng)
      step += 1
      pending.append((step, metrics))
      # Read once a step: a later SIGTERM saves and stops at a later step, never unsaved.
      stop = reached_preemption(step)
      evaluate = step == config.total_steps or step % config.eval_every == 0
      must_save = step == config.total_steps or stop or step % config.checkpoint_every == 0
      if row_due:  # The previous step's row, fetched now that it is done: never the newest.
        write(pending[:-1])
        pending = pending[-1:]
      log = must_save or step % config.log_every == 0
      row_due = log and not evaluate and not must_save
      if log and not row_due:  # A save or an evaluation waits for this step anyway.
        write(pending)
        pending = []
      if evaluate:
        results = evaluator(state.params)
        logging.info('step %d: %s', step, ', '.join(f'{k}={v:.4f}' for k, v in results.items()))
        writer.scalars(step, results)
        image = evaluator.visualize(state.params)
        if image is not None:
          writer.image(step, 'samples', image)
      if must_save:
        checkpoint.save(manager, step, state, batches)
  checkpoint.wait(manager)  # A failed save raises OSError; the ones before it stay.
  writer.close()
  if stop:
    logging.info('preempted (SIGTERM): saved step %d and stopped', step)
  return state


def _write_metrics(writer, schedule, progress, pending):
  """Writes the means of `pending` [(step, metrics)], once finite, as its last step's row."""
  pending = jax.device_get(pending)
  check_finite(pending)
  step = pending[-1][0]
  means = {k: np.mean([m[k] for _, m in pending]) for k in pending[-1][1]}
  writer.scalars(step, {**means, 'learning_rate': schedule(step - 1), **progress.report(step)})


@contextlib.contextmanager
def _preemption(manager):
  """Yields `reached(step)`, called once a step: whether to save `step` and stop. Several
  processes agree on that step through JAX's preemption service, which takes SIGTERM
  (orbax's `reached_preemption`, as MaxText does); one process sets a flag on SIGTERM,
  its handler restored after."""
  if jax.process_count() > 1:
    yield manager.reached_preemption
    return
  event = threading.Event()
  main = threading.current_thread() is threading.main_thread()  # Where handlers go.
  previous = signal.signal(signal.SIGTERM, lambda *_: event.set()) if main else None
  try:
    yield lambda step: event.is_set()
  finally:
    if main:
      signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
