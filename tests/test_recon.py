"""Tests for the recon task, its models and its config presets."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from avjax.data import ops
from avjax.tasks import recon
from configs import recon as recon_config

SPF = 640  # Audio samples per video frame: 16 kHz at 25 fps.


def fake_example(rng, num_frames=25, size=32):
  """A talking head: a dark mouth box whose height follows the audio's loudness, brows
  (a dark row in the eyes box) raised on loud frames, and a neutral reference frame
  (mouth closed, brows down)."""
  envelope = rng.uniform(0.1, 1.0, num_frames)
  t = np.arange(num_frames * SPF) / 16000
  audio = np.repeat(envelope, SPF) * np.sin(2 * np.pi * 220 * t) * 0.5
  video = np.full((num_frames, size, size, 3), 180, np.uint8)
  video[..., 2] = 120
  neutral = video[0].copy()
  boxes = np.zeros((num_frames, 4), np.int32)
  eyes = np.zeros((num_frames, 4), np.int32)
  for i, e in enumerate(envelope):
    x0 = size // 3 + (i % 3)  # The head sways a little.
    y0 = size // 2
    boxes[i] = (y0, x0, y0 + 1 + int(e * size / 5), x0 + size // 3)
    video[i, boxes[i, 0]:boxes[i, 2], boxes[i, 1]:boxes[i, 3]] = 40
    eyes[i] = (size // 5, x0 - 2, size // 5 + 3, x0 + size // 3 + 2)
    video[i, eyes[i, 0] + (e < 0.55), eyes[i, 1]:eyes[i, 3]] = 60
  neutral_box = np.array([size // 2, size // 3, size // 2 + 1, 2 * size // 3], np.int32)
  neutral[neutral_box[0]:neutral_box[2], neutral_box[1]:neutral_box[3]] = 40
  neutral[size // 5 + 1, size // 3 - 2:2 * size // 3 + 2] = 60
  return dict(audio=(audio * 32767).astype(np.int16), video=video, mouth_box=boxes,
              eyes_box=eyes, neutral_frame=neutral, neutral_mouth_box=neutral_box,
              mouth_open=envelope.astype(np.float32), speaker=np.int64(0))


def key(seed):
  """A PRNG key; 'rbg' compiles far faster than threefry on a CPU (5 s vs 30 s for init)."""
  return jax.random.key(seed, impl='rbg')


def make_batch(task, num_examples, seed=0):
  rng = np.random.default_rng(seed)
  examples = [task.preprocess(fake_example(rng), rng) for _ in range(num_examples)]
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


@pytest.fixture(scope='module')
def config():
  return recon_config.get_config('tiny')


@pytest.fixture(scope='module')
def task(config):
  return recon.Recon(config)


@pytest.fixture(scope='module')
def batch(task):
  return make_batch(task, 4)


@pytest.fixture(scope='module')
def expanded(task, batch):
  return task.expand(batch)


def expand_one(task, example):
  """`task.expand` of one preprocessed example, as numpy."""
  return jax.tree.map(lambda x: np.asarray(x[0]), task.expand(jax.tree.map(lambda x: x[None],
                                                                             example)))


@pytest.fixture(scope='module')
def params(task, batch):
  return jax.jit(task.init)(key(0), batch)


@pytest.mark.parametrize('arg', [None, 'tiny', 'paper'])
def test_config_presets_build_a_task(arg):
  task = recon.Recon(recon_config.get_config(arg))
  assert set(task.encoders()) == {'audio_encoder'}


def test_preprocess_is_compact_and_expands_to_the_float_batch(task, config):
  t, ctx = config.recon.num_frames, config.model.audio.context
  compact = task.preprocess(fake_example(np.random.default_rng(1)), np.random.default_rng(2))
  assert {k: (v.shape, v.dtype) for k, v in compact.items()} == {
      'still': ((32, 32, 3), np.uint8), 'video': ((t, 32, 32, 3), np.uint8),
      'audio': ((t * SPF + 2 * ctx,), np.int16), 'mouth_box': ((t, 4), np.int32),
      'eyes_box': ((t, 4), np.int32)}
  example = expand_one(task, compact)
  assert example['still'].shape == (32, 32, 3)
  assert example['video'].shape == (t, 32, 32, 3)
  assert example['audio'].shape == (t, SPF + 2 * ctx)
  assert example['mouth_mask'].shape == example['eyes_mask'].shape == (t, 32, 32, 1)
  for value in example.values():
    assert value.dtype == np.float32
  for key in ('still', 'video'):
    assert -1 <= example[key].min() and example[key].max() <= 1 + 2 ** -23  # XLA: one ulp.


def test_preprocess_aligns_audio_frames_and_mouth_boxes():
  """Audio, pixels and mouth box all encode the frame index; the crop must keep them together."""
  config = recon_config.get_config('tiny')
  config.recon.update(align_faces=False, still='same_clip')  # Aligning is tested below.
  task = recon.Recon(config)
  num_frames, ctx = 25, config.model.audio.context
  index = np.arange(num_frames)
  boxes = np.stack([index, index + 2, index + 4, index + 3], 1).astype(np.int32)  # 4x1 boxes.
  example = dict(
      audio=np.repeat((index + 1) * 100, SPF).astype(np.int16),
      video=np.repeat(index * 8, 40 * 40 * 3).astype(np.uint8).reshape(num_frames, 40, 40, 3),
      mouth_box=boxes, eyes_box=boxes[:, [1, 0, 3, 2]])  # Its 1x4 transpose.
  rng = np.random.default_rng(0)
  starts = set()
  for _ in range(10):
    out = expand_one(task, task.preprocess(example, rng))
    frames = np.round((out['video'][:, 0, 0, 0] + 1) * 127.5 / 8).astype(int)
    starts.add(frames[0])
    np.testing.assert_array_equal(frames, frames[0] + np.arange(config.recon.num_frames))
    for i, f in enumerate(frames):
      audio = np.round(out['audio'][i] * 32768 / 100).astype(int) - 1
      np.testing.assert_array_equal(audio[ctx:ctx + SPF], f)  # Its own frame's samples,
      np.testing.assert_array_equal(audio[:ctx], f - 1 if f > 0 else -1)  # the previous (or 0),
      np.testing.assert_array_equal(audio[-ctx:], f + 1 if f < num_frames - 1 else -1)  # the next.
      mask = out['mouth_mask'][i, ..., 0]
      expected = np.zeros((40, 40))
      expected[f:f + 4, f + 2:f + 3] = 1
      np.testing.assert_array_equal(mask, expected)
      np.testing.assert_array_equal(out['eyes_mask'][i, ..., 0], expected.T)
  assert len(starts) > 1  # The crop is random.


def test_aligning_steadies_the_mouth():
  video = np.zeros((3, 12, 12, 3), np.uint8)
  boxes = np.array([[4, 4, 6, 6], [5, 3, 7, 5], [6, 5, 8, 7]], np.int32)  # Centres move.
  for t, (y0, x0, y1, x1) in enumerate(boxes):
    video[t, y0:y1, x0:x1] = 255
  shifts = recon.mouth_shifts(boxes)
  moved = boxes + np.concatenate([shifts, shifts], 1)
  np.testing.assert_array_equal(moved, np.tile(boxes.mean(0).round(), (3, 1)))
  aligned = recon.moved_window(video, np.array([2, 0]), shifts, (0, 0), (12, 12))
  np.testing.assert_array_equal(aligned, ops.translate_frames(video, shifts)[[2, 0]])
  for frame, t in zip(aligned, (2, 0)):  # The pixels moved with their box.
    y0, x0, y1, x1 = moved[t]
    assert frame.sum() == video[t].sum() and frame[y0:y1, x0:x1].min() == 255


def _centres(boxes):
  return (np.asarray(boxes)[..., :2] + np.asarray(boxes)[..., 2:]) / 2


def test_neutral_still_is_the_neutral_frame_aligned_and_cut_like_the_frames():
  config = recon_config.get_config('tiny')
  config.recon.update(still='neutral', align_faces=True, face_crop=20)
  task = recon.Recon(config)
  example = fake_example(np.random.default_rng(0))
  # Off the clip's mean mouth centre by (2, -3) and more: unaligned, it would show.
  example['neutral_mouth_box'] = example['neutral_mouth_box'] + [2, -3, 2, -3]
  y0, x0, y1, x1 = example['neutral_mouth_box']
  example['neutral_frame'][:] = 180
  example['neutral_frame'][y0:y1, x0:x1] = 40
  out = task.preprocess(example, np.random.default_rng(1))
  # Its mouth lands where the aligned frames' mouths are (their mean centre, to the pixel).
  rows, cols = np.nonzero(out['still'][..., 0] == 40)
  assert len(rows) == (y1 - y0) * (x1 - x0)
  still_centre = [(rows.min() + rows.max() + 1) / 2, (cols.min() + cols.max() + 1) / 2]
  centres = np.concatenate([_centres(out['mouth_box']), [still_centre]])
  assert np.ptp(centres, 0).max() <= 1  # Each within half a pixel of the clip's mean.
  np.testing.assert_array_equal(out['still'], task.preprocess(example, np.random.default_rng(2))
                                ['still'])  # Not drawn: the same still every time.


@pytest.mark.parametrize('still', ['other_clip', 'same_clip'])
def test_other_and_same_clip_stills_are_frames_of_that_clip(still):
  config = recon_config.get_config('tiny')
  config.recon.update(still=still, align_faces=False)
  task = recon.Recon(config)
  example = fake_example(np.random.default_rng(0))
  other = np.arange(25, dtype=np.uint8)[:, None, None, None] + 200  # Frame f is all 200 + f.
  example.update(reference_video=np.broadcast_to(other, example['video'].shape),
                 reference_mouth_box=example['mouth_box'])
  source = example['reference_video'] if still == 'other_clip' else example['video']
  rng, drawn = np.random.default_rng(1), set()
  for _ in range(8):
    out = task.preprocess(example, rng)
    matches = [f for f in range(25) if np.array_equal(out['still'], source[f])]
    assert matches
    drawn.add(matches[0])
  assert len(drawn) > 1  # A frame drawn each time.


def test_a_still_of_an_unknown_kind_is_an_error():
  config = recon_config.get_config('tiny')
  config.recon.still = 'first_frame'
  with pytest.raises(ValueError, match=r"unknown recon.still 'first_frame'"):
    recon.Recon(config)


def test_face_window_keeps_the_mouth_at_its_place_in_the_crop():
  video = np.zeros((2, 64, 64, 3), np.uint8)
  boxes = np.array([[30, 20, 34, 26], [32, 22, 36, 28]], np.int32)  # Mean centre (33, 24).
  for t, (y0, x0, y1, x1) in enumerate(boxes):
    video[t, y0:y1, x0:x1] = 255
  corner = recon.face_window(boxes, (64, 64), 20)
  np.testing.assert_array_equal(corner, [19, 14])  # 33 - 0.7 * 20, 24 - 10.
  crop = recon.moved_window(video, np.arange(2), np.zeros((2, 2), int), corner, (20, 20))
  np.testing.assert_array_equal(crop, video[:, 19:39, 14:34])
  for t, (y0, x0, y1, x1) in enumerate(boxes - [19, 14, 19, 14]):
    assert crop[t].sum() == video[t].sum() and crop[t, y0:y1, x0:x1].min() == 255
  clamped = recon.face_window(boxes + [30, 30, 30, 30], (64, 64), 20)  # Near the corner.
  np.testing.assert_array_equal(clamped, [44, 44])
  with pytest.raises(ValueError, match='larger than the frames'):
    recon.face_window(boxes, (64, 64), 65)


def test_init_loss_evaluate_visualize(task, config, batch, expanded, params):
  assert 'audio_encoder' in params
  loss, metrics = jax.jit(task.loss)(params, batch, key(1))
  assert set(metrics) == {'loss', 'l1', 'mouth_l1', 'eyes_l1'}
  assert loss.shape == () and np.isfinite(loss)
  assert all(0 < metrics[k] <= 2 for k in ('l1', 'mouth_l1', 'eyes_l1'))
  evaluated = jax.jit(task.evaluate)(params, batch)
  assert set(evaluated) == {f'{p}{m}' for p in ('', 'still_', 'shuffled_audio_')
                            for m in ('l1', 'mouth_l1', 'eyes_l1')}
  assert all(np.isfinite(v) for v in evaluated.values())
  # The still baselines are computed from the batch, and an untrained decoder repeats it.
  err = np.abs(expanded['video'] - expanded['still'][:, None])
  np.testing.assert_allclose(evaluated['still_l1'], err.mean(), rtol=1e-5)
  for region in ('mouth', 'eyes'):
    mask = np.broadcast_to(expanded[f'{region}_mask'], err.shape)
    np.testing.assert_allclose(evaluated[f'still_{region}_l1'], err[mask > 0].mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(evaluated[f'{region}_l1'], evaluated[f'still_{region}_l1'],
                               rtol=1e-5)
  np.testing.assert_allclose(evaluated['l1'], evaluated['still_l1'], rtol=1e-5)
  # Once the last decoder level is no longer zero, the audio reaches the frames.
  trained = _randomise_last_level(params, config)
  evaluated = jax.jit(task.evaluate)(trained, batch)
  assert evaluated['shuffled_audio_l1'] != evaluated['l1']
  np.testing.assert_allclose(jax.jit(task.evaluate)(trained, batch)['l1'], evaluated['l1'])
  image = task.visualize(params, batch)
  t = config.recon.num_frames
  assert image.dtype == np.uint8 and image.shape == (4 * 2 * 32, t * 32, 3)
  np.testing.assert_array_equal(image[:32, :32], batch['video'][0, 0])


def _randomise_last_level(params, config):
  last = len(config.model.decoder.features) - 1
  rng = np.random.default_rng(0)
  decoder = dict(params['frame_decoder'])
  for name in (f'up{last}', f'skip{last}'):
    kernel = decoder[name]['kernel']
    decoder[name] = {**decoder[name], 'kernel': 0.1 * rng.normal(size=kernel.shape)}
  return {**params, 'frame_decoder': decoder}


def test_weighted_loss_is_a_weighted_mean():
  pred = jnp.zeros((1, 1, 2, 2, 3))
  # Error 3 in the mouth (pixel 0, 0), 2 in the eyes (pixel 0, 1), 1 elsewhere.
  target = jnp.ones((1, 1, 2, 2, 3)).at[:, :, 0, 0].set(3.0).at[:, :, 0, 1].set(2.0)
  masks = {'mouth': jnp.zeros((1, 1, 2, 2, 1)).at[:, :, 0, 0].set(1.0),
           'eyes': jnp.zeros((1, 1, 2, 2, 1)).at[:, :, 0, 1].set(1.0)}
  loss, metrics = recon.l1_metrics(pred, target, masks, {'mouth': 5.0, 'eyes': 2.0})
  np.testing.assert_allclose(loss, (6 * 3 + 3 * 2 + 2 * 1) / (6 + 3 + 2))
  np.testing.assert_allclose(metrics['mouth_l1'], 3.0)
  np.testing.assert_allclose(metrics['eyes_l1'], 2.0)
  np.testing.assert_allclose(metrics['l1'], 7 / 4)
  uniform, _ = recon.l1_metrics(pred, target, masks, {'mouth': 0.0, 'eyes': 0.0})
  np.testing.assert_allclose(uniform, metrics['l1'])


def test_loss_falls_with_adam(task, config, batch, params):
  params = _randomise_last_level(params, config)  # Far from the still-frame start.
  optimizer = optax.adam(3e-3)

  @jax.jit
  def step(params, opt_state, rng):
    (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, rng)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = optimizer.init(params)
  losses = []
  for i in range(40):
    params, opt_state, loss = step(params, opt_state, key(i))
    losses.append(float(loss))
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses


def test_exported_audio_encoder_matches_the_full_model(task, expanded, params):
  batch = expanded
  module, key = task.encoders()['audio_encoder']
  assert key == 'audio'
  alone, alone_aux = jax.jit(module.apply)({'params': params['audio_encoder']}, batch[key])
  noise = jnp.zeros(batch['audio'].shape[:2] + (task.noise_dim,))
  _, aux = jax.jit(task.model.apply)({'params': params}, batch['still'], batch['audio'], noise)
  assert alone.shape[:2] == batch['audio'].shape[:2]
  np.testing.assert_allclose(alone, aux['features'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(alone_aux['frames'], aux['frames'], rtol=1e-5, atol=1e-6)


def test_audio_encoder_hears_relative_loudness(task, expanded, params):
  """The clip's overall level is normalised away; how loudness moves between frames is not."""
  batch = expanded
  module, key = task.encoders()['audio_encoder']
  apply = jax.jit(module.apply)
  features, _ = apply({'params': params['audio_encoder']}, batch[key])
  quiet_clip, _ = apply({'params': params['audio_encoder']}, batch[key] * 0.25)
  gains = np.linspace(0.25, 1.0, batch[key].shape[1])[None, :, None]
  quieter_start, _ = apply({'params': params['audio_encoder']}, batch[key] * gains)
  np.testing.assert_allclose(quiet_clip, features, atol=1e-3)
  assert np.abs(quieter_start - features).max() > 1e-2


def test_bfloat16_compute_keeps_float32_params_and_loss(batch, expanded, params):
  config = recon_config.get_config('tiny')
  config.dtype = 'bfloat16'
  task = recon.Recon(config)
  shapes = jax.eval_shape(task.init, key(0), batch)
  assert jax.tree.map(lambda x: x.shape, shapes) == jax.tree.map(lambda x: x.shape, params)
  assert {x.dtype for x in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
  loss, _ = jax.jit(task.loss)(params, batch, key(1))
  assert loss.dtype == jnp.float32 and np.isfinite(loss)
  features, _ = jax.eval_shape(task.encoders()['audio_encoder'][0].apply,
                               {'params': params['audio_encoder']}, expanded['audio'])
  assert features.dtype == jnp.bfloat16
