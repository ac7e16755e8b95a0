"""Two processes (launch.local, one CPU device each) train as one run: the same
losses as one process fed the same global batches, evaluation and checkpoints."""

import functools
import io
import json

import jax
import numpy as np
import pytest

from avjax import config_lib
from avjax import tasks
from avjax import train
from avjax.data import pipeline
from launch import local

STEPS = 4
# A small audio encoder compiles in half the time of aot's tiny one; evaluation,
# the linear probe and a checkpoint at step 2 and at the end.
OVERRIDES = {'total_steps': STEPS, 'log_every': 1, 'eval_every': 2, 'eval_batches': 1,
             'checkpoint_every': 2, 'probe.num_examples': 8, 'model.audio.conv_features': (8,),
             'model.audio.kernels': (80,), 'model.audio.strides': (16,),
             'model.audio.gru_features': 8, 'model.audio.bidirectional': False}


def tiny_config(data_dir):
  config = config_lib.load('aot', 'tiny')
  config.update_from_flattened_dict({**OVERRIDES, 'data.data_dir': data_dir})
  return config


@pytest.fixture(scope='module')
def two_process_run(data_dir, tmp_path_factory):
  """The rows of metrics.jsonl, and the workdir, of a 2-process run."""
  workdir = tmp_path_factory.mktemp('two_processes')
  overrides = [f'--config.data.data_dir={data_dir}'] + [
      f'--config.{k}={v}' for k, v in OVERRIDES.items()]
  processes = local.render(2, local.free_port(), 'configs/aot.py:tiny', str(workdir),
                           overrides, cpu_devices_per_process=1)
  out = io.StringIO()
  codes = local.run(processes, out, timeout=300)
  assert codes == [0, 0], out.getvalue()[-5000:]
  assert '[1] ' in out.getvalue() and 'over 2 devices, 2 hosts' in out.getvalue()
  rows = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return rows, workdir


def one_process_reference(config):
  """Per-step (loss, l2_params) and the final validation loss, on one device, of the
  global batches two hosts assemble: host 0's local batch, then host 1's."""
  task = tasks.TASKS[config.task](config)
  local_batch = config.batch_size // 2
  per_host = lambda make, source: [make(source, task.preprocess, local_batch, config.seed, p, 2)
                                   for p in range(2)]
  concat = lambda batches: jax.tree.map(lambda *x: np.concatenate(x), *batches)
  train_hosts = per_host(pipeline.train_dataset, pipeline.train_source(config.data, config.seed))
  tx, _ = train.make_optimizer(config.optimizer, config.total_steps)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  batches = [concat([host[i] for host in train_hosts]) for i in range(STEPS)]
  state = jax.jit(functools.partial(train.init_state, task=task, tx=tx))(init_rng, batches[0])
  step = jax.jit(functools.partial(train.train_step, task=task, tx=tx))
  per_step = []
  for batch in batches:
    state, metrics = step(state, batch, train_rng)
    per_step.append((float(metrics['loss']), float(metrics['l2_params'])))
  eval_source = pipeline.load_source(config.data, config.data.eval_split)
  eval_batch = concat([host[0] for host in per_host(pipeline.eval_dataset, eval_source)])
  return np.array(per_step), float(jax.jit(task.evaluate)(state.params, eval_batch)['loss'])


def test_two_processes_train_as_one_on_the_same_global_batches(two_process_run, data_dir):
  rows, _ = two_process_run
  train_rows = [r for r in rows if 'loss' in r]
  assert [r['step'] for r in train_rows] == list(range(1, STEPS + 1))  # Process 0 alone writes.
  per_step, val_loss = one_process_reference(tiny_config(data_dir))
  got = np.array([(r['loss'], r['l2_params']) for r in train_rows])
  np.testing.assert_allclose(got, per_step, rtol=1e-4)
  evals = {r['step']: r for r in rows if 'val_loss' in r}
  assert sorted(evals) == [2, STEPS] and 'val_probe_emotion_acc' in evals[STEPS]
  np.testing.assert_allclose(evals[STEPS]['val_loss'], val_loss, rtol=1e-4)


def test_two_processes_checkpoint_state_and_both_data_positions(two_process_run):
  _, workdir = two_process_run
  for step in (2, STEPS):
    data = workdir / 'checkpoints' / str(step) / 'data'
    positions = [json.loads((data / f'process_{p}-of-2.json').read_text()) for p in range(2)]
    assert positions == [{'next_index': step}] * 2
    assert (workdir / 'checkpoints' / str(step) / 'state' / 'commit_success.txt').exists()
  assert json.loads((workdir / 'config.json').read_text())['model']['audio']['gru_features'] == 8
