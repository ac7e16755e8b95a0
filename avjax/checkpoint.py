"""Orbax checkpoints of train state and data position; the exported encoders' parameters.

A run's checkpoints live in `WORKDIR/checkpoints/STEP/{state,data}`: the train
state and the Grain iterator state, saved together so that a restart resumes
at the exact data position. A workdir or export dir may be a bucket path
(`gs://...`, through `etils.epath`; gcsfs installed) as well as a local one.

Faults: a run resumes from its newest readable checkpoint; a newer one that
cannot be read (a damaged file) is moved to STEP.unreadable, in one log line. A
save that fails (a full disk, a lost bucket) raises OSError naming its step,
and the checkpoints before it stay restorable. Writing and loading exported
encoders, which needs the tasks, is `avjax.export`; this module knows no task.
"""

import functools
import json
import os
import sys
import traceback

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

CHECKPOINT_DIR = 'checkpoints'
CONFIG_FILE = 'config.json'


def as_path(directory):
  """`directory` as an `epath.Path`: a bucket path as it is, a local one made absolute."""
  directory = epath.Path(directory)
  return directory if directory.is_absolute() else epath.Path(os.path.abspath(directory))


def _item_handlers():
  return {'state': ocp.StandardCheckpointHandler(),
          'data': grain.checkpoint.CheckpointHandler()}


def make_manager(workdir, keep=2, async_save=True):
  """A CheckpointManager over WORKDIR/checkpoints keeping the last `keep` steps. It
  removes what a save that failed left (STEP.orbax-checkpoint-tmp), so only the
  run that owns the workdir makes one."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(as_path(workdir) / CHECKPOINT_DIR, options=options,
                               item_handlers=_item_handlers())


def _reader(workdir):
  """A CheckpointManager that only reads another run's WORKDIR/checkpoints."""
  return ocp.CheckpointManager(as_path(workdir) / CHECKPOINT_DIR,
                               options=ocp.CheckpointManagerOptions(create=False),
                               item_handlers=_item_handlers())


def error_line(error):
  """The innermost cause of `error` (orbax wraps TensorStore's), as one line."""
  while error.__cause__ or error.__context__:
    error = error.__cause__ or error.__context__
  lines = str(error).strip().splitlines()
  return f'{type(error).__name__}: {lines[0] if lines else ""}'


def save_error(manager, step, error):
  """The OSError that reports a failed save of `step`."""
  return OSError(f'saving checkpoint step {step} in {manager.directory} failed '
                 f'({error_line(error)}); the checkpoints before it are kept, and a rerun '
                 'resumes from the newest once the cause (e.g. a full disk) is fixed')


def wait(manager):
  """Waits for the pending (asynchronous) save; one that failed raises `save_error`."""
  step = manager.latest_step()  # The pending save's step until it fails.
  try:
    manager.wait_until_finished()
  except Exception as e:  # Orbax re-raises TensorStore's ValueError, OSError, ...
    raise save_error(manager, step, e) from e


def save(manager, step, state, data_iterator):
  """Starts an asynchronous save of the state and the data position, once the
  previous save has finished; a failed save (this one or that) raises OSError."""
  wait(manager)
  try:
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(data_iterator)), force=True)
  except Exception as e:
    raise save_error(manager, step, e) from e


def _verbose_save_traceback(record):
  """Log filter: orbax's and asyncio's records that carry a traceback (those of a failed
  save, which `wait` and `save` raise as one line) pass only at --verbosity=1."""
  if record.exc_info and ('/orbax/' in record.pathname or '/asyncio/' in record.pathname):
    return logging.level_debug()
  return True


def _from_orbax(error):
  """Whether `error` was raised inside orbax (a pending read or write of a failed restore
  or save), or is the 'Event loop is closed' of a failed save's pending TensorStore writes."""
  if isinstance(error, RuntimeError) and str(error) == 'Event loop is closed':
    return True
  return any('/orbax/' in frame.f_code.co_filename
             for frame, _ in traceback.walk_tb(error.__traceback__))


def _skip_orbax_leftovers(hook, unraisable):
  """`hook(unraisable)` unless it is a leftover of a failed restore or save (`_from_orbax`),
  which `restore`, `wait` and `save` already report in one line; those show at
  --verbosity=1."""
  if not _from_orbax(unraisable.exc_value) or logging.level_debug():
    hook(unraisable)


def quiet_failed_saves():
  """Makes a failed save or restore read as its one line in this process: orbax's and
  asyncio's tracebacks of it, and the exceptions its pending reads and writes leave
  behind, show at --verbosity=1 only. An entry point (`avjax.main.start`) calls it once."""
  logging.get_absl_handler().addFilter(_verbose_save_traceback)
  sys.unraisablehook = functools.partial(_skip_orbax_leftovers, sys.unraisablehook)


def newest_readable(manager, read):
  """`(step, read(step), {newer step: why unreadable})` for the newest step `read` can
  read; none raises OSError. An IncompatibleCheckpointError (another model: every step
  would fail alike) propagates."""
  failures = {}
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return step, read(step), failures
    except IncompatibleCheckpointError:
      raise
    except Exception as e:  # A damaged file raises whatever its reader does.
      failures[step] = error_line(e)
  raise OSError(f'no readable checkpoint in {manager.directory}: ' + ('; '.join(
      f'step {step}: {why}' for step, why in failures.items()) or 'none saved'))


def set_aside(manager, failures, resumed):
  """Renames each unreadable step's directory STEP.unreadable, where the run's next save
  of that step does not collide with it, and logs one line for it (process 0 renames,
  the others wait)."""
  for step, why in failures.items():
    target = manager.directory / f'{step}.unreadable'
    if jax.process_index() == 0:
      if target.exists():  # An older unreadable copy of the same step.
        target.rmtree()
      (manager.directory / str(step)).rename(target)
    logging.warning('checkpoint step %d is unreadable (%s); moved to %s, resuming from '
                    'step %d', step, why, target, resumed)
  multihost_utils.sync_global_devices('avjax.checkpoint.set_aside')
  manager.reload()


def restore(manager, abstract_state, data_iterator):
  """Restores the newest readable checkpoint, setting newer unreadable ones aside: the
  state (sharded as `abstract_state`) and the data position of one step. A failed read
  may have moved `data_iterator` already; the older step's restore sets it again."""
  def read(step):
    check_compatible(manager, step, abstract_state)
    return manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=grain.checkpoint.CheckpointRestore(data_iterator)))['state']
  step, state, failures = newest_readable(manager, read)
  if failures:
    set_aside(manager, failures, step)
  return state


def _shapes(tree):
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path): tuple(np.shape(leaf)) for path, leaf in flat}


def shape_differences(tree, other, limit=3):
  """The first `limit` (name, shape) pairs found in one tree but not the other."""
  return sorted(set(_shapes(tree).items()) ^ set(_shapes(other).items()))[:limit]


class IncompatibleCheckpointError(ValueError):
  """A checkpoint of another model than the config builds."""


def check_compatible(manager, step, abstract_state):
  """Raises IncompatibleCheckpointError when the checkpoint at `step` has other parameters."""
  diff = shape_differences(manager.item_metadata(step)['state']['params'],
                           abstract_state.params)
  if diff:
    raise IncompatibleCheckpointError(
        f'{manager.directory} holds a checkpoint (step {step}) of a different model '
        f'than this config builds; first differences (name, shape): {diff}. '
        'Use a new --workdir, or the config that wrote it.')


def restore_params(workdir):
  """The parameters of the newest readable checkpoint in another run's `workdir`, as numpy."""
  manager = _reader(workdir)
  if not manager.all_steps():
    raise FileNotFoundError(f'no checkpoint in {manager.directory}')
  read = lambda step: ocp.StandardCheckpointer().restore(manager.directory / str(step) / 'state')
  step, state, failures = newest_readable(manager, read)
  for failed, why in failures.items():
    logging.warning('checkpoint step %d in %s is unreadable (%s); reading step %d', failed,
                    manager.directory, why, step)
  return jax.device_get(state['params'])


def save_config(config, workdir):
  (as_path(workdir) / CONFIG_FILE).write_text(config.to_json_best_effort(indent=2))


def load_config(directory):
  config_file = as_path(directory) / CONFIG_FILE
  if not config_file.exists():
    raise FileNotFoundError(f'no {CONFIG_FILE} in {directory}: not an avjax workdir or export')
  return ml_collections.ConfigDict(json.loads(config_file.read_text()))


def load_exported_params(directory, name):
  """The parameters of encoder NAME that `python -m avjax.export` wrote to DIRECTORY
  (DIRECTORY/NAME/params), as numpy; its config is `load_config(DIRECTORY/NAME)`."""
  params_dir = as_path(directory) / name / 'params'
  if not params_dir.exists():
    raise FileNotFoundError(f'no exported {name} in {directory} (no {params_dir}); '
                            'python -m avjax.export writes one')
  return jax.device_get(ocp.StandardCheckpointer().restore(params_dir))
