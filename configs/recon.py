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
  # Default: sized for a 2-core CPU (see README for the measured run). Many
  # small steps beat few large ones here.
  config.batch_size = 16
  config.total_steps = 3000
  config.eval_every = 500
  config.checkpoint_every = 500
  config.log_every = 100
  config.optimizer.update(learning_rate=2e-3, warmup_steps=50)

  # ---- model and task blocks (owned by avjax/tasks/recon.py) ----
  config.recon = ml_collections.ConfigDict(dict(
      num_frames=5,         # Frames per training example, cropped at random.
      mouth_weight=5.0,     # Extra L1 weight inside the mouth box.
      align_faces=True,     # Steady each frame on its mouth box (needs `mouth_box`).
      face_crop=32,         # Square crop around the face, by the mouth box; 0: whole frame.
      # Without `mouth_box` (real, face-centred clips): this (y0, x0, y1, x1) share of
      # the frame (assumed: the lower middle of a face crop, as LRW's).
      mouth_region=(0.55, 0.25, 0.95, 0.75),
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
    # --config=configs/recon.py:accel,data=lrw --trace_only` sizes them).
    config_lib.make_accel(config, per_device_batch_size=512, remat=arg.data != 'avsynth')
  if arg.tiny:
    config_lib.make_tiny(config, 'heads_tiny')
    config.recon.update(num_frames=5, face_crop=0)  # heads_tiny frames are 32x32.
    config.model.audio.update(conv_features=(16, 32, 32), kernels=(80, 4, 4),
                              strides=(16, 2, 2), gru_features=32)
    config.model.identity.features = (8, 16, 32)  # 32x32 frames -> 4x4.
    config.model.decoder.features = (32, 16, 8)
    config.model.noise_dim = 4
  config_lib.use_dataset(config, arg.data, needs=('audio', 'video'))
  if arg.data != 'avsynth':  # Face-centred clips without mouth boxes: whole frames.
    config.recon.update(align_faces=False, face_crop=0)
  return config
