"""launch.slurm gives every process CPUs for its input pipeline."""

import os
import shlex
import subprocess

import pytest

from launch import slurm


def _srun_args(script, tmp_path, environ):
  """The arguments the script passes srun, run by bash with a fake srun and SLURM's
  variables `environ`."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'srun').write_text('#!/bin/sh\necho "$@"\n')
  (bin_dir / 'srun').chmod(0o755)
  env = {'PATH': f'{bin_dir}{os.pathsep}/usr/bin:/bin', **environ}
  out = subprocess.run(['bash', '-c', script], env=env, capture_output=True, text=True,
                       check=True).stdout
  return shlex.split(out)


def test_by_default_each_process_gets_an_even_share_of_the_node(tmp_path):
  script = slurm.render(2, 8, 'configs/recon.py:accel', '/runs/recon')
  lines = script.splitlines()
  assert '#SBATCH --exclusive' in lines
  assert not any(l.startswith('#SBATCH --cpus-per-task') for l in lines)
  args = _srun_args(script, tmp_path, {'SLURM_CPUS_ON_NODE': '208',
                                       'SLURM_NTASKS_PER_NODE': '8'})
  assert args[:2] == ['--cpus-per-task=26', 'python']


@pytest.mark.parametrize('process_per_node', [False, True])
def test_cpus_per_task_is_requested_and_given_to_srun(tmp_path, process_per_node):
  script = slurm.render(2, 8, 'configs/sync.py:accel', '/runs/sync', cpus_per_task=12,
                        process_per_node=process_per_node)
  lines = script.splitlines()
  assert '#SBATCH --cpus-per-task=12' in lines and '#SBATCH --exclusive' not in lines
  args = _srun_args(script, tmp_path, {})
  assert args[:2] == ['--cpus-per-task=12', 'python']
