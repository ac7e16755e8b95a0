"""JAX's persistent compilation cache, on by default under the workdir: a restarted run
reads its compiled train step back instead of compiling it again."""

import os
import pathlib
import shutil
import subprocess
import sys

from avjax import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
# conftest.py's session cache: left out, so that the run's own default applies.
CACHE_ENV = ('JAX_COMPILATION_CACHE_DIR', 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS',
             'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES')


def test_the_cache_folder_of_each_setting():
  env = {'JAX_COMPILATION_CACHE_DIR': '/env/cache'}
  assert main.compilation_cache_dir('', '/runs/a', {}) == '/runs/a/jax_cache'
  assert main.compilation_cache_dir('', 'gs://bucket/a', {}) == 'gs://bucket/a/jax_cache'
  assert main.compilation_cache_dir('', '/runs/a', env) == '/env/cache'
  assert main.compilation_cache_dir('/mine', '/runs/a', env) == '/mine'
  assert main.compilation_cache_dir('none', '/runs/a', env) is None


def run_main(workdir, data_dir, **env):
  """An 8-step aot tiny run (the quickest config to compile), checkpointing at 4 and 8."""
  environ = {k: v for k, v in os.environ.items() if k not in CACHE_ENV}
  # XLA's cheapest compilation, as in test_train.py; both runs compile alike.
  environ['XLA_FLAGS'] = (environ.get('XLA_FLAGS', '') + ' --xla_backend_optimization_level=0'
                          ' --xla_llvm_disable_expensive_passes=true')
  proc = subprocess.run(
      [sys.executable, '-m', 'avjax.main', '--config=configs/aot.py:tiny',
       f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
       '--config.total_steps=8', '--config.checkpoint_every=4'],
      cwd=ROOT, env={**environ, **env}, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stderr[-5000:]
  return proc.stderr


def test_a_restarted_run_reads_its_train_step_from_the_workdir_cache(data_dir, tmp_path):
  run_main(tmp_path, data_dir)
  cache = tmp_path / 'jax_cache'
  written = sorted(p.name for p in cache.iterdir())
  assert any(name.startswith('jit_train_step-') for name in written), written
  # A restart from step 4 (as after a preemption) compiles the same train step.
  shutil.rmtree(tmp_path / 'checkpoints' / '8')
  log = run_main(tmp_path, data_dir, JAX_LOG_COMPILES='1')  # Logs each cache hit.
  assert 'resumed from' in log
  assert "Persistent compilation cache hit for 'jit_train_step'" in log
  assert sorted(p.name for p in cache.iterdir()) == written  # Nothing compiled anew.
