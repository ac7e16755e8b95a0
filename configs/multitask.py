r"""multitask: recon + Arrow of Time + Odd One Out on one shared audio encoder.

  python -m avjax.main --config=configs/multitask.py --workdir=/tmp/multitask
  python -m avjax.main --config=configs/multitask.py:tiny --workdir=/tmp/multitask_tiny
  python -m avjax.main --config=configs/multitask.py:accel --workdir=/tmp/multitask_accel

The model and task blocks are those of configs/recon.py, aot.py and odd.py, so
the shared `audio_encoder` has the shape of each single-task one. A task
weighted 0 still costs its compute. `accel` is recon's accel preset (model,
batch, speed options) with the aot and odd heads.
"""

import ml_collections

from avjax import config_lib
from avjax.configs import aot
from avjax.configs import odd
from avjax.configs import recon


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, tiny=False, accel=False, data='avsynth')
  preset = f'tiny={arg.tiny},accel={arg.accel},data={arg.data}'
  config = recon.get_config(preset)  # Trainer defaults, data, recon and model blocks.
  config.task = 'multitask'
  config.aot = aot.get_config(preset).aot
  config.odd = odd.get_config(preset).odd
  config.multitask = ml_collections.ConfigDict(dict(
      weights=dict(recon=1.0, aot=0.5, odd=0.5),  # Loss = sum of weight * task loss.
  ))
  if not arg.tiny and not arg.accel:
    # The clips recon alone sees (3,000 x 16) at batch 32; about 2.5 steps/s on
    # the 2-core dev CPU, so 10 minutes.
    config.batch_size = 32
    config.total_steps = 1500
    config.eval_every = config.checkpoint_every = 500
  return config
