"""Orbax checkpoints of train state and data position; export and load of encoders.

A run's checkpoints live in `WORKDIR/checkpoints/STEP/{state,data}`: the train
state and the Grain iterator state, saved together so that a restart resumes
at the exact data position. A workdir or export dir may be a bucket path
(`gs://...`, through `etils.epath`; gcsfs installed) as well as a local one.
"""

import json
import os

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

CHECKPOINT_DIR = 'checkpoints'
CONFIG_FILE = 'config.json'


def as_path(directory):
  """`directory` as an `epath.Path`: a bucket path as it is, a local one made absolute."""
  directory = epath.Path(directory)
  return directory if directory.is_absolute() else epath.Path(os.path.abspath(directory))


def make_manager(workdir, keep=2, async_save=True):
  """A CheckpointManager over WORKDIR/checkpoints keeping the last `keep` steps."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
  return ocp.CheckpointManager(
      as_path(workdir) / CHECKPOINT_DIR, options=options,
      item_handlers={'state': ocp.StandardCheckpointHandler(),
                     'data': grain.checkpoint.CheckpointHandler()})


def save(manager, step, state, data_iterator):
  """Starts an (asynchronous) save of the state and the data position."""
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=grain.checkpoint.CheckpointSave(data_iterator)), force=True)


def restore(manager, abstract_state, data_iterator):
  """Restores the latest state (sharded as `abstract_state`) and the data position."""
  step = manager.latest_step()
  check_compatible(manager, step, abstract_state)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      data=grain.checkpoint.CheckpointRestore(data_iterator)))
  return restored['state']


def _shapes(tree):
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path): tuple(np.shape(leaf)) for path, leaf in flat}


def shape_differences(tree, other, limit=3):
  """The first `limit` (name, shape) pairs found in one tree but not the other."""
  return sorted(set(_shapes(tree).items()) ^ set(_shapes(other).items()))[:limit]


def check_compatible(manager, step, abstract_state):
  """Raises a clear error when the checkpoint at `step` has other parameters."""
  diff = shape_differences(manager.item_metadata(step)['state']['params'],
                           abstract_state.params)
  if diff:
    raise ValueError(
        f'{manager.directory} holds a checkpoint (step {step}) of a different model '
        f'than this config builds; first differences (name, shape): {diff}. '
        'Use a new --workdir, or the config that wrote it.')


def restore_params(workdir):
  """The parameters of the latest checkpoint in another run's `workdir`, as numpy."""
  manager = make_manager(workdir, async_save=False)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f'no checkpoint in {manager.directory}')
  state_dir = manager.directory / str(step) / 'state'
  state = ocp.StandardCheckpointer().restore(state_dir)
  return jax.device_get(state['params'])


def save_config(config, workdir):
  (as_path(workdir) / CONFIG_FILE).write_text(config.to_json_best_effort(indent=2))


def load_config(directory):
  config_file = as_path(directory) / CONFIG_FILE
  if not config_file.exists():
    raise FileNotFoundError(f'no {CONFIG_FILE} in {directory}: not an avjax workdir or export')
  return ml_collections.ConfigDict(json.loads(config_file.read_text()))


def export_encoders(workdir, out_dir):
  """Writes each of the task's encoders as OUT/NAME/{params,config.json}."""
  from avjax import tasks  # Imported here: tasks import models, which are heavy.
  config = load_config(workdir)
  task = tasks.TASKS[config.task](config)
  params = restore_params(workdir)
  names = []
  for name, (_, input_key) in task.encoders().items():
    encoder_dir = as_path(out_dir) / name
    encoder_dir.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:  # Closing waits for the write.
      checkpointer.save(encoder_dir / 'params', params[name], force=True)
    export_config = ml_collections.ConfigDict(config.to_dict())
    export_config.export = dict(name=name, input_key=input_key)
    save_config(export_config, encoder_dir)
    names.append(name)
  return names


def load_encoder(directory, name='audio_encoder'):
  """Loads an exported encoder: returns `(apply, params)`.

  `apply(params, inputs) -> (features, aux)` is pure; `inputs` is the task's
  preprocessed feature named in the export's config (`config.export.input_key`),
  or a tuple of them where that key is a tuple (an encoder of several inputs).
  """
  from avjax import tasks
  encoder_dir = as_path(directory) / name
  config = load_config(encoder_dir)
  module, input_key = tasks.TASKS[config.task](config).encoders()[name]
  params = ocp.StandardCheckpointer().restore(encoder_dir / 'params')

  def apply(params, inputs):
    inputs = tuple(inputs) if isinstance(input_key, tuple) else (inputs,)
    return module.apply({'params': params}, *inputs)

  return apply, params
