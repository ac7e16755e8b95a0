r"""disentangle: speaker and content embeddings from faces and voices, without labels.

  python -m avjax.main --config=configs/disentangle.py --workdir=/tmp/disentangle
  python -m avjax.main --config=configs/disentangle.py:variant=identity --workdir=/tmp/dis_id
  python -m avjax.main --config=configs/disentangle.py:tiny --workdir=/tmp/disentangle_tiny
  python -m avjax.main --config=configs/disentangle.py:paper --workdir=gs://bucket/disentangle
  python -m avjax.main --config=configs/disentangle.py:accel --workdir=/tmp/disentangle_accel

Nagrani, Chung, Albanie & Zisserman (2020) on avsynth talking heads
(avjax/tasks/disentangle.py). `variant` picks the losses, all on the same
shared trunks: `content` (multi-way sync only), `identity` (cross-track
face-voice matching only), `both`, or `disentangle` (both plus the confusion
losses; the default). The exported `speaker_encoder` takes
`disentangle.log_mel_features` frames [B, 4 T, 40] and gives identity
embeddings per step (time-average them to verify speakers). `accel`: the
`paper` model with its 96-wide first convs at 128, bf16, on one 80 GB GPU per
device (`config_lib.make_accel`).
"""

import ml_collections

from avjax import config_lib

# (content, identity, confusion) loss weights of each variant.
VARIANTS = {
    'content': (1.0, 0.0, 0.0),
    'identity': (0.0, 1.0, 0.0),
    'both': (1.0, 1.0, 0.0),
    'disentangle': (1.0, 1.0, 0.5),
}


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, tiny=False, paper=False, accel=False,
                              variant='disentangle', data='avsynth')
  if arg.variant not in VARIANTS:
    raise ValueError(f'unknown variant {arg.variant!r}; known: {sorted(VARIANTS)}')
  config = config_lib.trainer_defaults()
  config.task = 'disentangle'
  config.data.config = 'heads'
  config.probe.labels = ()  # The linear probe reads an `audio_encoder`; this task has none.
  # Default: sized for the speaker suite's hour on a 2-core CPU. It trains at
  # 2.7-4.8 steps/s there, 3.5-6 min for 1000 steps (2026-12-05: the identity loss
  # below ln 16 - 0.2 by step 300 in `both` and `disentangle`, seeds 0-2; docs/speaker.md).
  # Batch 16 of 144 train tracks of 48 speakers: 0.7 same-track and 1.7 other-track
  # same-speaker pairs per batch, left out of the identity softmax (mask_same_*).
  config.batch_size = 16
  config.total_steps = 1000
  config.log_every = 25
  config.eval_every = 250
  config.checkpoint_every = 250
  config.optimizer.update(learning_rate=1e-3, warmup_steps=50)

  # ---- model and task blocks (owned by avjax/tasks/disentangle.py) ----
  content, identity, confusion = VARIANTS[arg.variant]
  config.disentangle = ml_collections.ConfigDict(dict(
      variant=arg.variant,   # For the record; the weights below are what counts.
      window_frames=10,      # 0.4 s of a 2 s clip: 10 video steps, 40 mel frames.
      identity_frames=5,     # The other-time face window: the first conv's 5 frames.
      frame_downsample=2,    # 64x64 frames averaged down to 32x32.
      content_weight=content,
      identity_weight=identity,
      confusion_weight=confusion,  # Assumed (not in METHODS.md).
      # The confusion weight ramps in once the identity loss is this far below chance
      # (nats): from confusion_start to confusion_start + confusion_ramp.
      confusion_start=0.1,
      confusion_ramp=0.2,
      # What each stream must not carry (tasks/disentangle.py): content_target 'sync'
      # (no labels) or 'viseme' (oracle: avsynth's labels); identity_target 'clip' (no
      # labels), 'track' or 'speaker' (the dataset's ids).
      content_target='sync',
      identity_target='clip',
      adversary_weight=1.0,  # Trains only the adversaries (stop_gradient).
      mask_same_track=True,  # Other clips of a track are not identity negatives.
      # Nor other clips of a speaker, where the data names one: weak supervision that
      # gives avsynth's 48 speakers the paper's regime (VoxCeleb2's 5,994: next to none).
      mask_same_speaker=True,
      num_tracks=0,  # identity_target='track' classes; 0: the avsynth preset's train tracks.
  ))
  config.model = ml_collections.ConfigDict(dict(  # avjax.models.twostream
      audio=dict(features=(16, 32, 32, 32, 32, 64)),  # AudioTrunk conv1 .. conv6.
      face=dict(features=(16, 32, 32, 32, 32, 64),    # FaceTrunk conv1 .. conv6.
                kernel=(5, 7, 7),                      # The first, 3D, conv over 5 frames.
                pool=False),                           # Keeps an 8x8 grid of 32x32 frames.
      embedding=64,  # Both heads of both streams.
      head_hidden=0,  # 0: each head one 1x1 projection.
  ))
  # ---- end of model and task blocks ----

  if arg.paper or arg.accel:
    # The public trainer (joonson/syncnet_trainer): widths, 1024-d two-layer heads,
    # SGD momentum 0.9, weight decay 1e-5, lr 1e-3 (it decays x0.95 per epoch; cosine
    # here). Batch size, steps and window length assumed for an accelerator.
    config.batch_size = 64
    config.total_steps = 100_000
    config.eval_every = config.checkpoint_every = 5000
    config.optimizer.update(name='sgd', learning_rate=1e-3, momentum=0.9, weight_decay=1e-5,
                            warmup_steps=1000)
    config.disentangle.update(window_frames=40, frame_downsample=1)
    config.model.audio.features = (96, 256, 384, 256, 256, 512)
    config.model.face.update(features=(96, 256, 256, 256, 256, 512), pool=True)
    config.model.update(embedding=1024, head_hidden=512)
  if arg.accel:
    config.model.audio.features = (128, 256, 384, 256, 256, 512)  # Multiples of 128.
    config.model.face.features = (128, 256, 256, 256, 256, 512)
    # 256 clips (the identity loss's negatives) keep too much for the backward pass
    # without remat (`python -m avjax.bench --config=configs/disentangle.py:accel --trace_only`).
    config_lib.make_accel(config, per_device_batch_size=256, remat=True)
  if arg.tiny:
    config_lib.make_tiny(config, 'heads_tiny')
    config.disentangle.update(window_frames=10, frame_downsample=2)  # 1 s clips of 32x32.
    config.model.audio.features = (4, 8, 8, 8, 8, 16)
    config.model.face.features = (4, 8, 8, 8, 8, 16)
    config.model.embedding = 16
  config_lib.use_dataset(config, arg.data, needs=('audio', 'video', 'track'))
  return config
