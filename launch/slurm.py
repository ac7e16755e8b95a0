r"""Renders, and with --submit submits, the SLURM batch script of a multi-node GPU run.

  python -m launch.slurm --nodes=2 --gpus_per_node=8 --partition=gpu --time=24:00:00 \
      --setup='source .venv/bin/activate' \
      --config=configs/recon.py:paper --workdir=/shared/runs/recon --submit

Without --submit (or with --dry_run) the script is printed. The job runs one
process per GPU (--ntasks-per-node=GPUS), or with --process_per_node one process
per node that drives all its GPUs; every process runs the same `avjax.main`
command through srun, from this repository (a file system all nodes see).
Each process is given CPUs for its input pipeline, whose Grain workers are sized
from them: --cpus_per_task, or by default the whole node (--exclusive) split
evenly between its processes.
The workdir must be shared by all nodes too (a cluster file system, or gs://).
Needs sbatch and srun.
"""

import shlex

from absl import flags

from launch import job

_NODES = flags.DEFINE_integer('nodes', 1, 'Nodes.')
_GPUS = flags.DEFINE_integer('gpus_per_node', 8, 'GPUs on each node.')
_PER_NODE = flags.DEFINE_bool('process_per_node', False, 'One process per node (all its '
                              'GPUs) instead of one per GPU.')
_PARTITION = flags.DEFINE_string('partition', '', 'SLURM partition (\'\': the default).')
_TIME = flags.DEFINE_string('time', '', 'Time limit, e.g. 24:00:00 (\'\': the default).')
_CPUS = flags.DEFINE_integer('cpus_per_task', 0, 'CPUs of each process, for its Grain '
                             'workers (0: the node to the job, its CPUs split evenly '
                             'between its processes).')
_JOB_NAME = flags.DEFINE_string('job_name', 'avjax', 'Job name; the log is NAME-JOBID.out.')
_SETUP = flags.DEFINE_string('setup', '', 'Shell lines run before srun (activate an '
                             'environment, load modules).')
_PYTHON = flags.DEFINE_string('python', 'python', 'Python of the environment avjax is in.')
_SUBMIT = flags.DEFINE_bool('submit', False, 'Submit the script with sbatch.')

_COMMENT = """\
# jax.distributed.initialize() (called because AVJAX_DISTRIBUTED=1) takes everything
# from srun's variables (jax/_src/clusters/slurm_cluster.py, jax 0.10): the
# coordinator is the first node of SLURM_STEP_NODELIST on port
# 61440 + SLURM_JOB_ID % 4096 (set JAX_COORDINATOR_PORT to change it), the
# process count SLURM_NTASKS, the process id SLURM_PROCID. Nothing is passed
# explicitly."""
_PER_GPU_COMMENT = """\
# One process per GPU: jax keeps GPU SLURM_LOCALID as each process's only device,
# so every task sees all the node's GPUs (--gres, no --gpus-per-task binding)."""
_XLA_FLAGS_COMMENT = """\
# launch.job.GPU_XLA_FLAGS, then the job's own XLA_FLAGS (from the submitting shell or
# --setup), which win: XLA keeps the last value of a repeated flag."""
_CPUS_COMMENT = """\
# srun binds each process to its CPUs (--cpus-per-task, given to srun itself: some
# SLURM versions do not pass sbatch's on); its Grain workers are sized from them."""
_PER_NODE_COMMENT = """\
# One process per node: JAX_LOCAL_DEVICE_IDS keeps all the node's GPUs (else jax
# would keep only GPU SLURM_LOCALID, that is 0)."""


def render(nodes, gpus_per_node, config, workdir, overrides=(), process_per_node=False,
           partition='', time='', cpus_per_task=0, job_name='avjax', setup='',
           python='python', chdir=str(job.ROOT)):
  """The sbatch script: its #SBATCH lines, the environment, and the srun line."""
  options = {'job-name': job_name, 'nodes': nodes,
             'ntasks-per-node': 1 if process_per_node else gpus_per_node,
             'gres': f'gpu:{gpus_per_node}', 'chdir': chdir, 'output': '%x-%j.out',
             'partition': partition, 'time': time, 'cpus-per-task': cpus_per_task}
  node = '' if cpus_per_task else '#SBATCH --exclusive'  # The node's CPUs, all to this job.
  cpus = cpus_per_task or '$((SLURM_CPUS_ON_NODE/SLURM_NTASKS_PER_NODE))'
  env = {job.DISTRIBUTED_ENV: 1}
  if process_per_node:
    env['JAX_LOCAL_DEVICE_IDS'] = ','.join(map(str, range(gpus_per_node)))
  return '\n'.join([
      '#!/bin/bash',
      *(f'#SBATCH --{k}={v}' for k, v in options.items() if v),
      *([node] if node else []),
      _COMMENT, _PER_NODE_COMMENT if process_per_node else _PER_GPU_COMMENT,
      'set -eo pipefail',
      *([setup] if setup else []),
      *(f'export {k}={shlex.quote(str(v))}' for k, v in env.items()),
      _XLA_FLAGS_COMMENT,
      f'export XLA_FLAGS="{" ".join(job.GPU_XLA_FLAGS)}${{XLA_FLAGS:+ $XLA_FLAGS}}"',
      _CPUS_COMMENT,
      f'srun --cpus-per-task={cpus} ' + job.shell(job.main_args(config, workdir, overrides,
                                                                 python)), ''])


def main(overrides):
  script = render(_NODES.value, _GPUS.value, flags.FLAGS.config, flags.FLAGS.workdir,
                  overrides, _PER_NODE.value, _PARTITION.value, _TIME.value, _CPUS.value,
                  _JOB_NAME.value, _SETUP.value, _PYTHON.value)
  if _SUBMIT.value:
    job.execute(script, ['sbatch'], stdin=script)
  else:
    print(script, end='')


if __name__ == '__main__':
  job.run(main)
