"""Tests for the sync task (Owens & Efros 2018), its early-fusion network and its config."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from avjax import checkpoint
from avjax import export
from avjax.data import ops
from avjax.data.synth import scenes
from avjax.models import fusion
from avjax.tasks import sync
from configs import sync as sync_config

SPF = 640  # Audio samples per video frame: 16 kHz at 25 fps.
NUM_FRAMES = 50  # scenes_tiny clips: 2 s.
SIZE = 32


def key(seed):
  """A PRNG key; 'rbg' compiles far faster than threefry on a CPU."""
  return jax.random.key(seed, impl='rbg')


def indexed_clip():
  """Audio sample i holds i; frame t's red channel is 5 t, its green 7 x (the column)."""
  video = np.zeros((NUM_FRAMES, SIZE, SIZE, 3), np.uint8)
  video[..., 0] = 5 * np.arange(NUM_FRAMES)[:, None, None]
  video[..., 1] = 7 * np.arange(SIZE)
  return {'audio': np.arange(NUM_FRAMES * SPF).astype(np.int16), 'video': video}


def blinking_clip(rng):
  """A square flashes on some frames, with a click at each flash; a silent one flashes at random."""
  video = np.full((NUM_FRAMES, SIZE, SIZE, 3), 60, np.uint8)
  audio = 0.01 * rng.normal(size=NUM_FRAMES * SPF)
  for sounding in (True, False):
    y, x = rng.integers(0, SIZE - 8, 2)
    for t in rng.choice(NUM_FRAMES, 8, replace=False):
      video[t, y:y + 8, x:x + 8] = 250
      if sounding:
        audio[t * SPF:t * SPF + 320] += 0.5 * rng.normal(size=320) * np.exp(-np.arange(320) / 60)
  return {'audio': ops.to_int16(audio), 'video': video}


def stack(examples):
  return jax.tree.map(lambda *x: np.stack(x), *examples)


def make_batch(task, make_example, num_examples, seed=0):
  rng = np.random.default_rng(seed)
  return stack([task.preprocess(make_example(rng), rng) for _ in range(num_examples)])


def float_preprocess(config, example, rng):
  """The float example the sync task's preprocess gave before compact batches (numpy,
  the same draws): the reference that `expand` of a compact batch must give."""
  frames = config.window_frames
  start, shift = sync.draw_windows(len(example['video']), len(example['audio']), frames,
                                   config.min_shift, config.max_shift, rng)
  aligned, clip = ops.time_crop(example['audio'], example['video'], start, frames)
  shifted, _ = ops.time_crop(example['audio'], example['video'], start, frames,
                             audio_offset=shift)
  clip = clip[::config.frame_stride]
  if config.frame_downsample > 1:
    clip = ops.downsample_frames(clip, config.frame_downsample)
  clip = clip.astype(np.float32) / 127.5 - 1.0
  audio = np.stack([aligned, shifted]).astype(np.float32) / 32768.0
  return {'video': clip, 'audio': audio, 'shift': np.int32(shift)}


@pytest.fixture(scope='module')
def config():
  config = sync_config.get_config('tiny')
  config.sync.frame_downsample = 1  # Full-size frames keep the pixel codes of `indexed_clip`.
  return config


@pytest.fixture(scope='module')
def task(config):
  return sync.Sync(config)


@pytest.fixture(scope='module')
def batch(task):
  return make_batch(task, blinking_clip, 4)


@pytest.fixture(scope='module')
def params(task, batch):
  return jax.jit(task.init)(key(0), batch)


@pytest.mark.parametrize('arg', [None, 'tiny', 'paper', 'accel'])
def test_presets_build_a_task_that_reads_scenes(arg):
  config = sync_config.get_config(arg)
  task = sync.Sync(config)
  module, input_key = task.encoders()['sync_net']
  assert input_key == ('video', 'audio') and module is task.net
  preset = config.data.config
  clip = scenes.render_clip(scenes.PRESETS[preset], 'train', 0)
  out = task.preprocess({k: clip[k] for k in task.features}, np.random.default_rng(0))
  size = scenes.PRESETS[preset].frame_size // config.sync.frame_downsample
  frames, stride = config.sync.window_frames, config.sync.frame_stride
  video_shape = (-(-frames // stride), size, size, 3)
  assert out['video'].shape == video_shape and out['audio'].shape == (2, frames * SPF)
  assert (out['video'].dtype, out['audio'].dtype) == (np.uint8, np.int16)
  # Host-to-device bytes: uint8 frames, int16 audio and the shift.
  assert sum(x.nbytes for x in out.values()) == np.prod(video_shape) + 4 * frames * SPF + 4
  expanded = jax.eval_shape(task.expand, jax.tree.map(lambda x: x[None], out))
  assert expanded['video'].dtype == expanded['audio'].dtype == np.float32


def test_preprocess_takes_the_aligned_and_a_shifted_window_of_the_clip(config):
  config = copy.deepcopy(config)
  config.sync.frame_stride = stride = 2  # Every other frame of the window: the subsampling.
  task = sync.Sync(config)
  frames, window = config.sync.window_frames, config.sync.window_frames * SPF
  low = np.ceil(config.sync.min_shift * window)
  high = min(np.floor(config.sync.max_shift * window), (NUM_FRAMES - frames) * SPF)
  clip, rng = indexed_clip(), np.random.default_rng(0)
  starts, shifts = set(), []
  expand = jax.jit(task.expand)
  for _ in range(40):
    out = task.preprocess(clip, rng)
    assert set(out) == {'video', 'audio', 'shift'}  # No augmentation: `loss` flips.
    video_frames = out['video'][:, 0, 0, 0].astype(int) // 5
    start = video_frames[0]
    np.testing.assert_array_equal(video_frames, start + np.arange(0, frames, stride))
    np.testing.assert_array_equal(out['video'][0, 0, :, 1] // 7, np.arange(SIZE))
    pixels = np.round((expand(jax.tree.map(lambda x: x[None], out))['video'][0] + 1) * 127.5)
    np.testing.assert_array_equal(pixels[0, 0, :, 1] // 7, np.arange(SIZE))  # Not flipped.
    samples = out['audio'].astype(int)
    shift = int(out['shift'])
    np.testing.assert_array_equal(samples[0], start * SPF + np.arange(window))  # Under the frames.
    np.testing.assert_array_equal(samples[1], start * SPF + shift + np.arange(window))
    assert low <= abs(shift) <= high
    assert samples[1].min() >= 0 and samples[1].max() < NUM_FRAMES * SPF  # Inside the clip.
    starts.add(start)
    shifts.append(shift)
  assert len(starts) > 5
  assert min(shifts) < 0 < max(shifts) and len(set(shifts)) > 30


def test_draw_windows_covers_every_shift_in_bounds_and_keeps_both_windows_inside():
  rng = np.random.default_rng(0)
  draws = {sync.draw_windows(10, 20, 4, 0.5, 2.0, rng, samples_per_frame=2) for _ in range(3000)}
  # Window of 8 samples: |shift| in [4, 16], capped by the clip's 12 samples of room.
  assert {shift for _, shift in draws} == set(range(4, 13)) | set(range(-12, -3))
  for start, shift in draws:
    assert 0 <= start <= 6 and 0 <= 2 * start + shift and 2 * start + shift + 8 <= 20
  assert {start for start, _ in draws} == set(range(7))
  with pytest.raises(ValueError, match='fits a clip of 5 frames'):
    sync.draw_windows(5, 10, 4, 0.5, 2.0, rng, samples_per_frame=2)
  with pytest.raises(ValueError, match='must be positive'):
    sync.draw_windows(10, 20, 4, 0.0, 2.0, rng, samples_per_frame=2)


def test_pair_metrics_label_the_aligned_audio_one():
  loss, metrics = sync.pair_metrics(jnp.array([[20.0, -20.0], [30.0, -25.0]]))
  assert loss < 1e-8 and metrics['accuracy'] == 1
  loss, metrics = sync.pair_metrics(jnp.array([[-20.0, 20.0]]))
  np.testing.assert_allclose(loss, 20.0, rtol=1e-6)
  assert metrics['accuracy'] == 0


def test_compress_and_adaptive_max_pool():
  x = jnp.array([-1.0, -0.1, 0.0, 0.01, 1.0])
  expected = np.sign(x) * np.log1p(255 * np.abs(x)) / np.log(256)
  np.testing.assert_allclose(fusion.compress(x), expected, rtol=1e-6)
  assert fusion.compress(x)[0] == -1 and fusion.compress(x)[-1] == 1
  steps = jnp.arange(10.0)[None, :, None]
  np.testing.assert_array_equal(fusion.adaptive_max_pool(steps, 5)[0, :, 0], [1, 3, 5, 7, 9])
  np.testing.assert_array_equal(fusion.adaptive_max_pool(steps, 3)[0, :, 0], [3, 6, 9])
  np.testing.assert_array_equal(fusion.adaptive_max_pool(steps[:, :2], 4)[0, :, 0], [0, 0, 1, 1])


# (video_pool, video_time_strides, last_stride): cam [T', H', W'], fused [T, H, W].
# Frames 20 x 32 x 32. Pooled, strided in time (the paper's): time 20 -> conv1 10 ->
# conv2 5 -> conv4 3; space 32 -> 16 -> pool 8 -> conv2 4 -> conv4 2 -> conv5 2 / s.
# Unpooled, (1, 1, 2): time 20 -> 20 -> 20 -> 10; space 32 -> 16 -> 8 -> 4 -> 4 / s.
@pytest.mark.parametrize('pool, time_strides, last_stride, cam, fused', [
    (True, (2, 2, 2), 1, (3, 2, 2), (5, 4, 4)),
    (True, (2, 2, 2), 2, (3, 1, 1), (5, 4, 4)),
    (False, (1, 1, 2), 1, (10, 4, 4), (20, 8, 8)),
])
def test_output_and_cam_shapes(config, pool, time_strides, last_stride, cam, fused):
  model = dict(config.model.to_dict(), video_pool=pool, video_time_strides=time_strides,
               last_stride=last_stride, frames_per_step=1)
  net = fusion.SyncNet(**model, dtype=jnp.bfloat16)
  video = jax.ShapeDtypeStruct((3, 20, SIZE, SIZE, 3), jnp.float32)
  audio = jax.ShapeDtypeStruct((3, 20 * SPF), jnp.float32)
  params = jax.eval_shape(net.init, key(0), video, audio)
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
  logit, aux = jax.eval_shape(net.apply, params, video, audio)
  cam = (3,) + cam
  assert logit.shape == (3,) and logit.dtype == jnp.float32
  assert aux['cam'].shape == cam and aux['cam'].dtype == jnp.float32
  assert aux['conv5'].shape == cam + (model['video_features'][-1],)
  assert aux['fused'].shape == (3,) + fused + (model['video_features'][2],)
  assert aux['audio'].shape == (3, 13, model['audio_features'][-1])  # 12800 / 1024, rounded up.
  pairs = jax.ShapeDtypeStruct((3, 2, 20 * SPF), jnp.float32)
  logit, aux = jax.eval_shape(net.apply, params, video, pairs)
  assert logit.shape == (3, 2) and aux['cam'].shape == (3, 2) + cam[1:]
  assert aux['conv2'].shape[0] == 3 and aux['fused'].shape[:2] == (3, 2)


def test_fold_time_stacks_consecutive_frames_in_the_channels(config):
  video = np.arange(2 * 8 * 2 * 2 * 3, dtype=np.float32).reshape(2, 8, 2, 2, 3)
  folded = np.asarray(fusion.fold_time(jnp.asarray(video), 4))
  assert folded.shape == (2, 2, 2, 2, 12)
  for step, j in np.ndindex(2, 4):
    np.testing.assert_array_equal(folded[:, step, ..., 3 * j:3 * (j + 1)], video[:, 4 * step + j])
  with pytest.raises(ValueError, match='7 frames are not whole steps of frames_per_step=4'):
    fusion.fold_time(jnp.zeros((1, 7, 2, 2, 3)), 4)

  def shapes(net, frames):  # (conv1's kernel, the CAM's) of 3 clips of `frames` frames.
    video = jax.ShapeDtypeStruct((3, frames, SIZE, SIZE, 3), jnp.float32)
    audio = jax.ShapeDtypeStruct((3, 20 * SPF), jnp.float32)
    params = jax.eval_shape(net.init, key(0), video, audio)
    cam = jax.eval_shape(net.apply, params, video, audio)[1]['cam']
    return params['params']['conv1']['kernel'].shape, cam.shape

  # Every one of 20 frames in, 4 to a step: from conv1 on, the shapes of every 4th frame.
  kernel, cam = shapes(fusion.SyncNet(**dict(config.model.to_dict(), frames_per_step=4)), 20)
  strided_kernel, strided_cam = shapes(
      fusion.SyncNet(**dict(config.model.to_dict(), frames_per_step=1)), 5)
  assert kernel == strided_kernel[:-2] + (12, strided_kernel[-1]) and cam == strided_cam


def test_frame_differences_input_sees_what_moves_not_what_is_still(config):
  video = jax.random.uniform(key(1), (2, 20, SIZE, SIZE, 3), minval=-0.5, maxval=0.5)
  diff = np.asarray(fusion.frame_differences(video))
  np.testing.assert_array_equal(diff[:, 0], 0)
  np.testing.assert_allclose(diff[:, 1:], np.diff(np.asarray(video), axis=1), atol=1e-6)
  audio = jax.random.uniform(key(2), (2, 20 * SPF), minval=-0.5, maxval=0.5)
  still = jax.random.uniform(key(3), (1, 1, SIZE, SIZE, 3), minval=-0.5, maxval=0.5)
  moved = {}
  for video_input in ('differences', 'frames'):
    net = fusion.SyncNet(**dict(config.model.to_dict(), video_input=video_input))
    params = net.init(key(0), video, audio)
    moved[video_input] = np.abs(np.asarray(
        net.apply(params, video + still, audio)[0] - net.apply(params, video, audio)[0])).max()
  assert moved['differences'] < 1e-5 < moved['frames']  # A still image added to every frame.
  with pytest.raises(ValueError, match="unknown video_input 'flow'"):
    net = fusion.SyncNet(**dict(config.model.to_dict(), video_input='flow'))
    net.init(key(0), video, audio)


def test_evaluate_scores_each_video_with_both_tracks(task, batch, params):
  """Cross-entropy on logits computed one track at a time, aligned = 1; the logit is the
  CAM's mean (the same projection, before or after pooling)."""
  logits, net_params, inputs = [], {'params': params['sync_net']}, task.expand(batch)
  for track in (0, 1):
    logit, aux = task.apply_net(net_params, inputs['video'], inputs['audio'][:, track])
    np.testing.assert_allclose(logit, aux['cam'].mean(axis=(1, 2, 3)), rtol=1e-4, atol=1e-5)
    logits.append(logit)
  logits = np.stack(logits, 1)
  cross_entropy = np.concatenate([np.logaddexp(0, -logits[:, 0]), np.logaddexp(0, logits[:, 1])])
  evaluated = jax.jit(task.evaluate)(params, batch)
  assert set(evaluated) == {'loss', 'accuracy', 'pair_accuracy', 'fusion_pair_accuracy'}
  np.testing.assert_allclose(evaluated['loss'], cross_entropy.mean(), rtol=1e-4)
  np.testing.assert_allclose(evaluated['accuracy'], np.mean([logits[:, 0] > 0, logits[:, 1] <= 0]))
  np.testing.assert_allclose(evaluated['pair_accuracy'], np.mean(logits[:, 0] > logits[:, 1]))


def test_fusion_logit_reads_the_fused_map_and_adds_its_loss(config, task, batch, params):
  """With `fusion_logit` (the default), a Dense of the fusion's map averaged over its
  positions is a second logit, and training's loss is the sum of both logits' losses."""
  assert config.model.fusion_logit
  inputs = task.expand(batch)
  logits, aux = task.apply_net({'params': params['sync_net']}, inputs['video'], inputs['audio'])
  head = params['sync_net']['fusion_logit']
  fused = np.asarray(aux['fused'], np.float64)
  expected = fused.mean(axis=(2, 3, 4)) @ np.asarray(head['kernel'])[:, 0] + head['bias'][0]
  np.testing.assert_allclose(aux['fusion_logit'], expected, rtol=1e-4, atol=1e-5)
  assert aux['fusion_cam'].shape == fused.shape[:-1]
  loss, metrics = jax.jit(task.loss)(params, batch, None)
  np.testing.assert_allclose(loss, sync.pair_metrics(logits)[0] +
                             sync.pair_metrics(aux['fusion_logit'])[0], rtol=1e-5)
  np.testing.assert_allclose(metrics['fusion_loss'], sync.pair_metrics(aux['fusion_logit'])[0],
                             rtol=1e-5)
  np.testing.assert_allclose(jax.jit(task.evaluate)(params, batch)['fusion_pair_accuracy'],
                             np.mean(aux['fusion_logit'][:, 0] > aux['fusion_logit'][:, 1]))
  owens = fusion.SyncNet(**dict(config.model.to_dict(), fusion_logit=False))
  owens_params = owens.init(key(0), inputs['video'], inputs['audio'])['params']
  assert 'fusion_logit' not in owens_params
  assert not {'fusion_logit', 'fusion_cam'} & set(owens.apply({'params': owens_params},
                                                              inputs['video'], inputs['audio'])[1])


@pytest.mark.parametrize('correlate', [True, False])
def test_correlating_fusion_lets_the_audio_in_only_where_the_video_changes(correlate):
  """Fusion(correlate=True): the audio enters in a product with the video, both centred
  in time, so over a video whose features are the same at every step the audio changes
  nothing; Owens's concatenation lets it in everywhere."""
  layer = fusion.Fusion(features=8, audio_features=4, hidden=8, correlate=correlate)
  still = jnp.broadcast_to(jax.random.normal(key(1), (2, 1, 4, 4, 6)), (2, 5, 4, 4, 6))
  moving = jax.random.normal(key(2), (2, 5, 4, 4, 6))
  audio, other = jax.random.normal(key(3), (2, 2, 9, 5))
  params = layer.init(key(0), moving, audio)
  change = {name: np.abs(np.asarray(layer.apply(params, video, audio) -
                                    layer.apply(params, video, other))).max()
            for name, video in (('still', still), ('moving', moving))}
  assert change['moving'] > 1e-3
  assert (change['still'] < 1e-5) == correlate


def test_evaluate_under_the_softmax_loss_scores_which_track_is_aligned(config, batch, params):
  """loss='softmax': evaluate's loss and accuracy are the track loss's (does the aligned
  track score highest), not a threshold at 0 that only a sigmoid loss calibrates."""
  softmax = config.copy_and_resolve_references()
  softmax.sync.loss = 'softmax'
  task = sync.Sync(softmax)
  logits = np.asarray(task.logits(params, batch))
  evaluated = jax.jit(task.evaluate)(params, batch)
  np.testing.assert_allclose(evaluated['loss'], sync.track_metrics(logits)[0], rtol=1e-5)
  np.testing.assert_allclose(evaluated['accuracy'], np.mean(logits[:, 0] > logits[:, 1]))


def test_expand_of_a_compact_batch_gives_the_float_batch_and_its_loss(config, task, batch,
                                                                      params):
  """The compact batch (uint8, int16, the shift) expanded on the device is the float one
  preprocess gave before, from the same draws, and so is the loss."""
  rng = np.random.default_rng(0)  # As `make_batch`'s.
  reference = stack([float_preprocess(config.sync, blinking_clip(rng), rng) for _ in range(4)])
  assert batch['video'].dtype == np.uint8 and batch['audio'].dtype == np.int16
  expanded = jax.jit(task.expand)(batch)
  assert set(expanded) == set(reference)
  for k in reference:
    np.testing.assert_allclose(expanded[k], reference[k], rtol=0, atol=1e-6, err_msg=k)
  logits = task.apply_net({'params': params['sync_net']}, reference['video'],
                          reference['audio'])[0]
  np.testing.assert_allclose(jax.jit(task.evaluate)(params, batch)['loss'],  # `loss`'s loss.
                             sync.pair_metrics(logits)[0], rtol=1e-5)


def test_random_flip_flips_about_half_the_clips_left_right():
  video = jnp.asarray(np.random.default_rng(0).normal(size=(64, 2, 4, 6, 3)), jnp.float32)
  flipped = np.asarray(sync.random_flip(key(1), video))
  mirrored = np.array([np.array_equal(f, v[:, :, ::-1]) for f, v in zip(flipped, video)])
  kept = np.array([np.array_equal(f, v) for f, v in zip(flipped, video)])
  assert (mirrored != kept).all() and 16 < mirrored.sum() < 48
  np.testing.assert_array_equal(sync.random_flip(key(1), video), flipped)  # Keyed by the rng.


def test_only_training_flips_evaluation_sees_the_clips_as_they_are(config, task, batch, params):
  """`loss` with the step's rng scores `random_flip` of the video (if `flip`); `evaluate`
  (and `loss` without an rng) the video as preprocessed, the same on every call."""
  inputs, rng = task.expand(batch), key(3)
  net_params = {'params': params['sync_net']}
  logits = task.apply_net(net_params, sync.random_flip(rng, inputs['video']), inputs['audio'])[0]
  assert not np.array_equal(sync.random_flip(rng, inputs['video']), inputs['video'])
  np.testing.assert_allclose(jax.jit(task.loss)(params, batch, rng)[1]['loss'],  # conv5's.
                             sync.pair_metrics(logits)[0], rtol=1e-5)
  as_is = sync.pair_metrics(task.apply_net(net_params, inputs['video'], inputs['audio'])[0])[0]
  evaluate = jax.jit(task.evaluate)
  assert evaluate(params, batch)['loss'] == evaluate(params, batch)['loss']
  np.testing.assert_allclose(evaluate(params, batch)['loss'], as_is, rtol=1e-5)
  config = config.copy_and_resolve_references()
  config.sync.flip = False
  np.testing.assert_allclose(jax.jit(sync.Sync(config).loss)(params, batch, rng)[1]['loss'],
                             as_is, rtol=1e-5)


def test_training_on_a_fixed_batch_lowers_the_loss(task, batch, params):
  optimizer = optax.adam(3e-3)

  @jax.jit
  def step(params, opt_state):
    (_, metrics), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, None)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics

  first = jax.jit(task.evaluate)(params, batch)
  opt_state, losses = optimizer.init(params), []
  for _ in range(10):
    params, opt_state, metrics = step(params, opt_state)
    losses.append(float(metrics['loss']))
    if len(losses) == 1:  # The training loss is the one `evaluate` checks.
      assert set(metrics) == {'loss', 'accuracy', 'fusion_loss', 'fusion_accuracy'}
      np.testing.assert_allclose(metrics['loss'], first['loss'], rtol=1e-5)
      np.testing.assert_allclose(metrics['accuracy'], first['accuracy'])
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses  # About 0.5 at 3e-3.


def test_visualize_shows_each_frame_beside_its_cam(task, batch, params):
  image = task.visualize(params, batch)
  assert image.dtype == np.uint8 and image.shape == (4 * SIZE, 2 * SIZE, 3)
  middle = batch['video'][:, batch['video'].shape[1] // 2]
  np.testing.assert_array_equal(image[:SIZE, :SIZE], middle[0])
  assert (image[:, SIZE:, 0].astype(int) >= image[:, :SIZE, 0]).all()  # Tinted red.


def test_export_then_load_encoder_gives_the_trained_network(config, task, batch, params,
                                                            tmp_path):
  workdir, out = tmp_path / 'run', tmp_path / 'export'
  workdir.mkdir()
  checkpoint.save_config(config, str(workdir))
  manager = checkpoint.make_manager(str(workdir), async_save=False)
  manager.save(1, args=checkpoint.ocp.args.Composite(
      state=checkpoint.ocp.args.StandardSave({'params': params})))
  manager.wait_until_finished()
  assert export.export_encoders(str(workdir), str(out)) == ['sync_net']
  apply, loaded = export.load_encoder(str(out), 'sync_net')
  jax.tree.map(np.testing.assert_array_equal, loaded, params['sync_net'])
  inputs = task.expand(batch)  # `apply` takes the network's float inputs.
  logit, aux = jax.eval_shape(apply, loaded, (inputs['video'], inputs['audio'][:, 0]))
  assert logit.shape == (len(batch['video']),) and aux['cam'].shape[0] == len(batch['video'])
