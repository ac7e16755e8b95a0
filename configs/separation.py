r"""separation: split a mixture of two talkers into the on-screen and the off-screen one.

  python -m avjax.main --config=configs/separation.py --workdir=/tmp/separation
  python -m avjax.main --config=configs/separation.py:tiny --workdir=/tmp/separation_tiny
  python -m avjax.main --config=configs/separation.py --workdir=/tmp/separation_pit \
      --config.separation.mode=pit
  python -m avjax.main --config=configs/separation.py:paper --workdir=gs://bucket/separation
  python -m avjax.main --config=configs/separation.py:accel --workdir=/tmp/separation_accel

From a pretrained sync network (Owens & Efros 2018's full model):

  python -m avjax.main --config=configs/sync.py --workdir=/tmp/sync
  python -m avjax.export --workdir=/tmp/sync --out=/tmp/sync_export
  python -m avjax.main --config=configs/separation.py --workdir=/tmp/separation_sync \
      --config.separation.init_sync=/tmp/sync_export

`config.model.sync` is configs/sync.py's model block of the same preset, so an
export of that preset loads; a sync run with other widths needs its own block.
"""

import ml_collections

from avjax import config_lib
from avjax.configs import sync


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, tiny=False, paper=False, accel=False, data='avsynth')
  sync_config = sync.get_config(
      ','.join(p for p in ('paper', 'accel', 'tiny') if arg[p]) or None)
  config = config_lib.trainer_defaults()
  config.task = 'separation'
  config.data.config = 'heads'
  config.probe.labels = ()  # The linear probe reads an `audio_encoder`; separation has none.
  # Default: sized for the sync suite's hour on a 2-core CPU. Masks trained on SI-SDR: the
  # audio-only PIT u-net reached +2.9 / +4.1 / +4.3 dB SI-SDR over the mixture at steps
  # 100 / 200 / 300 of a 300-step run (validation, 2026-12-05); a 200-step run, +2.96 on
  # the sync suite's test mixtures. Owens's L1 loss kept it below the mixture: -0.1 dB
  # as masks, -1.9 on log-magnitudes with the mixture's phase (200 steps), -16.6 with
  # its own phase (60 steps, docs/sync.md's earlier table).
  config.batch_size = 8
  config.total_steps = 300
  config.log_every = 20
  config.eval_every = 100
  config.checkpoint_every = 100
  config.optimizer.update(learning_rate=1e-3, warmup_steps=10)

  # ---- model and task blocks (owned by avjax/tasks/separation.py) ----
  config.separation = ml_collections.ConfigDict(dict(
      mode='onoff',       # 'onoff': sync-conditioned, head 0 on-screen; 'pit': audio only.
      window_frames=32,   # 1.28 s of a 2 s clip: 80 STFT frames.
      frame_stride=sync_config.sync.frame_stride,  # The rate the sync network sees frames at,
      frame_downsample=sync_config.sync.frame_downsample,  # and their size.
      rms=0.1,            # Every clip RMS-normalised to this before mixing (Owens).
      frame_ms=64.0,      # STFT window (Owens's 64 ms): 1024 samples at 16 kHz.
      hop_ms=16.0,        # STFT hop (Owens's 16 ms): 256 samples.
      n_fft=1024,         # F = n_fft / 2 bins; the Nyquist bin is dropped.
      # Log-magnitudes (dB) mapped to [-1, 1], clipped. Owens: -100 to 80 at his signal
      # scale; heads at RMS 0.1 measure -48 to 29 dB (0.1st-99.9th percentiles), max 38.5.
      db_range=(-70.0, 50.0),
      # 'mask': heads are ratio masks of the mixture's magnitude, its phase kept; 'spectrogram':
      # heads are log-magnitude and phase (Owens's, the paper preset's).
      output='mask',
      # 'si_sdr': minus each head's SI-SDR; 'spectrogram': L1 on normalised log-magnitude
      # (weight 1) and phase / pi (phase_weight, 'spectrogram' outputs), Owens's.
      loss='si_sdr',
      phase_weight=0.01,
      init_sync='',       # A `python -m avjax.export` directory of a sync run ('onoff').
  ))
  config.model = ml_collections.ConfigDict(dict(
      unet=dict(  # avjax.models.unet.SpectrogramUNet
          features=(8, 16, 32, 64, 64, 64),
          time_strides=(1, 1, 2, 2, 2, 2),  # T divisible by 16; F = 512 by 2^6.
          cond_levels=(3, 4, 5),            # Sync features join here ('onoff'), as Owens's.
      ),
      sync=sync_config.model,  # avjax.models.fusion.SyncNet, configs/sync.py's block.
  ))
  # ---- end of model and task blocks ----

  if arg.paper or arg.accel:
    # Owens's u-net, 2.135 s windows and Adam 1e-4 (grad clip 10, weight decay 1e-5;
    # his lr drops 10x at 120k steps, here a cosine). avsynth's heads clips (2 s) are
    # shorter than his window: the paper preset reads the 4 s scenes clips, on which
    # configs/sync.py's paper preset trains. Batch size assumed for an accelerator.
    config.data.config = 'scenes'
    config.batch_size = 32
    config.total_steps = 160_000
    config.eval_every = config.checkpoint_every = 5000
    config.optimizer.update(learning_rate=1e-4, warmup_steps=1000, grad_clip=10.0,
                            weight_decay=1e-5)
    config.separation.update(
        output='spectrogram', loss='spectrogram',
        window_frames=53,  # 2.12 s, the whole frames nearest 2.135 s: 128 STFT frames.
        n_fft=2048)        # 1024 bins, as Owens's input (his FFT is 2048 too).
    config.model.unet.update(  # avjax.models.unet.PUBLISHED_FEATURES / _TIME_STRIDES.
        features=(64, 128, 256, 512, 512, 512, 512, 512, 512),
        time_strides=(1, 1, 2, 2, 2, 2, 2, 2, 2))
  if arg.accel:  # Owens's u-net and configs/sync.py's accel network.
    config_lib.make_accel(config, per_device_batch_size=64, remat=False)
  if arg.tiny:
    config_lib.make_tiny(config, 'heads_tiny')
    config.separation.window_frames = 16  # 0.64 s of a 1 s clip: 40 STFT frames.
    config.model.unet.update(features=(8, 8, 16, 16, 16), time_strides=(1, 1, 2, 2, 2))
  config_lib.use_dataset(config, arg.data, needs=('audio', 'video'))
  return config
