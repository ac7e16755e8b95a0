"""Compact batches of the talking-heads tasks (recon, aot, odd, multitask, disentangle,
speaker): `expand`ed on the device they are the float batches that `preprocess` made
before (kept below in numpy as the reference, fed the same random draws), and the
losses on them are those on the float batches."""

import jax
import numpy as np
import pytest

from avjax.data import ops
from avjax.data.synth import heads
from avjax.models import audio as audio_models
from avjax.tasks import aot
from avjax.tasks import disentangle
from avjax.tasks import expand
from avjax.tasks import multitask
from avjax.tasks import odd
from avjax.tasks import recon
from avjax.tasks import speaker
from configs import aot as aot_config
from configs import disentangle as disentangle_config
from configs import multitask as multitask_config
from configs import odd as odd_config
from configs import recon as recon_config
from configs import speaker as speaker_config

SPF = 640
FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}
TINY = heads.PRESETS['heads_tiny']


def key(seed):
  return jax.random.key(seed, impl='rbg')


# ---- the float preprocessing of before (numpy) ----

def float_image(x):
  return x.astype(np.float32) / 127.5 - 1.0


def float_windows(encoder, audio):
  return ops.frames(ops.to_float(audio), encoder.samples_per_frame, encoder.context)


def float_box_mask(boxes, height, width):
  ys, xs = np.arange(height), np.arange(width)
  inside_y = (ys >= boxes[:, 0:1]) & (ys < boxes[:, 2:3])
  inside_x = (xs >= boxes[:, 1:2]) & (xs < boxes[:, 3:4])
  return (inside_y[:, :, None] & inside_x[:, None, :])[..., None].astype(np.float32)


def recon_float(task, example, rng):
  cfg, video = task.config, example['video']
  fixed = lambda region: recon.fixed_boxes(len(video), *video.shape[1:3], region)
  boxes = example['mouth_box'] if 'mouth_box' in example else fixed(cfg.mouth_region)
  eyes = example['eyes_box'] if 'eyes_box' in example else fixed(cfg.eyes_region)
  still = example['neutral_frame'][None] if cfg.still == 'neutral' else None
  if cfg.align_faces:  # Every frame of the clip moved, then cropped; the neutral still too.
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    shifts = np.round(centres.mean(0) - centres).astype(boxes.dtype)
    video = ops.translate_frames(video, shifts)
    boxes, eyes = (b + np.concatenate([shifts] * 2, 1) for b in (boxes, eyes))
    if still is not None:
      box = example['neutral_mouth_box']
      shift = np.round(centres.mean(0) - (box[:2] + box[2:]) / 2).astype(int)
      still = ops.translate_frames(still, shift[None])
  if cfg.face_crop:
    size = cfg.face_crop
    centre = ((boxes[:, :2] + boxes[:, 2:]) / 2).mean(0)
    y0, x0 = np.clip(np.round(centre - [0.7 * size, 0.5 * size]).astype(int), 0,
                     np.array(video.shape[1:3]) - size)
    video, boxes, eyes = (video[:, y0:y0 + size, x0:x0 + size],
                          boxes - [y0, x0, y0, x0], eyes - [y0, x0, y0, x0])
    still = None if still is None else still[:, y0:y0 + size, x0:x0 + size]
  t, length = cfg.num_frames, len(video)
  start = rng.integers(0, length - t + 1)
  crop = slice(start, start + t)
  windows = float_windows(task.audio_encoder, example['audio'])
  still = video[rng.integers(0, length)] if still is None else still[0]
  return {'still': float_image(still),
          'video': float_image(video[crop]), 'audio': windows[crop],
          'mouth_mask': float_box_mask(boxes[crop], *video.shape[1:3]),
          'eyes_mask': float_box_mask(eyes[crop], *video.shape[1:3])}


def aot_float(task, example, rng):
  waveform = ops.to_float(example['audio'])
  backwards = rng.random() < 0.5
  if backwards:
    waveform = waveform[::-1]
  windows = task.audio_encoder.windows(waveform)
  start = rng.integers(0, len(windows) - task.config.num_frames + 1)
  return {'audio': windows[start:start + task.config.num_frames], 'label': np.int32(backwards)}


def odd_float(task, example, rng):
  waveform, t = ops.to_float(example['audio']), task.config.num_frames
  start = rng.integers(0, len(waveform) // SPF - t + 1)
  label = rng.integers(0, task.config.num_segments)
  odd_segment = slice(start * SPF + label * task.segment_samples,
                      start * SPF + (label + 1) * task.segment_samples)
  waveform[odd_segment], _ = ops.shuffle_segments(
      waveform[odd_segment], task.segment_samples // task.config.chunk_samples, rng)
  return {'audio': task.audio_encoder.windows(waveform)[start:start + t],
          'label': np.int32(label)}


def multitask_float(task, example, rng):
  floats = {'recon': recon_float, 'aot': aot_float, 'odd': odd_float}
  rngs = dict(zip(task.tasks, rng.spawn(len(task.tasks))))
  return {name: floats[name](t, example, rngs[name]) for name, t in task.tasks.items()}


def disentangle_float(task, example, rng):
  cfg = task.config
  mel, video = disentangle.log_mel_features(example['audio']), example['video']
  num_frames = min(len(video), len(mel) // 4)
  start, face_start = disentangle.draw_windows(num_frames, cfg.window_frames,
                                               cfg.identity_frames, rng)
  window = slice(start, start + cfg.window_frames)
  face_window = slice(face_start, face_start + cfg.identity_frames)
  frames = lambda v: float_image(ops.downsample_frames(v, cfg.frame_downsample)
                                 if cfg.frame_downsample > 1 else v)
  viseme = np.asarray(example['viseme'], np.int32)
  return {'mel': mel[4 * start:4 * (start + cfg.window_frames)],
          'video': frames(video[window]), 'face': frames(video[face_window]),
          'viseme': viseme[window], 'face_viseme': viseme[face_window],
          'speaker': np.int32(example['speaker']), 'track': np.int32(example['track']),
          'start': np.int32(start), 'face_start': np.int32(face_start)}


def speaker_float(task, example, rng):
  mel = disentangle.log_mel_features(example['audio'])
  size = 4 * task.config.crop_frames
  start = 4 * int(rng.integers(0, (len(mel) - size) // 4 + 1))
  return {'mel': mel[start:start + size], 'label': np.int32(example['speaker'])}


# ---- the tasks, their tiny configs and their reference ----

def _config(module, arg='tiny', **overrides):
  config = module.get_config(arg)
  for block, values in overrides.items():
    config[block].update(values)
  return config


CASES = {
    'recon': (recon.Recon, lambda: _config(recon_config), recon_float),
    'recon_face_crop': (recon.Recon, lambda: _config(recon_config, recon=dict(face_crop=24)),
                        recon_float),
    'recon_same_clip': (recon.Recon, lambda: _config(recon_config, recon=dict(
        still='same_clip', face_crop=24)), recon_float),
    'aot': (aot.ArrowOfTime, lambda: _config(aot_config), aot_float),
    'odd': (odd.OddOneOut, lambda: _config(odd_config), odd_float),
    'multitask': (multitask.Multitask, lambda: _config(multitask_config), multitask_float),
    'disentangle': (disentangle.Disentangle, lambda: _config(disentangle_config),
                    disentangle_float),
    'speaker': (speaker.Speaker, lambda: _config(speaker_config, speaker=dict(crop_frames=10)),
                speaker_float),
}


def stack(examples):
  return jax.tree.map(lambda *x: np.stack(x), *examples)


def batches(task, reference, preset=TINY, clips=(0, 7, 12, 19), seed=0):
  """(compact batch, float batch of before) of the same clips and draws."""
  examples = [heads.render_clip(preset, 'train', i) for i in clips]
  rng, ref_rng = np.random.default_rng(seed), np.random.default_rng(seed)
  return (stack([task.preprocess(e, rng) for e in examples]),
          stack([reference(task, e, ref_rng) for e in examples]))


def assert_close(expanded, before):
  """Equal, but for the last bit of a pixel in [-1, 1] (jitted, XLA divides by 127.5 as a
  multiplication by its reciprocal)."""
  np.testing.assert_allclose(expanded, before, rtol=0, atol=2.0 ** -23)


def without_expand(task):
  """`task` with `expand` (its components' too) the identity: its loss on a float batch
  is the loss of before."""
  for t in getattr(task, 'tasks', {}).values():
    t.expand = lambda batch: batch
  task.expand = lambda batch: batch
  return task


@pytest.mark.parametrize('name', CASES)
def test_expanded_compact_batch_is_the_float_batch_and_gives_its_loss(name):
  task_class, make_config, reference = CASES[name]
  task = task_class(make_config())
  compact, floats = batches(task, reference)
  for path, x in jax.tree_util.tree_leaves_with_path(compact):  # Only the log-mel is float.
    assert x.dtype.kind in ('f' if 'mel' in jax.tree_util.keystr(path) else 'ui'), path
  expanded = jax.jit(task.expand)(compact)
  assert jax.tree.structure(expanded) == jax.tree.structure(floats)
  jax.tree.map(assert_close, expanded, floats)
  if name in ('recon_face_crop', 'recon_same_clip'):
    return  # Its loss is recon's.
  # Random parameters, not `init`'s (cheaper, and recon's decoder starts at zero, deaf).
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda x: 0.1 * rng.normal(size=x.shape).astype(np.float32),
                        jax.eval_shape(task.init, key(0), compact))
  before = without_expand(task_class(make_config()))
  # One program for both losses, at XLA's cheapest compilation (half the test's time).
  losses = jax.jit(lambda p, c, f: (task.loss(p, c, key(1)), before.loss(p, f, key(1))),
                   compiler_options=FAST_COMPILE)
  (loss, metrics), (float_loss, float_metrics) = losses(params, compact, floats)
  np.testing.assert_allclose(loss, float_loss, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               metrics, float_metrics)


def test_recon_accel_batch_is_more_than_3_5_times_smaller():
  """configs/recon.py:accel on avsynth heads: host-to-device bytes per example."""
  task = recon.Recon(recon_config.get_config('accel'))
  compact, floats = batches(task, recon_float, preset=heads.PRESETS['heads'], clips=(3,))
  jax.tree.map(assert_close, jax.jit(task.expand)(compact), floats)
  size = lambda batch: sum(x.nbytes for x in jax.tree.leaves(batch))
  assert size(floats) == 717_568
  assert size(floats) >= 3.5 * size(compact), size(compact)


def test_span_windows_are_the_audio_encoders_windows():
  encoder = audio_models.AudioEncoder(samples_per_frame=8, context=3)
  audio = np.random.default_rng(0).integers(-2**15, 2**15, 6 * 8).astype(np.int16)
  windows = encoder.windows(ops.to_float(audio))  # [6, 14], zeros beyond the ends.
  for start in range(5):
    span = expand.frame_span(audio, start, 2, 8, 3)
    assert span.shape == (2 * 8 + 6,) and span.dtype == np.int16
    np.testing.assert_array_equal(expand.span_windows(expand.to_float_audio(span), 8, 3),
                                  windows[start:start + 2])
  with pytest.raises(ValueError, match='not a multiple of 8'):
    expand.frame_span(audio[:-1], 0, 2, 8, 3)
  with pytest.raises(ValueError, match=r'frames \[5, 7\) of a clip of 6 frames'):
    expand.frame_span(audio, 5, 2, 8, 3)
  with pytest.raises(ValueError, match='not whole frames'):
    expand.span_windows(np.zeros((1, 21)), 8, 3)


def test_box_mask_and_flip_where():
  mask = expand.box_mask(np.array([[[2, 3, 5, 9]]]), 12, 10)
  assert mask.shape == (1, 1, 12, 10, 1) and mask.dtype == np.float32
  expected = np.zeros((12, 10))
  expected[2:5, 3:9] = 1
  np.testing.assert_array_equal(mask[0, 0, ..., 0], expected)
  x = np.arange(12).reshape(2, 2, 3)
  flipped = expand.flip_where(np.array([0, 1]), x, -1)
  np.testing.assert_array_equal(flipped, [x[0], x[1, :, ::-1]])
