"""The trainer end to end on the recon tiny preset: resume, sharding, errors, export."""

import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from avjax import checkpoint
from avjax import export
from avjax import tasks
from avjax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / 'configs').glob('[!_]*.py'))  # Not __init__.py.


def load_config(name, arg='tiny'):
  spec = importlib.util.spec_from_file_location(name, ROOT / 'configs' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def tiny_config(data_dir, **overrides):
  config = load_config('recon')
  config.data.data_dir = data_dir
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def run_main(workdir, data_dir, *flags, env=None, wait=True, prefix=()):
  cmd = [*prefix, sys.executable, '-m', 'avjax.main', '--config=configs/recon.py:tiny',
         f'--workdir={workdir}', f'--config.data.data_dir={data_dir}', *flags]
  env = {**os.environ, **(env or {})}
  # The tiny runs' time goes to compiling; XLA's cheapest compilation halves it, and every
  # run compared with another is compiled alike.
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' --xla_backend_optimization_level=0'
                      ' --xla_llvm_disable_expensive_passes=true')
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  if not wait:
    return proc
  out, err = proc.communicate(timeout=600)
  return proc.returncode, out + err


def losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return np.array([r['loss'] for r in rows if 'loss' in r])


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_every_config_and_its_tiny_and_accel_presets_load(path):
  for arg in (None, 'tiny', 'accel'):
    config = load_config(path.stem, arg)
    assert config.task in tasks.TASKS
  with pytest.raises(ValueError, match='unknown config argument'):
    load_config(path.stem, 'tinny')


@pytest.fixture(scope='module')
def reference_run(data_dir, tmp_path_factory):
  """An uninterrupted 8-step tiny run, checkpointing at steps 4 and 8."""
  workdir = tmp_path_factory.mktemp('reference')
  code, log = run_main(workdir, data_dir, '--config.total_steps=8',
                       '--config.checkpoint_every=4', '--config.log_every=1')
  assert code == 0, log
  return workdir


def test_run_writes_metrics_samples_and_checkpoints(reference_run):
  rows = [json.loads(l) for l in open(reference_run / 'metrics.jsonl')]
  train_rows = [r for r in rows if 'loss' in r]
  assert [r['step'] for r in train_rows] == list(range(1, 9))
  for key in ('l2_grads', 'l2_params', 'l2_updates', 'steps_per_sec', 'examples_per_sec'):
    assert np.isfinite(train_rows[-1][key]), key
  assert any('val_l1' in r for r in rows)
  assert list(reference_run.glob('samples_*.png'))
  assert list((reference_run / 'tensorboard').iterdir())
  assert sorted(int(p.name) for p in (reference_run / 'checkpoints').iterdir()
                if p.name.isdigit()) == [4, 8]


def assert_params_of(workdir, reference_run):
  """The newest checkpoints of `workdir` and `reference_run` hold the same parameters."""
  expected = checkpoint.restore_params(reference_run)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               expected, checkpoint.restore_params(workdir))


def test_killed_run_resumes_to_the_same_parameters(reference_run, data_dir, tmp_path):
  proc = run_main(tmp_path, data_dir, '--config.total_steps=8', '--config.checkpoint_every=4',
                  wait=False)
  first = tmp_path / 'checkpoints' / '4'
  deadline = time.time() + 300
  while not first.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert first.exists(), proc.stderr.read()
  # Had the kill come later than step 4, drop what was written after it.
  for later in (tmp_path / 'checkpoints').glob('8*'):
    subprocess.run(['rm', '-rf', str(later)], check=True)
  code, log = run_main(tmp_path, data_dir, '--config.total_steps=8',
                       '--config.checkpoint_every=4')
  assert code == 0, log
  assert 'resumed from' in log
  assert_params_of(tmp_path, reference_run)


def test_a_damaged_latest_checkpoint_resumes_from_the_one_before(reference_run, data_dir,
                                                                  tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(reference_run, workdir)
  files = [p for p in (workdir / 'checkpoints' / '8' / 'state').rglob('*') if p.is_file()]
  os.truncate(max(files, key=lambda p: p.stat().st_size), 1000)
  code, log = run_main(workdir, data_dir, '--config.total_steps=8',
                       '--config.checkpoint_every=4')
  assert code == 0, log
  [line] = [l for l in log.splitlines() if 'unreadable' in l]
  assert 'checkpoint step 8 is unreadable (' in line, line
  assert f'moved to {workdir}/checkpoints/8.unreadable, resuming from step 4' in line
  assert 'at step 4' in log and 'Traceback' not in log
  assert_params_of(workdir, reference_run)  # Steps 5 to 8 again, as the first time.


# Runs a command whose files stop growing at 200 kB (EFBIG; Python ignores SIGXFSZ): a
# checkpoint's arrays cannot be written, a full disk as far as the run can tell.
SMALL_FILES = ('bash', '-c', 'ulimit -f 200 && exec "$@"', 'bash')


def test_a_failed_save_is_one_line_and_keeps_the_checkpoints_before(reference_run, data_dir,
                                                                     tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(reference_run, workdir)
  shutil.rmtree(workdir / 'checkpoints' / '8')  # Resumes from step 4 and saves step 8 again.
  before = checkpoint.restore_params(workdir)
  code, log = run_main(workdir, data_dir, '--config.total_steps=8',
                       '--config.checkpoint_every=4', prefix=SMALL_FILES)
  assert code == 1, log
  [line] = [l for l in log.splitlines() if l.startswith('avjax: error:')]
  assert line.startswith(f'avjax: error: saving checkpoint step 8 in {workdir}/checkpoints '
                         'failed ('), line
  assert 'File too large' in line
  assert 'Traceback' not in log and 'Event loop is closed' not in log
  steps = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps == [4]
  jax.tree.map(np.testing.assert_array_equal, before, checkpoint.restore_params(workdir))


@pytest.mark.parametrize('mesh', ['data=8', 'data=2,fsdp=4'])
def test_eight_devices_match_one(mesh, reference_run, data_dir, tmp_path):
  flags = [f'--config.mesh.{kv}' for kv in mesh.split(',')]
  code, log = run_main(tmp_path, data_dir, '--config.total_steps=8', '--config.log_every=1',
                       '--config.checkpoint_every=8', *flags,
                       env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  assert code == 0, log
  assert 'over 8 devices' in log
  np.testing.assert_allclose(losses(tmp_path), losses(reference_run), rtol=2e-4)


def test_fsdp_shards_parameters():
  from avjax import parallel
  assert parallel.fsdp_spec((64, 128), 8) == jax.sharding.PartitionSpec(None, 'fsdp')
  assert parallel.fsdp_spec((3, 5), 8) == jax.sharding.PartitionSpec()
  assert parallel.fsdp_spec((3, 4096), 8) == jax.sharding.PartitionSpec(None, 'fsdp')


def test_nonfinite_loss_stops_naming_the_step(data_dir, tmp_path):
  config = tiny_config(data_dir, **{'optimizer.learning_rate': float('inf'),
                                    'optimizer.grad_clip': 0.0, 'optimizer.warmup_steps': 0})
  with pytest.raises(FloatingPointError, match=r'non-finite .* at step \d'):
    train.train_and_evaluate(config, str(tmp_path))


def test_export_then_load_encoder_gives_identical_features(reference_run, tmp_path):
  proc = subprocess.run([sys.executable, '-m', 'avjax.export', f'--workdir={reference_run}',
                         f'--out={tmp_path}'], cwd=ROOT, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  assert f'exported audio_encoder to {tmp_path}/audio_encoder' in proc.stdout
  apply, params = export.load_encoder(str(tmp_path), 'audio_encoder')
  config = checkpoint.load_config(str(reference_run))
  module, input_key = tasks.TASKS[config.task](config).encoders()['audio_encoder']
  assert input_key == 'audio'
  trained = checkpoint.restore_params(str(reference_run))['audio_encoder']
  waveforms = np.random.default_rng(0).normal(size=(2, 5 * 640)).astype(np.float32) * 0.1
  inputs = np.stack([module.windows(w) for w in waveforms])
  expected, _ = module.apply({'params': trained}, inputs)
  features, _ = apply(params, inputs)
  np.testing.assert_array_equal(np.asarray(features), np.asarray(expected))
  padded = np.concatenate([inputs, np.zeros_like(inputs)], 1)  # Each clip, then 5 silent frames.
  features, _ = apply(params, padded, lengths=np.array([5, 5]))
  np.testing.assert_allclose(np.asarray(features)[:, :5], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('overrides, message', [
    ({'task': 'nosuch'}, "unknown task 'nosuch'"),
    ({'data.name': 'nosuch'}, "unknown dataset 'nosuch'"),
])
def test_bad_names_are_clear_errors(overrides, message, data_dir, tmp_path):
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(tiny_config(data_dir, **overrides), str(tmp_path))


def test_the_eval_batch_shrinks_to_a_small_validation_split(data_dir):
  from avjax import parallel
  assert train.eval_batch_size(8, 20, 1) == 8
  assert train.eval_batch_size(512, 144, 8) == 144 and train.eval_batch_size(512, 100, 8) == 96
  assert train.eval_batch_size(8, 3, 4) == 0
  config = tiny_config(data_dir, **{'data.eval_split': 'validation[:3]'})
  task = tasks.TASKS[config.task](config)
  evaluator = train._Evaluator(config, task, parallel.make_mesh(config.mesh), 8)
  assert [len(b['audio']) for b in evaluator._local] == [3]


def test_unwritable_workdir_is_a_clear_error(data_dir, tmp_path):
  (tmp_path / 'file').write_text('')
  with pytest.raises(PermissionError, match='cannot be written'):
    train.train_and_evaluate(tiny_config(data_dir), str(tmp_path / 'file' / 'run'))


def test_workdir_of_a_different_model_is_a_clear_error(reference_run, data_dir, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(reference_run, workdir)
  config = tiny_config(data_dir, **{'model.audio.gru_features': 16, 'total_steps': 12})
  with pytest.raises(ValueError, match='of a different model'):
    train.train_and_evaluate(config, str(workdir))
  # The workdir still describes the model its checkpoints hold.
  assert checkpoint.load_config(str(workdir)).model.audio.gru_features == 32


@pytest.mark.parametrize('flag, message', [
    ('--config.task=nosuch', "avjax: error: unknown task 'nosuch'"),
    ('--config.nosuch=1', "avjax: error: unknown config key in the --config.* overrides: 'nosuch'"),
    ('--config=configs/disentangle.py:tiny,data=lrw',
     "ValueError: task disentangle needs the features ['track']"),
])
def test_cli_errors_are_one_line(flag, message, data_dir, tmp_path):
  code, log = run_main(tmp_path, data_dir, flag)
  assert code != 0 and message in log
  assert 'Traceback' not in log
