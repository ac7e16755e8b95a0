r"""Trains a task from an ml_collections config.

  python -m avjax.main --config=configs/recon.py --workdir=/tmp/recon
  python -m avjax.main --config=configs/recon.py:tiny --workdir=/tmp/t \
      --config.total_steps=20
"""

import os
import sys

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from avjax import checkpoint
from avjax import config_lib
from avjax import metric_writers
from avjax import parallel
from avjax import train

CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a configs/*.py file.',
                                         lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and metrics.')


def resolve_config(argv):
  """argv with `--config=PATH[:ARG]` found by `config_lib.resolve` (an installed avjax's
  configs/NAME.py when PATH is not here); a PATH found nowhere exits with one line."""
  try:
    return [f'--config={config_lib.resolve(a.removeprefix("--config="))}'
            if a.startswith('--config=') else a for a in argv]
  except ValueError as e:
    sys.exit(f'avjax: error: --config: {e}')


def parse_flags(argv):
  """absl's flag parsing after `resolve_config`, with a one-line error for an unknown
  --config.KEY or a configs/*.py that refuses its argument (`configs/disentangle.py:data=lrw`)."""
  argv = resolve_config(argv)
  try:
    return flags.FLAGS(argv)
  except flags.IllegalFlagValueError as e:
    if not str(e).startswith('flag --config='):
      return app.parse_flags_with_usage(argv)  # absl's message and usage.
    flag = str(e).split(':', 1)[0]  # 'flag --config=configs/NAME.py'.
    cause = str(e).strip().splitlines()[-1]  # ml_collections quotes the traceback.
    sys.exit(f'avjax: error: {flag.removeprefix("flag ")}: {cause}')
  except flags.Error:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:  # ml_collections' override of a missing key.
    while isinstance(e.args[0], Exception):  # AttributeError(KeyError(message)).
      e = e.args[0]
    sys.exit(f'avjax: error: unknown config key in the --config.* overrides: '
             f'{e.args[0]}'.replace('\n', '; '))


def start(argv):
  """What an entry point does first: no stray arguments, multi-host init, JAX flags."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(metric_writers.quiet_orbax)
  checkpoint.quiet_failed_saves()
  parallel.maybe_initialize_distributed()
  jax.config.update('jax_threefry_partitionable', True)
  logging.info('process %d of %d; devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())


def compilation_cache_dir(setting, workdir, environ):
  """The folder of JAX's persistent compilation cache, or None for none: `setting`
  (config.compilation_cache_dir) unless '' or 'none', else JAX_COMPILATION_CACHE_DIR
  in `environ`, else WORKDIR/jax_cache, which every host and every restart sees."""
  if setting == 'none':
    return None
  default = os.path.join(workdir, 'jax_cache')
  return setting or environ.get('JAX_COMPILATION_CACHE_DIR') or default


def use_compilation_cache(config, workdir):
  """Points JAX's persistent compilation cache at `compilation_cache_dir` (or turns it
  off), before the first compilation: a restarted run reads its programs back."""
  path = compilation_cache_dir(config.compilation_cache_dir, workdir, os.environ)
  if path is None:
    jax.config.update('jax_enable_compilation_cache', False)
  else:
    jax.config.update('jax_compilation_cache_dir', path)
  logging.info('JAX compilation cache: %s', path or 'off')


def exit_on_error(fn, *args):
  """`fn(*args)`; a ValueError, OSError or FloatingPointError exits with one line."""
  try:
    return fn(*args)
  except (ValueError, OSError, FloatingPointError) as e:
    logging.debug('traceback of the error below', exc_info=True)  # --verbosity=1
    sys.exit(f'avjax: error: {e}')


def main(argv):
  start(argv)
  use_compilation_cache(CONFIG.value, _WORKDIR.value)
  exit_on_error(train.train_and_evaluate, CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])  # Here: avjax.bench imports CONFIG.
  app.run(main, flags_parser=parse_flags)
