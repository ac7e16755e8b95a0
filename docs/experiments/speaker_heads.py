r"""The speaker suite's `both` and `disentangle` with two-layer heads (hidden 64), seed 0.

  python docs/experiments/speaker_heads.py /tmp/avjax/speaker_heads

An experiment of docs/speaker.md, not part of the package: the default heads are one
64 x 64 projection each of the same trunk features, which linear probes cannot tell
apart; the paper's heads have a hidden layer (`model.head_hidden`, 512 in `paper`).
"""

import os
import sys

from avjax import config_lib
from avjax.evaluate import speaker

CONFIG = '''from avjax import config_lib


def get_config(arg=None):
  config = config_lib.load('disentangle', arg, {configs!r})
  config.model.head_hidden = 64
  return config
'''

if __name__ == '__main__':
  workdir = sys.argv[1]
  configs = os.path.join(workdir, 'configs')
  os.makedirs(configs, exist_ok=True)
  with open(os.path.join(configs, 'disentangle.py'), 'w') as f:
    f.write(CONFIG.format(configs=config_lib.configs_dir()))
  config = speaker.get_config()
  config.configs_dir = configs
  config.methods, config.finetune_from, config.label_fractions = ('both', 'disentangle'), (), ()
  speaker.run(config, os.path.join(workdir, 'suite'))
