r"""speaker: supervised speaker classification with the disentangle audio stream.

  python -m avjax.main --config=configs/speaker.py --workdir=/tmp/speaker
  python -m avjax.main --config=configs/speaker.py:tiny --workdir=/tmp/speaker_tiny
  python -m avjax.main --config=configs/speaker.py:accel --workdir=/tmp/speaker_accel

Fine-tuned from a self-supervised disentangle run, on a tenth of the labels:

  python -m avjax.main --config=configs/disentangle.py --workdir=/tmp/disentangle
  python -m avjax.export --workdir=/tmp/disentangle --out=/tmp/disentangle_export
  python -m avjax.main --config=configs/speaker.py --workdir=/tmp/speaker_ssl \
      --config.speaker.init_from=/tmp/disentangle_export --config.data.label_fraction=0.1

`config.model` is configs/disentangle.py's model block of the same preset, so
an export of that preset loads (avjax/tasks/speaker.py). The label fraction is
stratified by `speaker` (`config.data.label_key`).
"""

import ml_collections

from avjax import config_lib
from avjax.configs import disentangle


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, tiny=False, paper=False, accel=False, data='avsynth')
  preset = ','.join(p for p in ('paper', 'accel', 'tiny') if arg[p]) or None
  disentangle_config = disentangle.get_config(preset)
  config = config_lib.trainer_defaults()
  config.task = 'speaker'
  config.data.config = 'heads'
  config.data.label_key = 'speaker'
  config.probe.labels = ()  # The linear probe reads an `audio_encoder`; this task has none.
  # Default: sized for the speaker suite's hour on a 2-core CPU: about 2.2 min a run
  # there, compiling and evaluating included (2026-11-23).
  config.batch_size = 32
  config.total_steps = 200
  config.log_every = 25
  config.eval_every = 100
  config.checkpoint_every = 100
  config.optimizer.update(learning_rate=1e-3, warmup_steps=30)

  # ---- model and task blocks (owned by avjax/tasks/speaker.py) ----
  config.speaker = ml_collections.ConfigDict(dict(
      crop_frames=20,   # 0.8 s of log-mel frames per example, at a random start.
      num_speakers=0,   # Classes; 0: the avsynth preset's train speakers, or the dataset's.
      init_from='',     # A `python -m avjax.export` directory of a disentangle run.
  ))
  config.model = disentangle_config.model  # avjax.models.twostream; the face stream is unused.
  # ---- end of model and task blocks ----

  if arg.paper or arg.accel:
    config.batch_size = 64
    config.total_steps = 20_000
    config.eval_every = config.checkpoint_every = 1000
    config.optimizer.update(learning_rate=1e-3, warmup_steps=500)
  if arg.accel:  # configs/disentangle.py's accel audio stream.
    config_lib.make_accel(config, per_device_batch_size=1024, remat=False)
  if arg.tiny:
    config_lib.make_tiny(config, 'heads_tiny')
    config.speaker.crop_frames = 10  # Of a 1 s clip.
  config_lib.use_dataset(config, arg.data, needs=('audio', 'speaker'))
  return config
