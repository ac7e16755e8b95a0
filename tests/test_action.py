"""Tests for the action task: the sync network fine-tuned to classify the sounding object."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avjax import checkpoint
from avjax import export
from avjax import tasks
from avjax import train
from avjax.data import ops
from avjax.data import pipeline
from avjax.data.synth import scenes
from avjax.models import fusion
from avjax.tasks import action
from avjax.tasks import classification
from avjax.tasks import sync
from configs import action as action_config
from configs import sync as sync_config

SPF = 640  # Audio samples per video frame: 16 kHz at 25 fps.
NUM_FRAMES, SIZE = 50, 32  # scenes_tiny clips: 2 s of 32x32 frames.
TINY_RUN = dict(batch_size=4, total_steps=2, log_every=1, eval_every=2, checkpoint_every=2)


def key(seed):
  """A PRNG key; 'rbg' compiles far faster than threefry on a CPU."""
  return jax.random.key(seed, impl='rbg')


def indexed_clip(downsample, label=5):
  """Audio sample i holds i; frame t's red channel is 5 t, its green 7 (x // downsample):
  after averaging `downsample` x `downsample` blocks, 7 times the shown column."""
  video = np.zeros((NUM_FRAMES, SIZE, SIZE, 3), np.uint8)
  video[..., 0] = 5 * np.arange(NUM_FRAMES)[:, None, None]
  video[..., 1] = 7 * (np.arange(SIZE) // downsample)
  return {'audio': np.arange(NUM_FRAMES * SPF).astype(np.int16), 'video': video,
          'action': np.int32(label)}


def tiny_config(data_dir='', **action_overrides):
  config = action_config.get_config('tiny')
  config.update(TINY_RUN)
  config.data.data_dir = data_dir
  config.action.update(action_overrides)
  return config


def make_batch(task, num_examples=4):
  rng, preset = np.random.default_rng(0), scenes.PRESETS['scenes_tiny']
  examples = [task.preprocess(scenes.render_clip(preset, 'train', i), rng)
              for i in range(num_examples)]
  return jax.tree.map(lambda *x: np.stack(x), *examples)


@pytest.fixture(scope='module')
def task():
  return action.Action(tiny_config())


@pytest.fixture(scope='module')
def batch(task):
  return make_batch(task)


@pytest.fixture(scope='module')
def sync_export(tmp_path_factory):
  """A tiny sync run's `sync_net` exported: (export dir, its params).

  The run's checkpoint holds random parameters of sync's tiny model, saved as
  the trainer saves them (as tests/test_separation.py does): training sync
  first (2 steps) took this file from 64 s to 118 s on a busy 2-core CPU.
  """
  config = sync_config.get_config('tiny')
  net = fusion.SyncNet(**config.model.to_dict())
  frames = -(-config.sync.window_frames // config.sync.frame_stride)
  shapes = jax.eval_shape(net.init, key(0), jnp.zeros((1, frames, 16, 16, 3)),
                          jnp.zeros((1, 2560)))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes['params'])
  workdir = tmp_path_factory.mktemp('sync_run')
  out = str(tmp_path_factory.mktemp('sync_export'))
  checkpoint.save_config(config, str(workdir))
  manager = checkpoint.make_manager(str(workdir), async_save=False)
  manager.save(1, args=checkpoint.ocp.args.Composite(
      state=checkpoint.ocp.args.StandardSave({'params': {'sync_net': params}})))
  manager.wait_until_finished()
  assert export.export_encoders(str(workdir), out) == ['sync_net']
  return out, params


@pytest.mark.parametrize('arg', [None, 'tiny', 'paper'])
def test_presets_follow_sync_and_build_a_classifier(arg):
  config = action_config.get_config(arg)
  synced = sync_config.get_config(arg)
  assert config.task == 'action' and tasks.TASKS['action'] is action.Action
  assert config.model.sync == synced.model
  for field in ('window_frames', 'frame_stride', 'frame_downsample', 'flip'):
    assert config.action[field] == synced.sync[field], field
  assert config.action.num_classes == len(scenes.ACTIONS) and config.action.init_sync == ''
  task = action.Action(config)
  module, input_key = task.encoders()['sync_net']
  assert module is task.net and input_key == ('video', 'audio')
  clip = scenes.render_clip(scenes.PRESETS[config.data.config], 'train', 3)
  out = task.preprocess({k: clip[k] for k in task.features}, np.random.default_rng(0))
  frames, stride = config.action.window_frames, config.action.frame_stride
  size = clip['video'].shape[1] // config.action.frame_downsample
  assert out['video'].shape == (-(-frames // stride), size, size, 3)
  assert out['audio'].shape == (frames * SPF,) and out['label'] == clip['action'] == 3
  assert (out['video'].dtype, out['audio'].dtype, out['label'].dtype) == (
      np.uint8, np.int16, np.int32)
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct((2,) + x.shape, x.dtype), out)
  params = jax.eval_shape(task.init, key(0), shapes)
  assert set(params) == {'sync_net', 'head'}
  assert jax.eval_shape(task.predict, params, shapes).shape == (2, len(scenes.ACTIONS))


def test_preprocess_takes_a_window_with_the_audio_under_it():
  task = action.Action(tiny_config(frame_stride=2))  # Every other frame: the subsampling.
  frames, stride = task.config.window_frames, task.config.frame_stride
  width = SIZE // task.config.frame_downsample
  clip, rng = indexed_clip(task.config.frame_downsample, label=6), np.random.default_rng(0)
  starts = set()
  expand = jax.jit(task.expand)
  for _ in range(30):
    out = task.preprocess(clip, rng)
    assert set(out) == {'video', 'audio', 'label'}  # No augmentation: `loss` flips.
    start = int(out['video'][0, 0, 0, 0]) // 5
    np.testing.assert_array_equal(out['video'][:, 0, 0, 0].astype(int) // 5,
                                  start + np.arange(0, frames, stride))
    pixels = np.round((expand(jax.tree.map(lambda x: x[None], out))['video'][0] + 1) * 127.5)
    np.testing.assert_array_equal(pixels[0, 0, :, 1] // 7, np.arange(width))  # Not flipped.
    assert out['video'].shape == (-(-frames // stride), width, width, 3)
    samples = out['audio'].astype(int)
    np.testing.assert_array_equal(samples, start * SPF + np.arange(frames * SPF))
    assert out['label'] == 6
    starts.add(start)
  assert len(starts) > 10 and max(starts) <= NUM_FRAMES - frames


def float_preprocess(config, example, rng):
  """The float example the action task's preprocess gave before compact batches (numpy,
  the same draws): the reference that `expand` of a compact batch must give."""
  frames = config.window_frames
  room = min(len(example['video']), len(example['audio']) // SPF) - frames
  start = int(rng.integers(0, max(room, 0) + 1))
  samples, clip = ops.time_crop(example['audio'], example['video'], start, frames)
  clip = clip[::config.frame_stride]
  if config.frame_downsample > 1:
    clip = ops.downsample_frames(clip, config.frame_downsample)
  clip = clip.astype(np.float32) / 127.5 - 1.0
  return {'video': clip, 'audio': samples.astype(np.float32) / 32768.0,
          'label': np.int32(example['action'])}


def test_expand_of_a_compact_batch_gives_the_float_batch_and_its_loss(task, action_run):
  """Compact examples (uint8, int16) expanded on the device are the float ones
  preprocess gave before, from the same draws, and so is the loss."""
  seeds, preset = range(4), scenes.PRESETS['scenes_tiny']
  clips = [scenes.render_clip(preset, 'train', i) for i in seeds]
  stack = lambda examples: jax.tree.map(lambda *x: np.stack(x), *examples)
  compact = stack([task.preprocess(c, np.random.default_rng(s)) for c, s in zip(clips, seeds)])
  reference = stack([float_preprocess(task.config, c, np.random.default_rng(s))
                     for c, s in zip(clips, seeds)])
  assert compact['video'].dtype == np.uint8 and compact['audio'].dtype == np.int16

  def float_loss(params, batch):  # The loss of the float batch, as computed before.
    _, aux = task.net.apply({'params': params['sync_net']}, batch['video'], batch['audio'])
    features = action.pooled(aux, task.config.head_inputs)
    logits = task.head.apply({'params': params['head']}, features)
    return classification.class_metrics(logits, batch['label'])[0]

  expanded, loss, expected = jax.jit(lambda p, c, r: (
      task.expand(c), task.loss(p, c, None)[0], float_loss(p, r)))(action_run[2], compact,
                                                                  reference)
  assert set(expanded) == set(reference)
  for k in reference:
    np.testing.assert_allclose(expanded[k], reference[k], rtol=0, atol=1e-6, err_msg=k)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_pooled_averages_each_map_over_time_and_space_and_concatenates_them():
  rng = np.random.default_rng(0)
  aux = {'conv5': rng.normal(size=(2, 3, 4, 4, 5)), 'audio': rng.normal(size=(2, 7, 6))}
  expected = np.concatenate([aux['conv5'].reshape(2, -1, 5).mean(1), aux['audio'].mean(1)], -1)
  np.testing.assert_allclose(action.pooled(aux, ('conv5', 'audio')), expected, rtol=1e-5)
  np.testing.assert_allclose(action.pooled(aux, ('conv5',)), expected[:, :5], rtol=1e-5)


def test_a_prefix_of_the_train_split_is_not_class_balanced(data_dir):
  """As configs/action.py says: records are stored in hashed-key order, not clip order."""
  data = tiny_config(data_dir).data
  actions = lambda split: np.bincount(
      [int(x['action']) for x in pipeline.load_source(data, split)], minlength=8)
  np.testing.assert_array_equal(actions('train'), [3] * 8)  # 24 clips, clip i's action i % 8.
  assert actions('train[:50%]').min() == 0  # 12 clips, yet some class is missing.


@pytest.fixture(scope='module')
def action_run(sync_export, data_dir, tmp_path_factory):
  """The tiny preset trained 2 steps from the exported sync network: (config, workdir, params)."""
  config = tiny_config(data_dir, init_sync=sync_export[0])
  workdir = tmp_path_factory.mktemp('action_run')
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == 2
  return config, workdir, jax.device_get(state.params)


def test_tiny_run_fine_tunes_the_sync_net_with_a_finite_loss(action_run, sync_export):
  _, workdir, params = action_run
  assert set(params) == {'sync_net', 'head'}
  moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), params['sync_net'], sync_export[1])
  assert any(jax.tree.leaves(moved))  # The sync network is fine-tuned, not frozen.
  with open(workdir / 'metrics.jsonl') as f:
    rows = [json.loads(line) for line in f]
  losses = [r['loss'] for r in rows if 'loss' in r]
  assert len(losses) == 2 and np.isfinite(losses).all()
  assert [r['val_accuracy'] for r in rows if 'val_accuracy' in r]


def test_predict_gives_the_logits_that_loss_and_evaluate_score(action_run, batch):
  config, _, params = action_run
  task = action.Action(config)
  assert task.visualize(params, batch) is None
  logits, (loss, metrics), evaluated = jax.jit(
      lambda p, b: (task.predict(p, b), task.loss(p, b, None), task.evaluate(p, b)))(params, batch)
  assert logits.shape == (4, len(scenes.ACTIONS)) and logits.dtype == np.float32
  logits, labels = np.asarray(logits, np.float64), batch['label']
  log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  np.testing.assert_allclose(loss, -log_softmax[np.arange(4), labels].mean(), rtol=1e-4)
  assert set(metrics) == set(evaluated) == {'loss', 'accuracy'}
  np.testing.assert_allclose(metrics['accuracy'], np.mean(logits.argmax(1) == labels))
  np.testing.assert_allclose(evaluated['loss'], loss, rtol=1e-6)
  np.testing.assert_allclose(evaluated['accuracy'], metrics['accuracy'])


def test_only_training_flips_evaluation_sees_the_clips_as_they_are(action_run, batch):
  """`loss` with the step's rng reads `sync.random_flip` of the video; `evaluate` reads it
  as preprocessed."""
  config, _, params = action_run
  task, rng = action.Action(config), key(3)
  mirrored = dict(batch, video=np.asarray(sync.random_flip(rng, batch['video'])))
  assert not np.array_equal(mirrored['video'], batch['video'])
  loss, evaluated, expected, as_is = jax.jit(lambda p, b, m: (
      task.loss(p, b, rng)[0], task.evaluate(p, b)['loss'],
      task.loss(p, m, None)[0], task.loss(p, b, None)[0]))(params, batch, mirrored)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(evaluated, as_is, rtol=1e-6)


def test_init_sync_loads_the_exported_sync_net_exactly(sync_export, batch):
  out, exported = sync_export
  loaded = jax.jit(action.Action(tiny_config(init_sync=out)).init)(key(0), batch)
  assert set(loaded) == {'sync_net', 'head'}
  jax.tree.map(np.testing.assert_array_equal, loaded['sync_net'], exported)
  sync = tiny_config().model.sync  # The head reads conv5 and the audio stream's output.
  width = sync.video_features[-1] + sync.audio_features[-1]
  assert loaded['head']['kernel'].shape == (width, len(scenes.ACTIONS))


def test_init_sync_of_another_shape_says_so(sync_export, batch):
  config = tiny_config(init_sync=sync_export[0])
  config.model.sync.fusion_hidden = 24
  task = action.Action(config)
  with pytest.raises(ValueError, match=r'differs from the one config.model.sync builds.*fusion'):
    jax.eval_shape(task.init, key(0), batch)
