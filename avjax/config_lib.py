"""Shared pieces of the `configs/*.py` files: strict preset parsing, trainer defaults."""

import ml_collections


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
  config.total_steps = 1000
  config.log_every = 50
  config.eval_every = 500
  config.eval_batches = 4
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  config.init_from = ''  # Another run's workdir to start from.
  config.dtype = 'float32'  # Compute dtype; parameters stay float32.
  config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))
  config.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', learning_rate=1e-3, warmup_steps=100, schedule='cosine',
      weight_decay=0.0, grad_clip=1.0, momentum=0.9))
  config.data = ml_collections.ConfigDict(dict(
      name='avsynth', config='heads', data_dir='', train_split='train',
      eval_split='validation', num_workers=2, prefetch_buffer=4))
  # Linear probe of the audio encoder at each eval (avjax.evaluate.linear_probe);
  # labels=() turns it off.
  config.probe = ml_collections.ConfigDict(dict(labels=('emotion',), num_examples=128))
  return config


def make_tiny(config, data_config):
  """The trainer side of every `tiny` preset: a few steps on a tiny dataset, in seconds."""
  config.data.config = data_config
  config.data.num_workers = 0
  config.update(batch_size=8, total_steps=6, log_every=2, eval_every=3, eval_batches=1,
                checkpoint_every=3)
