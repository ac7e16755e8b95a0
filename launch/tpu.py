r"""Runs avjax on every worker of a Cloud TPU VM (a pod slice), creating it if needed.

  python -m launch.tpu --name=avjax-v4 --zone=us-central2-b --accelerator_type=v4-32 \
      --config=configs/recon.py:paper --workdir=gs://BUCKET/recon --config.batch_size=1024
  ... --dry_run   # prints the script only

The script (bash, run here) creates the TPU VM unless it exists (a preempted
one is deleted and created again), copies this repository's HEAD to every
worker (`git archive`, or `git clone` of --repo_url), installs it with
`jax[tpu]` and gcsfs, and runs the same `avjax.main` command on all workers
with AVJAX_DISTRIBUTED=1, so that `jax.distributed.initialize()` finds the
pod's workers itself, and LIBTPU_INIT_ARGS set to the compute/communication
overlap flags of the TPU generation (`tpu_flags`) followed by this shell's own
LIBTPU_INIT_ARGS, which win. Rerunning it resumes the run from its workdir's
latest checkpoint. Needs the gcloud CLI (logged in; --project or gcloud's default)
and git.
"""

import os
import shlex

from absl import flags

from launch import job

_NAME = flags.DEFINE_string('name', None, 'TPU VM name.')
_ZONE = flags.DEFINE_string('zone', None, 'Zone, e.g. us-central2-b.')
_ACCELERATOR = flags.DEFINE_string('accelerator_type', 'v4-8', 'e.g. v4-32, v5litepod-16.')
_RUNTIME = flags.DEFINE_string('runtime_version', 'tpu-ubuntu2204-base', 'TPU VM software.')
_PROJECT = flags.DEFINE_string('project', '', 'Google Cloud project (\'\': gcloud\'s default).')
_SPOT = flags.DEFINE_bool('spot', False, 'Create a Spot TPU VM.')
_PREEMPTIBLE = flags.DEFINE_bool('preemptible', False, 'Create a preemptible TPU VM.')
_REPO_URL = flags.DEFINE_string('repo_url', '', 'git clone this URL on the workers instead of '
                                'copying this repository\'s HEAD.')
_REF = flags.DEFINE_string('ref', '', 'With --repo_url: the branch, tag or commit to check out.')

# Chips (v5e, v6e) or TensorCores (v2-v5p), as the accelerator type counts them, on one
# host of a multi-host slice; types of up to 8 are single-host.
_PER_HOST = {'v2': 8, 'v3': 8, 'v4': 8, 'v5p': 8, 'v5litepod': 4, 'v6e': 4}
_ARCHIVE = 'avjax.tar.gz'  # On the workers, in the home directory.

# LIBTPU_INIT_ARGS of a run, for overlap of compute and communication, by generation.
_ALL_FLAGS = (
    # The latency-hiding scheduler: apple/axlearn's default for every TPU version
    # (axlearn/common/compiler_options.py, default_xla_options).
    '--xla_tpu_enable_latency_hiding_scheduler=true',)
_V4_FLAGS = (
    # Asynchronous all-gather (the fsdp axis): MaxText's v4 scripts (google/maxtext
    # MaxText/configs/v4/22b.sh); axlearn sets it on v4 and notes that v3 lacks it.
    '--xla_enable_async_all_gather=true',)
_V5_FLAGS = (
    # Overlap the data-parallel gradient all-reduce with the backward pass, and fuse
    # collectives with the compute around them: every MaxText v5e and v5p script
    # (MaxText/configs/v5e/16b.sh, v5p/32b.sh; explained in MaxText/configs/README.md).
    '--xla_tpu_enable_data_parallel_all_reduce_opt=true',
    '--xla_tpu_data_parallel_opt_different_sized_ops=true',
    '--xla_tpu_enable_async_collective_fusion=true',
    '--xla_tpu_enable_async_collective_fusion_fuse_all_gather=true',
    '--xla_tpu_enable_async_collective_fusion_multiple_steps=true',
    '--xla_tpu_overlap_compute_collective_tc=true',
)
_TPU_FLAGS = {'v4': _ALL_FLAGS + _V4_FLAGS,
              **dict.fromkeys(['v5litepod', 'v5p', 'v6e'], _ALL_FLAGS + _V4_FLAGS + _V5_FLAGS)}


def num_workers(accelerator_type):
  """Hosts of a TPU slice ('v4-32' -> 4, 'v4-8' -> 1); None for an unknown type."""
  generation, _, size = accelerator_type.rpartition('-')
  if generation not in _PER_HOST or not size.isdigit():
    return None
  return 1 if int(size) <= 8 else int(size) // _PER_HOST[generation]


def tpu_flags(accelerator_type):
  """The LIBTPU_INIT_ARGS flags of a run on `accelerator_type` ('v5p-128'): the
  latency-hiding scheduler on any generation, more from v4 and v5 on."""
  return _TPU_FLAGS.get(accelerator_type.rpartition('-')[0], _ALL_FLAGS)


def check_workdir(workdir, accelerator_type):
  """A slice of more than one worker (or of an unknown type) needs a bucket workdir."""
  workers = num_workers(accelerator_type)
  if workers != 1 and not workdir.startswith('gs://'):
    hosts = f'{workers} workers' if workers else 'workers (maybe several)'
    raise ValueError(f'--workdir={workdir} is a local path, but the {hosts} of '
                     f'{accelerator_type} must write one shared workdir: use a bucket, '
                     '--workdir=gs://BUCKET/PATH')


def _gcloud(verb, positional, where, *options):
  """A `gcloud compute tpus tpu-vm VERB ...` line in the zone (and project) `where`."""
  return shlex.join(['gcloud', 'compute', 'tpus', 'tpu-vm', verb, *positional, *where, *options])


def _vm_lines(where, name, accelerator_type, runtime_version, spot, preemptible):
  """Reuse the TPU VM, or create it (a preempted one is deleted first)."""
  create = _gcloud('create', [name], where, f'--accelerator-type={accelerator_type}',
                   f'--version={runtime_version}', *['--spot'] * spot,
                   *['--preemptible'] * preemptible)
  return [f'state=$({_gcloud("describe", [name], where, "--format=value(state)")} 2>/dev/null'
          ' || true)',
          f'if [ "$state" = PREEMPTED ]; then {_gcloud("delete", [name], where, "--quiet")}; '
          'state=; fi',
          f'if [ -z "$state" ]; then {create}; fi']


def _code_lines(where, name, repo_url, ref, archive):
  """(Lines run here, a command run on each worker) that put avjax in ~/avjax: this
  repository's HEAD copied as `archive`, or a clone of `repo_url` at `ref`."""
  if repo_url:
    checkout = f' && git -C avjax checkout -q {shlex.quote(ref)}' if ref else ''
    return [], f'rm -rf avjax && git clone -q {shlex.quote(repo_url)} avjax{checkout}'
  copy = [shlex.join(['git', '-C', str(job.ROOT), 'archive', '--format=tar.gz',
                      f'--output={archive}', 'HEAD']),
          _gcloud('scp', [archive, f'{name}:{_ARCHIVE}'], where, '--worker=all')]
  return copy, f'rm -rf avjax && mkdir avjax && tar -xzf {_ARCHIVE} -C avjax'


def render(name, zone, accelerator_type, runtime_version, config, workdir, overrides=(),
           project='', spot=False, preemptible=False, repo_url='', ref='',
           archive='/tmp/avjax.tar.gz', libtpu_init_args=''):
  """The bash script that creates (or reuses) the TPU VM, puts avjax on every worker
  and runs `avjax.main` on all of them; `archive` is the local `git archive` file.
  The run's LIBTPU_INIT_ARGS are `tpu_flags`, then `libtpu_init_args` (the user's),
  which win."""
  check_workdir(workdir, accelerator_type)
  if spot and preemptible:
    raise ValueError('--spot and --preemptible: choose one')
  where = [f'--zone={zone}'] + ([f'--project={project}'] if project else [])
  copy, unpack = _code_lines(where, name, repo_url, ref, archive)
  install = f'{unpack} && cd avjax && python3 -m pip install -q -e . "jax[tpu]" gcsfs'
  env = {job.DISTRIBUTED_ENV: 1,
         'LIBTPU_INIT_ARGS': job.merge_flags(tpu_flags(accelerator_type), libtpu_init_args)}
  train = 'cd avjax && ' + job.shell(job.main_args(config, workdir, overrides, 'python3'), env)
  on_workers = lambda command: _gcloud('ssh', [name], where, '--worker=all',
                                       f'--command={command}')
  return '\n'.join([
      'set -euo pipefail',
      *_vm_lines(where, name, accelerator_type, runtime_version, spot, preemptible),
      *copy, on_workers(install), on_workers(train), ''])


def main(overrides):
  script = render(_NAME.value, _ZONE.value, _ACCELERATOR.value, _RUNTIME.value,
                  flags.FLAGS.config, flags.FLAGS.workdir, overrides, _PROJECT.value,
                  _SPOT.value, _PREEMPTIBLE.value, _REPO_URL.value, _REF.value,
                  archive=f'/tmp/avjax-{_NAME.value}.tar.gz',
                  libtpu_init_args=os.environ.get('LIBTPU_INIT_ARGS', ''))
  job.execute(script, ['bash', '-c', script])


if __name__ == '__main__':
  job.run(main, required=['name', 'zone'])
