r"""aot: Arrow of Time, is the audio played forwards or backwards?

  python -m avjax.main --config=configs/aot.py --workdir=/tmp/aot
  python -m avjax.main --config=configs/aot.py:tiny --workdir=/tmp/aot_tiny
  python -m avjax.main --config=configs/aot.py:accel --workdir=/tmp/aot_accel

The audio encoder is recon's (`config.model.audio` comes from configs/recon.py),
so the exported `audio_encoder`s of the two are interchangeable; `accel` takes
recon's accel encoder.
"""

import ml_collections

from avjax import config_lib
from avjax.configs import recon


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, tiny=False, accel=False, data='avsynth')
  config = config_lib.trainer_defaults()
  config.task = 'aot'
  config.data.config = 'heads'
  # 0.33 CPU s a step (0.23 compute + 0.1 data); 2.0-2.6 steps/s on the 2-core dev CPU
  # shared with other jobs: about 8 minutes. Validation accuracy passes 0.94 by step 250.
  config.batch_size = 32
  config.total_steps = 1000
  config.log_every = 50
  config.eval_every = 250
  config.checkpoint_every = 250

  # ---- model and task blocks (owned by avjax/tasks/aot.py) ----
  config.aot = ml_collections.ConfigDict(dict(
      num_frames=20,  # Frames per example (0.8 s), cropped at random.
      hidden=128,     # Width of the head's hidden layer.
  ))
  config.model = ml_collections.ConfigDict(dict(
      audio=recon.get_config(f'tiny={arg.tiny},accel={arg.accel}').model.audio))
  # ---- end of model and task blocks ----

  if arg.accel:
    config.total_steps = 20_000
    config_lib.make_accel(config, per_device_batch_size=2048, remat=False)
  if arg.tiny:
    config_lib.make_tiny(config, 'heads_tiny')
    config.aot.num_frames = 8
    config.aot.hidden = 32
  config_lib.use_dataset(config, arg.data, needs=('audio',))
  return config
