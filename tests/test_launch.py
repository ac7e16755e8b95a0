"""The launchers' commands and scripts, rendered without running anything."""

import io
import json
import os
import shlex
import signal
import subprocess
import sys

import imageio.v3 as iio
import ml_collections
import numpy as np
import pytest
import tensorboardX
from etils import epath
from etils.epath import backend as epath_backend
from fsspec.implementations.memory import MemoryFileSystem

from avjax import checkpoint
from avjax import metric_writers
from avjax import parallel
from launch import job
from launch import local
from launch import slurm
from launch import tpu

CONFIG = 'configs/recon.py:paper'
WORKDIR = 'gs://bucket/recon'
OVERRIDES = ('--config.batch_size=1024', '--config.data.data_dir=/data/my tfds')
MAIN = ['-m', 'avjax.main', f'--config={CONFIG}', f'--workdir={WORKDIR}', *OVERRIDES]


def check_bash_syntax(script):
  subprocess.run(['bash', '-n'], input=script, text=True, check=True)


def run_with_fake_tools(script, tmp_path, state):
  """Runs a launcher's script with `gcloud` and `git` stand-ins that log their arguments
  (a `describe` prints `state`, or fails if it is ''); returns the logged argvs."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for tool in ('gcloud', 'git'):
    (bin_dir / tool).write_text(
        '#!/bin/bash\nprintf "%s\\0" "$(basename "$0")" "$@" >> "$LOG"; printf "\\n" >> "$LOG"\n'
        '[ "$4" != describe ] || { [ -n "$STATE" ] && echo "$STATE"; }\n')
    (bin_dir / tool).chmod(0o755)
  log = tmp_path / 'log'
  env = {'PATH': f'{bin_dir}:/usr/bin:/bin', 'LOG': str(log), 'STATE': state}
  subprocess.run(['bash', '-c', script], env=env, check=True)
  return [line.split('\0')[:-1] for line in log.read_text().splitlines()]


@pytest.mark.parametrize('state, before_copy', [
    ('', ['describe', 'create']), ('READY', ['describe']),
    ('PREEMPTED', ['describe', 'delete', 'create'])])
def test_tpu_script_makes_the_vm_copies_the_code_and_runs_main_on_every_worker(
    state, before_copy, tmp_path):
  script = tpu.render('pod', 'us-central2-b', 'v4-32', 'tpu-ubuntu2204-base', CONFIG, WORKDIR,
                      OVERRIDES, project='proj', spot=True, archive='/tmp/a.tar.gz')
  calls = run_with_fake_tools(script, tmp_path, state)
  gcloud = ['gcloud', 'compute', 'tpus', 'tpu-vm']
  where = ['--zone=us-central2-b', '--project=proj']
  assert [c[4] if c[:4] == gcloud else c[0] for c in calls] == [
      *before_copy, 'git', 'scp', 'ssh', 'ssh']
  if 'create' in before_copy:
    assert [*gcloud, 'create', 'pod', *where, '--accelerator-type=v4-32',
            '--version=tpu-ubuntu2204-base', '--spot'] in calls
  git, scp, install, train = calls[-4:]
  assert git == ['git', '-C', str(tpu.job.ROOT), 'archive', '--format=tar.gz',
                 '--output=/tmp/a.tar.gz', 'HEAD']
  assert scp == [*gcloud, 'scp', '/tmp/a.tar.gz', 'pod:avjax.tar.gz', *where, '--worker=all']
  for ssh in (install, train):
    assert ssh[:-1] == [*gcloud, 'ssh', 'pod', *where, '--worker=all']
  install, command = (ssh[-1].removeprefix('--command=') for ssh in (install, train))
  assert install.startswith('rm -rf avjax && mkdir avjax && tar -xzf avjax.tar.gz -C avjax')
  assert 'pip install' in install
  assert shlex.split(command) == ['cd', 'avjax', '&&', 'AVJAX_DISTRIBUTED=1',
                                  f'LIBTPU_INIT_ARGS={" ".join(tpu.tpu_flags("v4-32"))}',
                                  'python3', *MAIN]


@pytest.mark.parametrize('accelerator, expected, left_out', [
    ('v3-8', ['--xla_tpu_enable_latency_hiding_scheduler=true'],
     ['--xla_enable_async_all_gather=true']),
    ('v4-32', ['--xla_tpu_enable_latency_hiding_scheduler=true',
               '--xla_enable_async_all_gather=true'],
     ['--xla_tpu_enable_async_collective_fusion=true']),
    ('v5p-128', ['--xla_tpu_enable_latency_hiding_scheduler=true',
                 '--xla_tpu_enable_data_parallel_all_reduce_opt=true',
                 '--xla_tpu_enable_async_collective_fusion=true',
                 '--xla_tpu_overlap_compute_collective_tc=true'], []),
    ('v5litepod-16', ['--xla_tpu_enable_async_collective_fusion=true'], [])])
def test_tpu_flags_of_each_generation(accelerator, expected, left_out):
  flags = tpu.tpu_flags(accelerator)
  assert set(expected) <= set(flags) and not set(left_out) & set(flags)
  assert not any(f.startswith('--xla_gpu') for f in flags)


def test_tpu_run_takes_the_users_libtpu_flags_last_and_over_its_own(tmp_path):
  user = '--xla_tpu_enable_latency_hiding_scheduler=false TPU_MEGACORE=MEGACORE_DENSE'
  script = tpu.render('vm', 'z', 'v5p-8', 'rt', CONFIG, WORKDIR, libtpu_init_args=user)
  train = run_with_fake_tools(script, tmp_path, 'READY')[-1][-1]
  args = next(a for a in shlex.split(train) if a.startswith('LIBTPU_INIT_ARGS='))
  flags = args.removeprefix('LIBTPU_INIT_ARGS=').split()
  assert flags[-2:] == user.split()
  assert '--xla_tpu_enable_latency_hiding_scheduler=true' not in flags
  assert '--xla_tpu_overlap_compute_collective_tc=true' in flags
  assert 'XLA_FLAGS' not in train


def test_tpu_script_can_clone_a_repository_instead(tmp_path):
  script = tpu.render('vm', 'z', 'v4-8', 'rt', CONFIG, '/tmp/run', repo_url='https://x/a.git',
                      ref='v1')
  calls = run_with_fake_tools(script, tmp_path, 'READY')
  assert [c[4] for c in calls] == ['describe', 'ssh', 'ssh']  # No local git, no scp.
  assert calls[1][-1].startswith('--command=rm -rf avjax && git clone -q https://x/a.git avjax '
                                 '&& git -C avjax checkout -q v1 && cd avjax')


@pytest.mark.parametrize('accelerator, workers', [
    ('v4-8', 1), ('v4-32', 4), ('v5p-128', 16), ('v5litepod-8', 1), ('v5litepod-16', 4),
    ('v6e-256', 64), ('v3-32', 4), ('v99-8', None)])
def test_tpu_workers_and_the_bucket_workdir_they_need(accelerator, workers):
  assert tpu.num_workers(accelerator) == workers
  if workers == 1:
    tpu.check_workdir('/tmp/run', accelerator)
  else:
    with pytest.raises(ValueError, match='local path.*gs://BUCKET'):
      tpu.check_workdir('/tmp/run', accelerator)
  tpu.check_workdir(WORKDIR, accelerator)


def test_tpu_refuses_spot_and_preemptible_together():
  with pytest.raises(ValueError, match='choose one'):
    tpu.render('vm', 'z', 'v4-8', 'rt', CONFIG, WORKDIR, spot=True, preemptible=True)


def sbatch_options(script):
  lines = [l.removeprefix('#SBATCH --') for l in script.splitlines() if l.startswith('#SBATCH')]
  return dict(l.partition('=')[::2] for l in lines)


def test_slurm_script_one_process_per_gpu():
  script = slurm.render(2, 8, CONFIG, WORKDIR, OVERRIDES, partition='gpu', time='1:00:00',
                        setup='source venv/bin/activate', chdir='/repo')
  check_bash_syntax(script)
  assert sbatch_options(script) == {
      'job-name': 'avjax', 'nodes': '2', 'ntasks-per-node': '8', 'gres': 'gpu:8',
      'chdir': '/repo', 'output': '%x-%j.out', 'partition': 'gpu', 'time': '1:00:00',
      'exclusive': ''}
  lines = script.splitlines()
  assert 'export AVJAX_DISTRIBUTED=1' in lines and 'JAX_LOCAL_DEVICE_IDS' not in script
  assert lines.index('source venv/bin/activate') < lines.index('export AVJAX_DISTRIBUTED=1')
  assert shlex.split(lines[-1]) == [
      'srun', '--cpus-per-task=$((SLURM_CPUS_ON_NODE/SLURM_NTASKS_PER_NODE))', 'python', *MAIN]


def xla_flags_in_slurm_job(script, user_flags):
  """XLA_FLAGS as the job's srun sees them, given the submitting shell's."""
  lines = script.splitlines()
  exports = '\n'.join(l for l in lines if l.startswith('export '))
  env = {'PATH': '/usr/bin:/bin', **({'XLA_FLAGS': user_flags} if user_flags else {})}
  return subprocess.run(['bash', '-c', f'{exports}\necho "$XLA_FLAGS"'], env=env,
                        capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize('user', ['', '--xla_gpu_enable_latency_hiding_scheduler=false '
                                      '--xla_dump_to=/tmp/dump'])
def test_slurm_job_sets_the_gpu_xla_flags_before_the_users_own(user):
  script = slurm.render(2, 8, CONFIG, WORKDIR)
  flags = xla_flags_in_slurm_job(script, user)
  assert flags == [*job.GPU_XLA_FLAGS, *user.split()]  # XLA keeps the last value.
  assert '--xla_gpu_enable_latency_hiding_scheduler=true' in flags
  assert 'LIBTPU_INIT_ARGS' not in script and '--xla_tpu' not in script


def test_gpu_xla_flags_are_flags_this_jaxlib_knows():
  """XLA aborts on an unknown XLA_FLAGS entry: a misspelling would kill every GPU run."""
  def runs_with(flags):
    env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'XLA_FLAGS': ' '.join(flags)}
    code = 'import jax; jax.numpy.zeros(1).block_until_ready()'
    return subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                          check=False).returncode == 0
  assert runs_with(job.GPU_XLA_FLAGS)
  assert not runs_with([*job.GPU_XLA_FLAGS, '--xla_gpu_enable_latency_hiding_schedule=true'])


def test_device_check_script_parses():
  subprocess.run(['bash', '-n', str(job.ROOT / 'launch' / 'device_check.sh')], check=True)


def test_merge_flags_leaves_out_ours_that_the_user_sets():
  ours = ('--a=1', '--b=2')
  assert job.merge_flags(ours) == '--a=1 --b=2'
  assert job.merge_flags(ours, ' --b=3  --c ') == '--a=1 --b=3 --c'


def test_slurm_script_one_process_per_node_keeps_every_gpu():
  script = slurm.render(4, 4, CONFIG, WORKDIR, process_per_node=True, cpus_per_task=16)
  check_bash_syntax(script)
  options = sbatch_options(script)
  assert (options['nodes'], options['ntasks-per-node'], options['gres']) == ('4', '1', 'gpu:4')
  assert options['cpus-per-task'] == '16'
  assert 'export JAX_LOCAL_DEVICE_IDS=0,1,2,3' in script.splitlines()


def test_local_processes_share_a_coordinator_and_differ_in_their_id():
  processes = local.render(3, 1234, CONFIG, '/tmp/run', OVERRIDES, cpu_devices_per_process=2,
                           python='py')
  assert [env['JAX_PROCESS_ID'] for env, _ in processes] == ['0', '1', '2']
  for env, argv in processes:
    assert argv == ['py', *MAIN[:3], '--workdir=/tmp/run', *OVERRIDES]
    assert env['JAX_COORDINATOR_ADDRESS'] == 'localhost:1234'
    assert env['JAX_NUM_PROCESSES'] == '3'
    assert env['XLA_FLAGS'] == '--xla_force_host_platform_device_count=2'
    assert env['JAX_PLATFORMS'] == 'cpu'
  env, _ = local.render(2, 1, CONFIG, '/tmp/run')[0]
  assert 'XLA_FLAGS' not in env and 'JAX_PLATFORMS' not in env
  [(env, _)] = local.render(1, 1, CONFIG, '/tmp/run', cpu_devices_per_process=2,
                           xla_flags='--xla_force_host_platform_device_count=8 --xla_dump_to=/d')
  assert env['XLA_FLAGS'] == '--xla_dump_to=/d --xla_force_host_platform_device_count=2'


def test_local_gpu_processes_get_their_own_gpus_and_the_gpu_xla_flags():
  processes = local.render(2, 1234, CONFIG, '/tmp/run', gpus_per_process=4,
                           xla_flags='--xla_gpu_all_reduce_combine_threshold_bytes=1')
  assert [env['JAX_LOCAL_DEVICE_IDS'] for env, _ in processes] == ['0,1,2,3', '4,5,6,7']
  flags = processes[0][0]['XLA_FLAGS'].split()
  assert flags[-1] == '--xla_gpu_all_reduce_combine_threshold_bytes=1'
  assert set(flags[:-1]) == set(job.GPU_XLA_FLAGS) - {
      '--xla_gpu_all_reduce_combine_threshold_bytes=134217728'}
  assert 'JAX_PLATFORMS' not in processes[0][0]
  with pytest.raises(ValueError, match='choose one'):
    local.render(1, 1, CONFIG, '/tmp/run', cpu_devices_per_process=1, gpus_per_process=1)


def test_local_run_prefixes_output_and_stops_the_others_when_one_fails():
  fails = ({}, [sys.executable, '-c', 'print("one"); print("two"); raise SystemExit(3)'])
  hangs = ({'WORD': 'hi'}, ['bash', '-c', 'echo $WORD; sleep 60'])
  out = io.StringIO()
  assert local.run([hangs, fails], out) == [-signal.SIGKILL, 3]  # Killed, not left to sleep.
  assert sorted(out.getvalue().splitlines()) == ['[0] hi', '[1] one', '[1] two']


def test_local_environment_is_what_distributed_initialize_gets():
  env, _ = local.render(2, 1234, CONFIG, '/tmp/run')[1]
  assert parallel.distributed_args(env) == dict(
      coordinator_address='localhost:1234', num_processes=2, process_id=1,
      cluster_detection_method='deactivate')


@pytest.mark.parametrize('env, args', [
    ({}, None),
    ({'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '1'}, None),  # A plain run inside an allocation.
    ({'AVJAX_DISTRIBUTED': '1'}, {}),                      # launch.tpu, launch.slurm.
    ({'OMPI_COMM_WORLD_SIZE': '4'}, {}),
    ({'JAX_COORDINATOR_ADDRESS': 'host:1'}, {})])
def test_distributed_args_of_an_environment(env, args):
  assert parallel.distributed_args(env) == args


def test_distributed_args_name_what_is_missing():
  with pytest.raises(ValueError, match='JAX_PROCESS_ID'):
    parallel.distributed_args({'JAX_NUM_PROCESSES': '2', 'JAX_COORDINATOR_ADDRESS': 'h:1'})


class _FakeBucket(MemoryFileSystem):
  """gs:// in memory: what gcsfs does for epath, without a network."""
  protocol = ('gs', 'gcs')
  store, pseudo_dirs = {}, ['']

  def __init__(self, *args, finalize_on_close=True, **kwargs):
    del finalize_on_close  # gcsfs's argument, which epath passes.
    super().__init__(*args, **kwargs)


class _NoTensorBoard:
  """tensorboardX's SummaryWriter, which needs google-cloud-storage for gs://."""

  def __init__(self, logdir):
    self.logdir = logdir

  def __getattr__(self, name):
    return lambda *args, **kwargs: None


def test_a_bucket_workdir_gets_config_metrics_and_images(monkeypatch):
  bucket = _FakeBucket()
  monkeypatch.setattr(type(epath_backend.fsspec_backend), 'fs', lambda self, path: bucket)
  monkeypatch.setattr(tensorboardX, 'SummaryWriter', _NoTensorBoard)
  workdir = 'gs://bucket/run'
  checkpoint.save_config(ml_collections.ConfigDict({'task': 'aot', 'seed': 3}), workdir)
  assert checkpoint.load_config(workdir).seed == 3
  writer = metric_writers.MetricWriter(workdir)
  writer.scalars(1, {'loss': 1.0})
  writer.scalars(2, {'loss': 0.5})
  writer.close()
  writer = metric_writers.MetricWriter(workdir)  # A resumed run.
  writer.scalars(3, {'loss': 1 / 3})
  writer.image(3, 'samples', np.full((4, 6, 3), 7, np.uint8))
  writer.close()
  rows = (epath.Path(workdir) / 'metrics.jsonl').read_text().splitlines()
  assert [json.loads(r) for r in rows] == [{'step': s, 'loss': 1 / s} for s in (1, 2, 3)]
  image = iio.imread((epath.Path(workdir) / 'samples_0000003.png').read_bytes())
  np.testing.assert_array_equal(image, np.full((4, 6, 3), 7, np.uint8))
  assert checkpoint.as_path(workdir) / 'checkpoints' == epath.Path('gs://bucket/run/checkpoints')
