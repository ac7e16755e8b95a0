r"""A ladder of networks from the hand-crafted sync detector up to the SyncNet.

  python docs/experiments/sync_ladder.py RUNG STEPS [LR [TRACKS [OTHERS [SEED]]]]
  python docs/experiments/sync_ladder.py score WORKDIR
  python docs/experiments/sync_ladder.py detector

An experiment of docs/sync.md, not part of the package: which part of the
SyncNet keeps it from learning the sync pretext on avsynth scenes, when the
hand-crafted detector reads the cue from the same frames? Every rung trains on
random windows of the prepared `scenes` train split, as configs/sync.py draws
them (every frame, 32 x 32, shifts of 0.52-1.4 windows), with the pair loss
(sigmoid, aligned vs shifted) and constant Adam (LR, default 1e-3); with
TRACKS > 2 shifted tracks per video (TRACKS - 1 of them) or OTHERS > 0 other
videos' aligned tracks, a softmax over them (which track is aligned). It
prints the validation pair accuracy on 384 fixed windows of the 96
validation scenes (one standard error about 0.025) beside the detector's on
the same windows. SEED (0) draws the initialisation and the training
windows; the validation windows stay. `score WORKDIR` prints the pretext
metrics of a sync run's newest checkpoint on the same validation windows;
`detector`, the detector's pair accuracy on them at coarser grids and time
steps (the resolution of a network's fusion).

Rungs, from the detector's read-out up to the SyncNet:
  correlator  fixed loudness and 4 x 4 cell motion, 10 steps of 160 ms; learnt
              per-step embeddings, centred in time, correlated, max over cells
  audio       the SyncNet's audio stream (learnt) in place of the loudness
  video       the SyncNet's video stream up to conv2 (learnt, cells averaged
              4 x 4) in place of the cell motion
  late        both streams learnt, correlated as the correlator (late fusion)
  early       the SyncNet of configs/sync.py's widths with Owens's choices
              (frames, concatenation, one logit; early fusion after conv2;
              global average pool)
  fused       the SyncNet's fusion output straight to a 1x1x1 logit map (its
              time mean averaged over space, or `_max`)
  deep        the SyncNet with both logits, `fused`'s and `early`'s, each with
              its loss (the model's `fusion_logit`): `deep_corr_diff` is
              configs/sync.py's default network
Suffixes: `_max`, the logit map's time mean max-pooled over space (not
averaged); `_prod`, the fusion's concatenation also holds the product of the
tiled audio features and a projection of the video's; `_diff`, the video
stream reads each frame's difference from the one before in place of the
frame; `_fd`, the frames and those differences (in the channels);
`_stopaudio`, the learnt audio stream kept at its random initialisation;
`_gate`, the fusion's audio only in a product with the video's features
(centred in time; no tiled audio channels); `_corr`, that product of the
video's projection centred in time too (the model's `fusion_correlate`);
`_ln`, every GroupNorm of the SyncNet (over an example's positions) a
LayerNorm over each position's channels.
"""

import functools
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from avjax import checkpoint
from avjax.configs import sync as sync_config
from avjax.data import ops
from avjax.data import pipeline
from avjax.evaluate import sync_detector
from avjax.models import fusion
from avjax.models import layers
from avjax.tasks import sync

STEPS_OF = 4  # Frames a time step of the correlators and the ladder's SyncNets (160 ms).


def loudness(audio, frames):
  """Audio [B, K, S] of `frames` frames -> log RMS [B, K, frames / STEPS_OF]."""
  spans = audio.reshape(audio.shape[:2] + (frames // STEPS_OF, -1))
  return 0.5 * jnp.log((spans ** 2).mean(-1) + 1e-8)


def cell_motion(video, grid=4):
  """Video [B, T, H, W, 3] -> log motion energy [B, T / STEPS_OF, grid * grid]."""
  b, t, h, w, _ = video.shape
  diff = jnp.abs(jnp.diff(video, axis=1, prepend=video[:, :1])).mean(-1)
  cells = diff.reshape(b, t // STEPS_OF, STEPS_OF, grid, h // grid, grid, w // grid)
  return jnp.log(cells.mean((2, 4, 6)).reshape(b, t // STEPS_OF, grid * grid) + 1e-4)


def centred(x, axis):
  return x - x.mean(axis, keepdims=True)


class Correlate(nn.Module):
  """Audio embeddings [B, K, T, D] and cell embeddings [B, T, C, D] -> logits [B, K]:
  their time-centred product summed over T and D, max over the cells, scaled."""

  @nn.compact
  def __call__(self, a, v):
    a, v = centred(a, 2), centred(v, 1)
    scores = jnp.einsum('bktd,btcd->bkc', a, v) / a.shape[2]
    scale = self.param('scale', nn.initializers.ones, ())
    bias = self.param('bias', nn.initializers.zeros, ())
    return scale * scores.max(-1) + bias


class Embed(nn.Module):
  """[..., T, F] -> [..., T, D]: a temporal conv (kernel 3) -> ReLU -> Dense."""
  features: int = 16

  @nn.compact
  def __call__(self, x):
    lead = x.shape[:-2]
    x = x.reshape((-1,) + x.shape[-2:])
    x = nn.relu(nn.Conv(self.features, (3,))(x))
    return nn.Dense(self.features)(x).reshape(lead + x.shape[-2:])


class ProductFusion(fusion.Fusion):
  """`fusion.Fusion` whose concatenation also holds the product of the tiled audio
  features with a 1x1x1 projection of the video's (a bilinear term); with `gate`, only
  that product, of the audio features centred in time, and the video: the audio
  enters through its interaction with the video alone (`fusion.Fusion`'s `correlate`
  centres the video's projection in time too)."""
  gate: bool = False

  @nn.compact
  def __call__(self, video, audio):
    b, t, h, w, _ = video.shape
    conv = functools.partial(layers.Conv, use_bias=False, dtype=self.dtype)
    a = conv(self.audio_features, (3,), name='audio_conv')(fusion.adaptive_max_pool(audio, t))
    a = fusion.NormReLU(dtype=self.dtype, name='audio_norm')(a)
    if self.gate:
      a = centred(a, 1)
    tiled = jnp.broadcast_to(a[:, :, None, None], (b, t, h, w, a.shape[-1]))
    product = conv(self.audio_features, (1, 1, 1), name='video_proj')(video) * tiled
    x = jnp.concatenate([video, product] if self.gate else [video, tiled, product], axis=-1)
    y = fusion.NormReLU(dtype=self.dtype, name='norm1')(
        conv(self.hidden, (1, 1, 1), name='conv1')(x))
    y = conv(self.features, (1, 1, 1), name='conv2')(y)
    shortcut = conv(self.features, (1, 1, 1), name='shortcut')(x)
    return fusion.NormReLU(dtype=self.dtype, name='norm2')(shortcut + y)


class ChannelNormReLU(nn.Module):
  """`fusion.NormReLU` with a LayerNorm over each position's channels in place of the
  GroupNorm over the example's positions: no mean over time and space is taken out."""
  dtype: object = None

  @nn.compact
  def __call__(self, x):
    return jax.nn.relu(nn.LayerNorm(dtype=self.dtype)(x))


def video_input(rung, video):
  """The frames (default), their differences from the frame before (`*_diff`; the
  first frame's: zeros), or both in the channels (`*_fd`)."""
  diff = fusion.frame_differences(video)
  if rung.endswith('_diff'):
    return diff
  if rung.endswith('_fd'):
    return jnp.concatenate([video, diff], axis=-1)
  return video


def video_cells(model, video):
  """Video [B, T, H, W, C] -> [B, T / STEPS_OF, 16, f2]: the SyncNet's video stream up to
  conv2 (its fusion point), averaged over a 4 x 4 grid of cells. Called inside a
  module's compact method, whose parameters these become."""
  _, x = fusion._video_stem(fusion.SyncNet(**model), video)
  f2 = model['video_features'][1]
  x = fusion.ResBlock(f2, (3, 3, 3), name='conv2_2')(
      fusion.ResBlock(f2, (3, 3, 3), name='conv2_1')(x))
  b, t, h, w, _ = x.shape
  return x.reshape(b, t, 4, h // 4, 4, w // 4, f2).mean((3, 5)).reshape(b, t, 16, f2)


class Ladder(nn.Module):
  """Logits [B, K] of video [B, T, H, W, 3] and audio [B, K, S] by the network `rung`."""
  rung: str
  model: dict

  @nn.compact
  def __call__(self, video, audio):
    b, k, _ = audio.shape
    t = video.shape[1] // STEPS_OF
    video = video_input(self.rung, video)
    if self.rung.startswith(('early', 'fused', 'deep')):
      _, aux = fusion.SyncNet(**self.model)(video, audio)
      fused = aux['fusion_cam'] if 'fusion_cam' in aux else nn.Dense(1)(aux['fused'])[..., 0]
      cams = {'fused': fused, 'early': aux['cam']}
      pool = lambda cam: cam.mean(2).max((2, 3)) if '_max' in self.rung else cam.mean((2, 3, 4))
      if self.rung.startswith('deep'):  # Both logits [2, B, K]: the fusion's, conv5's.
        return jnp.stack([pool(cams['fused']), pool(cams['early'])])
      return pool(cams[self.rung.split('_')[0]])
    if self.rung.startswith(('correlator', 'video')):
      a = loudness(audio, video.shape[1])[..., None]
    else:
      sound = fusion.AudioStream(self.model['audio_features'], self.model['audio_kernels'],
                                 self.model['audio_strides'], self.model['audio_pool'])(
                                     audio.reshape(b * k, -1))
      a = fusion.adaptive_max_pool(sound, t).reshape(b, k, t, -1)
      if '_stopaudio' in self.rung:  # The audio stream kept at its random initialisation.
        a = jax.lax.stop_gradient(a)
    if self.rung.startswith(('correlator', 'audio')):
      v = cell_motion(video)[..., None]
    else:
      v = video_cells(self.model, video)
    return Correlate()(Embed()(a), Embed()(v))


def coarse_detector(video, audio, grid=4, steps_of=STEPS_OF):
  """The detector's pair accuracy at a coarser resolution (`sync_detector.track_scores`'s
  `grid` and `steps_of`; video uint8 [N, T, H, W, 3], audio int16 [N, 2, S]); the
  correlators' by default."""
  return sync_detector.aligned_first(video, audio, grid=grid, steps_of=steps_of).mean()


def detector_resolutions():
  """Prints the detector's pair accuracy on the validation windows at grids of 4, 8 and
  16 cells a side and time steps of 1, 2 and 4 frames."""
  config = sync_config.get_config()
  task = sync.Sync(config)
  val = validation_windows(task, pipeline.load_source(config.data, 'validation', task.features))
  for grid in (4, 8, 16):
    print(f'{grid} x {grid} cells: ' + ', '.join(
        f'{coarse_detector(val["video"], val["audio"], grid, steps):.3f} at steps of {steps}'
        for steps in (1, 2, 4)), flush=True)


def with_shifts(task, example, rng, tracks):
  """`task.preprocess(example, rng)` (the same draws) with `tracks` - 2 more shifted audio
  windows of the same video, each shift drawn uniformly among those the task allows."""
  config, spf = task.config, ops.SAMPLES_PER_FRAME
  video, audio, frames = example['video'], example['audio'], config.window_frames
  start, shift = sync.draw_windows(len(video), len(audio), frames, config.min_shift,
                                   config.max_shift, rng)
  shifts = [shift]
  if tracks > 2:
    window, end = frames * spf, min(len(video), len(audio) // spf) * spf
    offsets = np.arange(-start * spf, end - window - start * spf + 1)
    size = np.abs(offsets)
    offsets = offsets[(size >= np.ceil(config.min_shift * window)) &
                      (size <= np.floor(config.max_shift * window))]
    shifts += list(rng.choice(offsets, tracks - 2))
  aligned, clip = ops.time_crop(audio, video, start, frames)
  others = [ops.time_crop(audio, video, start, frames, audio_offset=int(o))[0] for o in shifts]
  return {'video': sync.shown_frames(clip, config.frame_stride, config.frame_downsample),
          'audio': np.stack([aligned] + others).astype(np.int16), 'shift': np.int32(shift)}


def windows(task, source, rng, count, tracks=2):
  examples = [with_shifts(task, source[int(i)], rng, tracks)
              for i in rng.integers(0, len(source), count)]
  return jax.tree.map(lambda *x: np.stack(x), *examples)


def validation_windows(task, source):
  """The 384 fixed validation windows, 4 of each of the 96 validation scenes in
  `source`, as one compact batch."""
  rng = np.random.default_rng(1)
  return jax.tree.map(lambda *x: np.stack(x), *[task.preprocess(source[i % 96], rng)
                                              for i in range(384)])


def score(workdir):
  """Prints the pretext metrics of the newest checkpoint of the sync run in WORKDIR
  (`python -m avjax.main --config=configs/sync.py`) on the validation windows."""
  config = checkpoint.load_config(workdir)
  task = sync.Sync(config)
  source = pipeline.load_source(config.data, 'validation', task.features)
  val, params = validation_windows(task, source), checkpoint.restore_params(workdir)
  evaluate = jax.jit(task.evaluate)
  metrics = [evaluate(params, jax.tree.map(lambda x: x[j:j + 32], val))
             for j in range(0, 384, 32)]
  print(workdir, ', '.join(f'{k} {np.mean([m[k] for m in metrics]):.3f}'
                           for k in sorted(metrics[0])))


def main(rung, steps, learning_rate, tracks, others, seed):
  config = sync_config.get_config()
  task = sync.Sync(config)
  train = pipeline.load_source(config.data, 'train', task.features)
  val_source = pipeline.load_source(config.data, 'validation', task.features)
  val = validation_windows(task, val_source)
  check = [task.preprocess(val_source[0], np.random.default_rng(7)),
           with_shifts(task, val_source[0], np.random.default_rng(7), 2)]
  assert all(np.array_equal(check[0][k], check[1][k]) for k in check[0])
  detector = sync_detector.aligned_first(val['video'], val['audio']).mean()
  print(f'{rung}: detector on the validation windows {detector:.3f} (every frame, 8 x 8 cells), '
        f'{coarse_detector(val["video"], val["audio"]):.3f} (4 x 4 cells, steps of '
        f'{STEPS_OF} frames)', flush=True)
  if '_ln' in rung:
    fusion.NormReLU = ChannelNormReLU
  if any(kind in rung for kind in ('_prod', '_gate')):
    fusion.Fusion = functools.partial(ProductFusion, gate='_gate' in rung)
  # Owens's network, but for what the rung changes (configs/sync.py's default is the top
  # of the ladder: `deep_corr_diff`), at the ladder's steps whatever the config's.
  model = dict(config.model.to_dict(), video_input='frames', fusion_correlate='_corr' in rung,
               fusion_logit=rung.startswith('deep'), frames_per_step=STEPS_OF)
  net = Ladder(rung, model)
  rng = np.random.default_rng(seed)
  first = task.expand(windows(task, train, rng, 2))
  params = net.init(jax.random.key(seed), first['video'], first['audio'])
  optimizer = optax.adam(learning_rate)
  opt_state = optimizer.init(params)

  # Several shifted tracks or other videos' tracks: which track is aligned (softmax).
  metrics = sync.track_metrics if tracks > 2 or others else task.metrics

  def loss_fn(params, batch):
    batch = task.expand(batch)
    audio = batch['audio']
    audio = jnp.concatenate([audio] + [jnp.roll(audio[:, :1], m, axis=0)
                                       for m in range(1, others + 1)], axis=1)
    logits = net.apply(params, batch['video'], audio)
    return sum(metrics(x)[0] for x in logits) if rung.startswith('deep') else metrics(logits)[0]

  @jax.jit
  def step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, optax.global_norm(grads)

  @jax.jit
  def pair_accuracy(params, batch):
    batch = task.expand(batch)
    logits = net.apply(params, batch['video'], batch['audio'])
    return (logits[..., 0] > logits[..., 1]).mean(-1)

  losses, norms = [], []
  for i in range(1, steps + 1):
    params, opt_state, loss, norm = step(params, opt_state, windows(task, train, rng, 8, tracks))
    losses.append(float(loss))
    norms.append(float(norm))
    if i % 100 == 0 or i == steps:
      acc = np.mean([pair_accuracy(params, jax.tree.map(lambda x: x[j:j + 32], val))
                     for j in range(0, 384, 32)], axis=0)
      print(f'{rung} step {i}: train loss {np.mean(losses[-100:]):.4f}, gradient norm '
            f'{np.mean(norms[-100:]):.3g}, val pair accuracy '
            f'{" / ".join(f"{a:.3f}" for a in np.atleast_1d(acc))}', flush=True)


if __name__ == '__main__':
  args = sys.argv[1:] + [None] * 5
  if args[0] == 'score':
    sys.exit(score(args[1]))
  if args[0] == 'detector':
    sys.exit(detector_resolutions())
  main(args[0], int(args[1]), float(args[2] or 1e-3), int(args[3] or 2), int(args[4] or 0),
       int(args[5] or 0))
