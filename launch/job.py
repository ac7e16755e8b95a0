"""What every launcher runs: the `avjax.main` command and its flags.

  python -m launch.NAME [launcher flags] --config=configs/recon.py:paper \
      --workdir=gs://BUCKET/recon --config.batch_size=1024

`--config.*` overrides are passed on to `avjax.main` as they are.
"""

import pathlib
import shlex
import subprocess
import sys

from absl import app
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parents[1]  # The repository: configs/ paths start here.
# The variable that makes `avjax.parallel.maybe_initialize_distributed` call
# `jax.distributed.initialize()`, which then detects the TPU pod or SLURM job itself.
DISTRIBUTED_ENV = 'AVJAX_DISTRIBUTED'

# XLA_FLAGS of a GPU run (launch.slurm, launch.local --gpus_per_process), for overlap of
# compute and communication; XLA's defaults (xla/debug_options_flags.cc) are no
# latency-hiding scheduler and 30 MiB combine thresholds. launch.tpu has the TPU ones.
GPU_XLA_FLAGS = (
    # Start collectives early and run compute while they are in flight: JAX's "GPU
    # performance tips" (docs.jax.dev/en/latest/gpu_performance_tips.html, "XLA
    # performance flags"), set in NVIDIA JAX-Toolbox's images and in every MaxText GPU
    # script (google/maxtext MaxText/configs/a3/llama_2_7b/1vm.sh).
    '--xla_gpu_enable_latency_hiding_scheduler=true',
    # Combine the many per-parameter gradient all-reduces (fsdp: all-gathers and
    # reduce-scatters) into a few large ones: MaxText's values in the same script and
    # in end_to_end/gpu/a3/test_convergence_1b_params.sh.
    '--xla_gpu_all_reduce_combine_threshold_bytes=134217728',
    '--xla_gpu_all_gather_combine_threshold_bytes=134217728',
    '--xla_gpu_reduce_scatter_combine_threshold_bytes=67108864',
)


def merge_flags(ours, user=''):
  """`ours` (a sequence of --NAME=VALUE) then the user's own flags (a string), without
  those of ours that the user sets: the user's value wins, whatever the parser does
  with a repeated flag."""
  names = {flag.split('=', 1)[0] for flag in user.split()}
  return ' '.join([f for f in ours if f.split('=', 1)[0] not in names] + user.split())


def define_flags(required=()):
  """Defines --config, --workdir and --dry_run (read as `flags.FLAGS.config`, ...) and
  marks them and `required` as required. `run` calls it, not an import: a process
  that imports `avjax.main`, which has its own --config, can then import the
  launchers' `render` functions too (the tests do)."""
  flags.DEFINE_string('config', None, 'configs/NAME.py[:preset], as avjax.main takes it.')
  flags.DEFINE_string('workdir', None, 'The run\'s workdir, shared by every process.')
  flags.DEFINE_bool('dry_run', False, 'Print the commands instead of running them.')
  flags.mark_flags_as_required(['config', 'workdir', *required])


def main_args(config, workdir, overrides=(), python='python'):
  """The argv of `python -m avjax.main` with a config, a workdir and --config.* overrides."""
  return [python, '-m', 'avjax.main', f'--config={config}', f'--workdir={workdir}',
          *overrides]


def shell(argv, env=None):
  """`argv` as one shell command line, after `env`'s assignments (NAME=VALUE ...)."""
  assignments = [f'{k}={shlex.quote(str(v))}' for k, v in (env or {}).items()]
  return ' '.join(assignments + [shlex.join(argv)])


def _program(argv):
  return f'launch.{pathlib.Path(argv[0]).stem}'


def parse_flags(argv):
  """The launcher's flags; what is left must be `--config.*` overrides: returns
  [program, *overrides] (absl's `flags_parser`)."""
  try:
    rest = flags.FLAGS(argv, known_only=True)
  except flags.Error as e:
    sys.exit(f'{_program(argv)}: error: {e}\nPass --help to see the flags.')
  unknown = [a for a in rest[1:] if not a.startswith('--config.')]
  if unknown:
    sys.exit(f'{_program(argv)}: error: unknown arguments {unknown}; the launcher takes '
             'its flags and --config.* overrides')
  return rest


def execute(script, argv, stdin=None):
  """Prints `script` (--dry_run), or runs `argv` (which runs it); exits if that fails."""
  if flags.FLAGS.dry_run:
    print(script, end='')
    return
  code = subprocess.run(argv, input=stdin, text=True, check=False).returncode
  if code:
    sys.exit(f'{argv[0]} exited with {code}')


def run(main, required=()):
  """`app.run` with the launcher's flag parsing: `main(overrides)`; a ValueError (a
  flag the launcher refuses) is a one-line error. `required`: the launcher's own
  required flags."""
  define_flags(required)
  def checked_main(argv):
    try:
      main(argv[1:])
    except ValueError as e:
      sys.exit(f'{_program(argv)}: error: {e}')
  app.run(checked_main, flags_parser=parse_flags)
