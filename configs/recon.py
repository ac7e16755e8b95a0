r"""recon: reconstruct a talking face from one still frame and the audio.

  python -m avjax.main --config=configs/recon.py --workdir=/tmp/recon
  python -m avjax.main --config=configs/recon.py:tiny --workdir=/tmp/recon_tiny
  python -m avjax.main --config=configs/recon.py:paper --workdir=gs://bucket/recon
  python -m avjax.main --config=configs/recon.py:accel --workdir=/tmp/recon_accel

`accel`: the `paper` model at tensor-core widths, bf16, on one 80 GB GPU per
device (`config_lib.make_accel`); `accel,data=lrw` on a real dataset.
"""

import ml_collections

from avjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, tiny=False, paper=False, accel=False, data='avsynth')
  config = config_lib.trainer_defaults()
  config.task = 'recon'
  config.data.config = 'heads'
  # Default: sized for a 2-core CPU (see README for the measured run): windows of
  # 15 frames (0.6 s, a word or two: a pitch accent and its context, where 5 frames
  # were 0.2 s), each step about 2.5x the cost of a 5-frame one (measured: 0.050,
  # 0.096, 0.127, 0.172 CPU-s a step at 5, 10, 15, 20 frames), so 2,000 steps, not
  # 3,000: about 6 minutes of training.
  config.batch_size = 16
  config.total_steps = 2000
  config.eval_every = 500
  config.checkpoint_every = 500
  config.log_every = 100
  config.optimizer.update(learning_rate=2e-3, warmup_steps=50)

  # ---- model and task blocks (owned by avjax/tasks/recon.py) ----
  config.recon = ml_collections.ConfigDict(dict(
      num_frames=15,        # Frames per training window (its audio too), cropped at random.
      # The still the generator animates: 'neutral' (the clip's neutral reference frame,
      # `neutral_frame`), 'other_clip' (a frame of another clip of the same track or
      # speaker), 'same_clip' (a frame of the clip: it already shows the clip's
      # expression). See avjax/tasks/recon.py.
      still='neutral',
      mouth_weight=5.0,     # Extra L1 weight inside the mouth box.
      # Extra L1 weight inside the eyes-and-brows box. 0, measured (2,000 steps of 15
      # frames): 2 or 5 lowered the eyes' L1 by at most 0.8% and raised the mouth's by
      # 3-7%; uniform weights (both 0) raised the mouth's by 11%.
      eyes_weight=0.0,
      align_faces=True,     # Steady each frame on its mouth box (needs `mouth_box`).
      face_crop=32,         # Square crop around the face, by the mouth box; 0: whole frame.
      # Without `mouth_box` / `eyes_box` (real, face-centred clips): these (y0, x0, y1,
      # x1) shares of the frame (assumed: a face crop as LRW's, the mouth in the lower
      # middle, eyes and brows in a band above the middle; avsynth's 32-pixel face crop
      # has them at about (0.56, 0.32, 0.83, 0.68) and (0.11, 0.22, 0.55, 0.82)).
      mouth_region=(0.55, 0.25, 0.95, 0.75),
      eyes_region=(0.15, 0.2, 0.5, 0.8),
  ))
  config.model = ml_collections.ConfigDict(dict(
      audio=dict(           # avjax.models.audio.AudioEncoder
          context=160,                # Extra samples each side of a frame's 640 (10 ms).
          conv_features=(32, 64, 128, 128),
          kernels=(80, 4, 4, 4),      # 5 ms first kernel at 16 kHz.
          strides=(16, 2, 2, 2),      # 1 ms first stride.
          gru_features=128,
          bidirectional=True),
      identity=dict(features=(16, 32, 64, 128)),   # H / 16 bottleneck.
      decoder=dict(features=(64, 32, 16, 8)),  # Widths from H / 16 up to H / 2.
      noise_dim=10,
  ))
  # ---- end of model and task blocks ----

  if arg.paper or arg.accel:
    config.batch_size = 256
    config.total_steps = 100_000
    config.eval_every = config.checkpoint_every = 5000
    config.optimizer.update(learning_rate=1e-3, warmup_steps=2000)
    # Published scale (assumed: Vougioukas-sized generator, LRW's 29 frames).
    # Five levels: a 4x4 bottleneck on 128-pixel face crops, 1x1 on avsynth's 32.
    config.recon.num_frames = 29
    config.model.audio.update(conv_features=(64, 128, 256, 512), gru_features=256)
    config.model.identity.features = (64, 128, 256, 512, 512)
    config.model.decoder.features = (512, 256, 128, 64, 32)
  if arg.accel:
    # Every width a multiple of 128 (tensor-core tiles; the paper's thin 32-64 levels
    # are memory-bound), the GRU included.
    config.model.audio.update(conv_features=(128, 256, 512, 512), gru_features=512)
    config.model.identity.features = (128, 256, 512, 512, 512)
    config.model.decoder.features = (512, 512, 256, 128, 128)
    # 512 clips of avsynth's 32-pixel face crops fit without remat; a real dataset's
    # whole frames (64 pixels at its default s64) need it (`python -m avjax.bench
    # --config=configs/recon.py:accel,data=lrw --trace_only` sizes them). Four crops of each
    # clip read: a quarter of the host's reading and decoding per example (the L1 loss
    # treats each row alone; docs/performance.md gives the host cores a device needs).
    config_lib.make_accel(config, per_device_batch_size=512, remat=arg.data != 'avsynth',
                          crops_per_clip=4)
  if arg.tiny:
    config_lib.make_tiny(config, 'heads_tiny')
    config.recon.update(num_frames=5, face_crop=0)  # heads_tiny frames are 32x32.
    config.model.audio.update(conv_features=(16, 32, 32), kernels=(80, 4, 4),
                              strides=(16, 2, 2), gru_features=32)
    config.model.identity.features = (8, 16, 32)  # 32x32 frames -> 4x4.
    config.model.decoder.features = (32, 16, 8)
    config.model.noise_dim = 4
  config_lib.use_dataset(config, arg.data, needs=('audio', 'video'))
  if arg.data != 'avsynth':  # Face-centred clips without boxes: whole frames.
    config.recon.update(align_faces=False, face_crop=0, still=real_still(arg.data))
  return config


def real_still(name):
  """The still on real dataset `name`: a frame of another clip of the same track or
  speaker where it names them; else (LRW, UCF-101, a folder) the clip's own, the only
  one it has (as Shukla et al. on LRW)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (configs load fast)
  import avjax.data.builders  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  features = tfds.builder(name).info.features
  return 'other_clip' if {'speaker', 'track'} & set(features) else 'same_clip'
