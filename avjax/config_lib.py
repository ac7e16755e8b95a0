"""Shared pieces of the `configs/*.py` files: strict preset parsing, trainer defaults,
loading one by name."""

import importlib.util
import os

import ml_collections

from avjax import configs


def parse_arg(arg, **defaults):
  """Parses a config argument such as 'tiny' or 'tiny,data=lrw' strictly.

  A bare word sets a boolean field to True; `key=value` sets a field, cast to
  the type of its default. Unknown keys and bad values raise ValueError.
  """
  parsed = dict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, sep, value = item.partition('=')
    if key not in defaults:
      raise ValueError(f'unknown config argument {key!r} in {arg!r}; known: {sorted(defaults)}')
    default = defaults[key]
    if not sep:
      if not isinstance(default, bool):
        raise ValueError(f'config argument {key!r} needs a value ({key}=...)')
      parsed[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ('true', 'false'):
        raise ValueError(f'config argument {key}={value!r} is not true/false')
      parsed[key] = value.lower() == 'true'
    else:
      parsed[key] = type(default)(value)
  return ml_collections.ConfigDict(parsed)


def trainer_defaults():
  """Fields every runnable config has; a config overrides what it needs."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.batch_size = 32  # Global, split over all devices and hosts.
  config.per_device_batch_size = 0  # > 0: the global batch is this times the devices.
  config.total_steps = 1000
  config.log_every = 50
  config.eval_every = 500
  config.eval_batches = 4
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  config.init_from = ''  # Another run's workdir to start from.
  # JAX's persistent compilation cache, which a restart reads its compiled programs from:
  # '' = $JAX_COMPILATION_CACHE_DIR if set, else WORKDIR/jax_cache; 'none' = off.
  config.compilation_cache_dir = ''
  # Compute dtype of convolutions and matmuls ('bfloat16' on GPUs and TPUs); parameters,
  # optimizer state, losses and metrics stay float32.
  config.dtype = 'float32'
  # Rematerialise each task's largest blocks (models' `remat`): the backward pass
  # recomputes their activations instead of storing them, about 1/3 more compute.
  config.remat = False
  # Device mesh: both axes split the batch; `fsdp` also splits each parameter and its
  # optimizer state (parallel.fsdp_spec); data=-1 takes the devices fsdp leaves.
  config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))
  config.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', learning_rate=1e-3, warmup_steps=100, schedule='cosine',
      weight_decay=0.0, grad_clip=1.0, momentum=0.9))
  # num_workers: Grain worker processes (-1: sized from the host's CPUs and memory,
  # `pipeline.auto_workers`; 0: none); prefetch_buffer: batches each keeps ready;
  # crops_per_clip: training rows preprocessed from each record read, next to each
  # other in a batch (`pipeline.train_dataset`): less host CPU per row, correlated rows.
  config.data = ml_collections.ConfigDict(dict(
      name='avsynth', config='heads', data_dir='', manual_dir='', train_split='train',
      eval_split='validation', num_workers=2, prefetch_buffer=2, crops_per_clip=1,
      # Train on a class-stratified fraction of train_split, by feature label_key.
      label_fraction=1.0, label_key=''))
  # Linear probe of the audio encoder at each eval (avjax.evaluate.linear_probe);
  # labels=() turns it off.
  config.probe = ml_collections.ConfigDict(dict(labels=('emotion',), num_examples=128))
  return config


# Real datasets (avjax/data/builders), each with the label that the training-time
# linear probe reads from it.
DATASETS = {'lrw': 'word', 'voxceleb1': 'speaker', 'voxceleb2': 'speaker',
            'crema_d_av': 'emotion', 'ravdess': 'emotion', 'ucf101_av': 'action',
            'video_folder': 'label'}


def use_dataset(config, name, needs=('audio',)):
  """Points `config.data` at dataset `name` (its default builder config), after
  checking that it has the features `needs`; 'avsynth' leaves the config as it is.

  A config's `data=NAME` argument calls this, e.g. `configs/recon.py:data=lrw`;
  `--config.data.config=s128` then picks another of the dataset's configs.
  """
  if name == 'avsynth':
    return
  if name not in DATASETS:
    raise ValueError(f'unknown dataset {name!r}; known: {["avsynth", *DATASETS]}')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (configs load fast)
  import avjax.data.builders  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  features = tfds.builder(name).info.features
  missing = [k for k in needs if k not in features]
  if missing:
    raise ValueError(f'task {config.task} needs the features {missing}, which dataset '
                     f'{name} ({tfds.builder(name).builder_config.name}) does not have')
  config.data.update(name=name, config='')
  if config.probe.labels:
    config.probe.labels = (DATASETS[name],)


def make_tiny(config, data_config):
  """The trainer side of every `tiny` preset: a few steps on a tiny dataset, in seconds."""
  config.data.config = data_config
  config.data.num_workers = 0
  config.update(batch_size=8, total_steps=6, log_every=2, eval_every=3, eval_batches=1,
                checkpoint_every=3)


def make_accel(config, per_device_batch_size, remat, crops_per_clip=1):
  """The trainer side of every `accel` preset: sized for one 80 GB GPU per device.

  bfloat16 compute (parameters, optimizer state, loss and metrics stay
  float32); `remat` where the activations of `per_device_batch_size` examples
  would not fit otherwise; the global batch is that times the mesh's devices.
  The mesh is data-parallel (`data=-1, fsdp=1`): every model here, with its
  Adam state, fits one device many times over. `--config.mesh.fsdp=N` splits
  parameters and optimizer state over N devices, worth it only for widths whose
  state approaches a device's memory. Grain workers sized from the process's CPUs
  and bounded by memory (`pipeline.auto_workers`), one batch ready each, and
  `crops_per_clip` training rows from each record read, for a task whose loss treats
  rows alone (no other row of the batch as a negative); fast steps log every 100 and
  evaluate and checkpoint every 2000.
  """
  config.update(dtype='bfloat16', remat=remat, per_device_batch_size=per_device_batch_size,
                log_every=100, eval_every=2000, checkpoint_every=2000)
  config.mesh.update(data=-1, fsdp=1)
  config.data.update(num_workers=-1, prefetch_buffer=1, crops_per_clip=crops_per_clip)


def configs_dir():
  """The folder of the runnable configs: the checkout's configs/ (an editable install), or
  the installed package's avjax/configs."""
  return os.path.dirname(configs.__file__)


def resolve(flag_value):
  """`--config`'s 'PATH[:ARG]' with PATH as given if it exists, else, for a PATH
  'configs/NAME.py', `configs_dir()`'s NAME.py: an installed avjax runs
  `--config=configs/recon.py` from any folder. Raises ValueError if neither exists."""
  path, sep, arg = flag_value.partition(':')
  if os.path.isfile(path):
    return flag_value
  folder, name = os.path.split(os.path.normpath(path))
  installed = os.path.join(configs_dir(), name)
  if folder == 'configs' and os.path.isfile(installed):
    return installed + sep + arg
  raise ValueError(f'no config file {path} in {os.getcwd()}'
                   + (f' or in {configs_dir()}' if folder == 'configs' else ''))


def load(name, arg=None, directory=''):
  """`get_config(arg)` of DIRECTORY/NAME.py ('' = `configs_dir()`)."""
  path = os.path.join(directory or configs_dir(), f'{name}.py')
  if not os.path.exists(path):
    raise ValueError(f'no config {name!r}: {path} does not exist')
  spec = importlib.util.spec_from_file_location(f'avjax_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
