r"""Runs avjax as N processes on this machine, with a coordinator on localhost.

  python -m launch.local --num_processes=2 --cpu_devices_per_process=1 \
      --config=configs/aot.py:tiny --workdir=/tmp/aot_2proc
  ... --dry_run   # prints each process's command and environment only

Each process gets JAX_COORDINATOR_ADDRESS (localhost, a free port),
JAX_NUM_PROCESSES and JAX_PROCESS_ID, which `avjax.parallel` hands to
`jax.distributed.initialize`; with --cpu_devices_per_process, it runs on that
many CPU devices (JAX_PLATFORMS=cpu, XLA_FLAGS), as a test of a multi-host run;
with --gpus_per_process, on its own GPUs (JAX_LOCAL_DEVICE_IDS), with the GPU
XLA flags of `launch.job.GPU_XLA_FLAGS`, which this shell's own XLA_FLAGS
override.
Each line of output is prefixed with [PROCESS_ID]; when one process fails the
others are stopped, and the launcher fails.
"""

import os
import socket
import subprocess
import sys
import threading
import time

from absl import flags

from launch import job

_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 2, 'Processes to start.')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices_per_process', 0, 'Run each process on this many CPU devices (0: JAX\'s '
    'default platform and devices).')
_GPUS = flags.DEFINE_integer(
    'gpus_per_process', 0, 'Run process i on GPUs i*N ... i*N+N-1 (0: JAX\'s default '
    'platform and devices).')
_PORT = flags.DEFINE_integer('port', 0, 'Coordinator port on localhost (0: a free one).')


def render(num_processes, port, config, workdir, overrides=(), cpu_devices_per_process=0,
           python=sys.executable, gpus_per_process=0, xla_flags=''):
  """[(environment variables, argv)] of each process, in process order; `xla_flags`:
  the user's own XLA_FLAGS, kept (and winning over the GPU flags)."""
  if cpu_devices_per_process and gpus_per_process:
    raise ValueError('--cpu_devices_per_process and --gpus_per_process: choose one')
  env = {'JAX_COORDINATOR_ADDRESS': f'localhost:{port}',
         'JAX_NUM_PROCESSES': str(num_processes)}
  if cpu_devices_per_process:  # The device count this launcher was asked for wins.
    count = f'--xla_force_host_platform_device_count={cpu_devices_per_process}'
    env.update(JAX_PLATFORMS='cpu', XLA_FLAGS=job.merge_flags(xla_flags.split(), count))
  if gpus_per_process:
    env['XLA_FLAGS'] = job.merge_flags(job.GPU_XLA_FLAGS, xla_flags)
  argv = job.main_args(config, workdir, overrides, python)
  processes = []
  for i in range(num_processes):
    own = {'JAX_PROCESS_ID': str(i)}
    if gpus_per_process:
      first = i * gpus_per_process
      own['JAX_LOCAL_DEVICE_IDS'] = ','.join(map(str, range(first, first + gpus_per_process)))
    processes.append(({**env, **own}, argv))
  return processes


def free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _forward(prefix, stream, out, lock):
  for line in stream:
    with lock:
      out.write(f'{prefix} {line}')
      out.flush()


def run(processes, out=sys.stdout, timeout=None):
  """Starts `processes` ([(env, argv)], in the repository root), writes their output
  lines to `out` prefixed with [i], and waits for all. When one fails, or `timeout`
  seconds pass, the others are killed. Returns the exit codes."""
  procs = [subprocess.Popen(argv, env={**os.environ, **env}, cwd=job.ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
           for env, argv in processes]
  lock = threading.Lock()
  threads = [threading.Thread(target=_forward, args=(f'[{i}]', p.stdout, out, lock))
             for i, p in enumerate(procs)]
  for t in threads:
    t.start()
  deadline = None if timeout is None else time.monotonic() + timeout
  while any(p.poll() is None for p in procs):
    if any(p.poll() for p in procs) or (deadline and time.monotonic() > deadline):
      for p in procs:
        if p.poll() is None:
          p.kill()
    time.sleep(0.1)
  for t in threads:
    t.join()
  return [p.returncode for p in procs]


def main(overrides):
  processes = render(_NUM_PROCESSES.value, _PORT.value or free_port(), flags.FLAGS.config,
                     flags.FLAGS.workdir, overrides, _CPU_DEVICES.value,
                     gpus_per_process=_GPUS.value, xla_flags=os.environ.get('XLA_FLAGS', ''))
  if flags.FLAGS.dry_run:
    print('\n'.join(job.shell(argv, env) for env, argv in processes))
    return
  codes = run(processes)
  if any(codes):
    sys.exit(f'launch.local: exit codes {codes}')


if __name__ == '__main__':
  job.run(main)
