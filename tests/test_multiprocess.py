"""Two processes (launch.local, one CPU device each) train as one run: the same
losses as one process fed the same global batches, with different augmentation
draws on each host; the dataset prepared once; evaluation, checkpoints, and a
SIGTERM to one process that both stop at."""

import functools
import io
import json
import os
import signal
import subprocess
import time

import jax
import ml_collections
import numpy as np
import pytest

from avjax import config_lib
from avjax import tasks
from avjax import train
from avjax.data import pipeline
from launch import job
from launch import local

STEPS = 4
# A small audio encoder compiles in half the time of aot's tiny one; evaluation,
# the linear probe and a checkpoint at step 2 and at the end. A constant learning
# rate: runs of any total_steps compile the same train step.
OVERRIDES = {'total_steps': STEPS, 'log_every': 1, 'eval_every': 2, 'eval_batches': 1,
             'checkpoint_every': 2, 'probe.num_examples': 8, 'model.audio.conv_features': (8,),
             'model.audio.kernels': (80,), 'model.audio.strides': (16,),
             'model.audio.gru_features': 8, 'model.audio.bidirectional': False,
             'optimizer.schedule': 'constant', 'optimizer.warmup_steps': 1}


def tiny_config(data_dir):
  config = config_lib.load('aot', 'tiny')
  config.update_from_flattened_dict({**OVERRIDES, 'data.data_dir': data_dir})
  return config


def render(workdir, data_dir, overrides):
  """(env, argv) of each of two processes training aot tiny with `overrides`."""
  flags = [f'--config.data.data_dir={data_dir}'] + [f'--config.{k}={v}'
                                                    for k, v in overrides.items()]
  return local.render(2, local.free_port(), 'configs/aot.py:tiny', str(workdir), flags,
                      cpu_devices_per_process=1)


@pytest.fixture(scope='module')
def two_process_run(tmp_path_factory):
  """The rows of metrics.jsonl, the workdir, the output and the data dir of a 2-process
  run that starts with an empty data dir."""
  workdir = tmp_path_factory.mktemp('two_processes')
  data_dir = str(tmp_path_factory.mktemp('empty_tfds'))
  out = io.StringIO()
  codes = local.run(render(workdir, data_dir, OVERRIDES), out, timeout=300)
  assert codes == [0, 0], out.getvalue()[-5000:]
  assert '[1] ' in out.getvalue() and 'over 2 devices, 2 hosts' in out.getvalue()
  rows = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return rows, workdir, out.getvalue(), data_dir


def one_process_reference(config):
  """Per-step (loss, l2_params) and the final validation loss of one process on one
  device, fed the whole global batches."""
  task = tasks.TASKS[config.task](config)
  train_ds = pipeline.train_dataset(pipeline.train_source(config.data, config.seed),
                                    task.preprocess, config.batch_size, config.seed)
  tx, _ = train.make_optimizer(config.optimizer, config.total_steps)
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  batches = [train_ds[i] for i in range(STEPS)]
  state = jax.jit(functools.partial(train.init_state, task=task, tx=tx))(init_rng, batches[0])
  step = jax.jit(functools.partial(train.train_step, task=task, tx=tx))
  per_step = []
  for batch in batches:
    state, metrics = step(state, batch, train_rng)
    per_step.append((float(metrics['loss']), float(metrics['l2_params'])))
  eval_source = pipeline.load_source(config.data, config.data.eval_split)
  eval_batch = pipeline.eval_dataset(eval_source, task.preprocess, config.batch_size,
                                     config.seed)[0]
  return np.array(per_step), float(jax.jit(task.evaluate)(state.params, eval_batch)['loss'])


def test_two_processes_train_as_one_on_the_same_global_batches(two_process_run):
  rows, _, _, data_dir = two_process_run
  train_rows = [r for r in rows if 'loss' in r]
  assert [r['step'] for r in train_rows] == list(range(1, STEPS + 1))  # Process 0 alone writes.
  per_step, val_loss = one_process_reference(tiny_config(data_dir))
  got = np.array([(r['loss'], r['l2_params']) for r in train_rows])
  np.testing.assert_allclose(got, per_step, rtol=1e-4)
  evals = {r['step']: r for r in rows if 'val_loss' in r}
  assert sorted(evals) == [2, STEPS] and 'val_probe_emotion_acc' in evals[STEPS]
  np.testing.assert_allclose(evals[STEPS]['val_loss'], val_loss, rtol=1e-4)


def test_two_processes_prepare_a_missing_dataset_once(two_process_run):
  lines = two_process_run[2].splitlines()
  preparing = [line for line in lines if 'preparing dataset avsynth/heads_tiny' in line]
  assert len(preparing) == 1 and preparing[0].startswith('[0] '), preparing
  assert sum('downloaded and prepared to' in line for line in lines) == 1  # TFDS's own.


def test_where_data_dirs_are_not_shared_the_first_process_of_each_host_prepares():
  hosts = ['a', 'b', 'a', 'c', 'b']  # Each process's host.
  assert [pipeline.first_of_its_kind(hosts, i) for i in range(5)] == [
      True, True, False, True, False]


def draw(example, rng):
  """A stand-in preprocess: the example's first samples and two random draws."""
  return {'audio': example['audio'][:4], 'draw': rng.integers(2**31, size=2)}


@pytest.mark.parametrize('make', [pipeline.train_dataset, pipeline.eval_dataset])
def test_hosts_draw_differently_and_compose_the_one_host_batches(make, data_dir):
  data = ml_collections.ConfigDict(dict(name='avsynth', config='heads_tiny', data_dir=data_dir))
  source = pipeline.load_source(data, 'train')  # 40 examples: 5 global batches of 8.
  one = make(source, draw, 8, 0)
  hosts = [make(source, draw, 4, 0, index, 2) for index in range(2)]
  assert len(hosts[0]) == len(hosts[1]) == len(one)
  for i in range(min(7, len(one))):  # Into the second epoch for the train set.
    stacked = jax.tree.map(lambda *x: np.concatenate(x), hosts[0][i], hosts[1][i])
    jax.tree.map(np.testing.assert_array_equal, stacked, one[i])
    assert not np.any(hosts[0][i]['draw'] == hosts[1][i]['draw'])


def test_two_processes_checkpoint_state_and_both_data_positions(two_process_run):
  _, workdir, _, _ = two_process_run
  for step in (2, STEPS):
    data = workdir / 'checkpoints' / str(step) / 'data'
    positions = [json.loads((data / f'process_{p}-of-2.json').read_text()) for p in range(2)]
    assert positions == [{'next_index': step}] * 2
    assert (workdir / 'checkpoints' / str(step) / 'state' / 'commit_success.txt').exists()
  assert json.loads((workdir / 'config.json').read_text())['model']['audio']['gru_features'] == 8


def start(processes, logs):
  """Popen of each of `processes` ([(env, argv)]), its output to the open file logs[i]."""
  return [subprocess.Popen(argv, env={**os.environ, **env}, cwd=job.ROOT, text=True,
                           stdout=log, stderr=subprocess.STDOUT)
          for (env, argv), log in zip(processes, logs)]


def stopped_steps(workdir):
  return sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())


def test_sigterm_to_one_process_saves_one_step_for_both_that_a_rerun_resumes(data_dir,
                                                                             tmp_path):
  workdir, logs = tmp_path / 'run', [tmp_path / f'log{i}' for i in range(2)]
  files = [log.open('w') for log in logs]
  overrides = {**OVERRIDES, 'total_steps': 10_000, 'checkpoint_every': 10_000,
               'eval_every': 10_000}
  procs = start(render(workdir, data_dir, overrides), files)
  try:
    rows = workdir / 'metrics.jsonl'
    deadline = time.monotonic() + 300
    while not (rows.exists() and len(rows.read_text().splitlines()) >= 2):
      assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
          logs[0].read_text()[-3000:]
      time.sleep(0.1)
    procs[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=120) for p in procs]
  finally:
    for p, f in zip(procs, files):
      p.kill()
      f.close()
  assert codes == [0, 0], logs[1].read_text()[-3000:]
  [step] = stopped_steps(workdir)
  assert 2 < step < 10_000
  data = workdir / 'checkpoints' / str(step) / 'data'
  positions = [json.loads((data / f'process_{p}-of-2.json').read_text()) for p in range(2)]
  assert positions == [{'next_index': step}] * 2
  for log in logs:
    assert f'saved step {step} and stopped' in log.read_text()

  out = io.StringIO()
  codes = local.run(render(workdir, data_dir, {**overrides, 'total_steps': step + 2}), out,
                    timeout=300)
  assert codes == [0, 0], out.getvalue()[-5000:]
  assert f'at step {step}' in out.getvalue() and 'resumed from' in out.getvalue()
  steps = [r['step'] for r in map(json.loads, rows.read_text().splitlines()) if 'loss' in r]
  assert steps == list(range(1, step + 3))
  assert stopped_steps(workdir) == [step, step + 2]
