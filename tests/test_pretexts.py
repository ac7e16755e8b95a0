"""Tests for the audio-only pretexts (aot, odd) and the multitask that shares their encoder."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from avjax.data import ops
from avjax.tasks import aot
from avjax.tasks import multitask
from avjax.tasks import odd
from avjax.tasks import recon
from configs import aot as aot_config
from configs import multitask as multitask_config
from configs import odd as odd_config
from configs import recon as recon_config

SPF = 640  # Audio samples per video frame: 16 kHz at 25 fps.
NUM_FRAMES = 25  # heads_tiny clips: 1 s.
CONFIGS = {'recon': recon_config, 'aot': aot_config, 'odd': odd_config,
           'multitask': multitask_config}
TASKS = {'recon': recon.Recon, 'aot': aot.ArrowOfTime, 'odd': odd.OddOneOut,
         'multitask': multitask.Multitask}


def key(seed):
  """A PRNG key; 'rbg' compiles far faster than threefry on a CPU."""
  return jax.random.key(seed, impl='rbg')


def int16(audio):
  return (np.asarray(audio) * 32767).astype(np.int16)


def crescendo(rng, num_frames=NUM_FRAMES):
  """A tone that grows louder: played backwards it fades, so AoT can tell."""
  n = num_frames * SPF
  t = np.arange(n) / 16000
  tone = np.sin(2 * np.pi * rng.uniform(200, 800) * t + rng.uniform(0, 2 * np.pi))
  return {'audio': int16(np.linspace(0.05, 0.9, n) * tone)}


def glide(rng, num_frames=NUM_FRAMES):
  """A smooth frequency glide: shuffled chunks break its phase, so Odd can tell."""
  n = num_frames * SPF
  phase = np.cumsum(np.linspace(*rng.uniform(150, 600, 2), n)) / 16000
  return {'audio': int16(0.8 * np.sin(2 * np.pi * phase + rng.uniform(0, 2 * np.pi)))}


def talking(rng, size=32, num_frames=NUM_FRAMES):
  """An example with everything recon reads too (its video is noise)."""
  mouth = np.array([size // 2, size // 3, 3 * size // 4, 2 * size // 3], np.int32)
  return dict(glide(rng, num_frames),
              video=rng.integers(0, 256, (num_frames, size, size, 3), np.uint8),
              mouth_box=np.tile(mouth, (num_frames, 1)),
              neutral_frame=rng.integers(0, 256, (size, size, 3), np.uint8),
              neutral_mouth_box=mouth)


def make_batch(task, make_example, num_examples, rng, **kwargs):
  examples = [task.preprocess(make_example(rng, **kwargs), rng) for _ in range(num_examples)]
  return jax.tree.map(lambda *x: np.stack(x), *examples)


def expand_one(task, example):
  """`task.expand` of one preprocessed example, as numpy."""
  return jax.tree.map(lambda x: np.asarray(x[0]), task.expand(jax.tree.map(lambda x: x[None],
                                                                             example)))


def find_crop(windows, clip_windows):
  """The starts at which `windows` [T, W] is a run of `clip_windows` [N, W]."""
  t = len(windows)
  return [s for s in range(len(clip_windows) - t + 1)
          if np.array_equal(windows, clip_windows[s:s + t])]


def test_every_pretext_builds_recons_audio_encoder():
  """Same module name, same shapes: the exported encoders are interchangeable.

  (The tiny presets are held to it by `merge_params` in the multitask test.)
  """
  rng = np.random.default_rng(0)
  shapes = {}
  for name, task_class in TASKS.items():
    task = task_class(CONFIGS[name].get_config())
    batch = make_batch(task, talking, 1, rng, size=64, num_frames=50)
    params = jax.eval_shape(task.init, key(0), batch)
    shapes[name] = jax.tree.map(lambda x: x.shape, params['audio_encoder'])
    assert task.encoders()['audio_encoder'][1] == 'audio'
  assert all(s == shapes['recon'] for s in shapes.values())


def test_aot_preprocess_reverses_the_waveform():
  task = aot.ArrowOfTime(aot_config.get_config('tiny'))
  t = task.config.num_frames
  example = {'audio': int16(np.random.default_rng(0).uniform(-0.5, 0.5, NUM_FRAMES * SPF))}
  waveform = ops.to_float(example['audio'])
  forward = task.audio_encoder.windows(waveform)
  backward = task.audio_encoder.windows(waveform[::-1])
  rng = np.random.default_rng(1)
  labels = []
  for _ in range(20):
    compact = task.preprocess(example, rng)
    assert compact['audio'].dtype == np.int16  # The samples its windows read.
    out = expand_one(task, compact)
    label = int(out['label'])
    labels.append(label)
    assert out['audio'].shape == forward[:t].shape and out['audio'].dtype == np.float32
    expected, other = (backward, forward) if label else (forward, backward)
    starts = find_crop(out['audio'], expected)
    assert len(starts) == 1 and not find_crop(out['audio'], other)
    # `evaluate` reverses windows in jax: they must be the other direction's, mirrored.
    mirrored = len(forward) - t - starts[0]
    np.testing.assert_array_equal(aot.reverse_windows(out['audio']),
                                  other[mirrored:mirrored + t])
  assert 0 < sum(labels) < len(labels)


def test_odd_preprocess_shuffles_exactly_the_labelled_segment():
  config = odd_config.get_config('tiny')
  task = odd.OddOneOut(config)
  t, n, chunk = config.odd.num_frames, config.odd.num_segments, config.odd.chunk_samples
  ctx, segment = config.model.audio.context, t // n * SPF
  index = np.arange(NUM_FRAMES * SPF)  # Each sample holds its own index.
  example = {'audio': index.astype(np.int16)}
  rng = np.random.default_rng(0)
  labels = set()
  for _ in range(20):
    out = expand_one(task, task.preprocess(example, rng))
    label = int(out['label'])
    labels.add(label)
    # The crop's samples (each window's middle) and where the crop starts.
    samples = np.round(out['audio'][:, ctx:ctx + SPF] * 32768).astype(int).reshape(-1)
    start = samples.min()
    assert start % SPF == 0
    wanted = np.split(start + np.arange(t * SPF), n)
    for i, (got, want) in enumerate(zip(np.split(samples, n), wanted)):
      if i != label:
        np.testing.assert_array_equal(got, want)
        continue
      assert not np.array_equal(got, want)
      chunks = got.reshape(-1, chunk)  # Whole chunks, reordered.
      runs = np.arange(chunk)[None].repeat(len(chunks), 0)
      np.testing.assert_array_equal(chunks - chunks[:, :1], runs)
      np.testing.assert_array_equal(np.sort(chunks[:, 0]), want[::chunk])
    # The windows are those of the shuffled waveform: neighbours hear the shuffle in their context.
    shuffled = index.copy()
    shuffled[start:start + t * SPF] = samples
    np.testing.assert_array_equal(
        out['audio'], task.audio_encoder.windows(ops.to_float(shuffled))[start // SPF:][:t])
  assert labels == set(range(n))


def train(task, make_example, steps, seed=0):
  """Adam on fresh batches; returns the jitted evaluate, a held-out batch, and the
  held-out metrics before and after with the trained parameters."""
  rng = np.random.default_rng(seed)
  held_out = make_batch(task, make_example, 64, rng)
  params = jax.jit(task.init)(key(seed), held_out)
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))

  @jax.jit
  def step(params, opt_state, batch):
    grads, _ = jax.grad(task.loss, has_aux=True)(params, batch, None)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  evaluate = jax.jit(task.evaluate)
  before = evaluate(params, held_out)
  opt_state = optimizer.init(params)
  for _ in range(steps):
    params, opt_state = step(params, opt_state, make_batch(task, make_example, 32, rng))
  return functools.partial(evaluate, params), held_out, before, evaluate(params, held_out)


def assert_learned(before, after, chance):
  assert set(after) == {'accuracy', 'loss'}
  assert after['loss'] < 0.7 * before['loss'], (before, after)
  assert after['accuracy'] > chance + (1 - chance) / 2, (before, after)


def test_aot_learns_and_scores_each_clip_both_ways():
  task = aot.ArrowOfTime(aot_config.get_config('tiny'))
  evaluate, held_out, before, after = train(task, crescendo, steps=60)
  assert_learned(before, after, chance=0.5)
  # Deterministic, and balanced: reversing every clip and its label changes nothing. A
  # compact clip is reversed where its label is 1, so flipping the label reverses it.
  flipped = {'audio': held_out['audio'], 'label': 1 - held_out['label']}
  np.testing.assert_array_equal(task.expand(flipped)['audio'],
                                aot.reverse_windows(task.expand(held_out)['audio']))
  np.testing.assert_array_equal(evaluate(held_out)['loss'], after['loss'])
  np.testing.assert_allclose(evaluate(flipped)['loss'], after['loss'], rtol=1e-5)
  assert evaluate(flipped)['accuracy'] == after['accuracy']


def test_odd_learns():
  task = odd.OddOneOut(odd_config.get_config('tiny'))
  evaluate, held_out, before, after = train(task, glide, steps=80)
  assert_learned(before, after, chance=0.25)
  np.testing.assert_array_equal(evaluate(held_out)['loss'], after['loss'])


def test_multitask_trains_one_audio_encoder_with_every_loss():
  config = multitask_config.get_config('tiny')
  task = multitask.Multitask(config)
  weights = dict(config.multitask.weights)
  batch = make_batch(task, talking, 4, np.random.default_rng(0))
  assert set(batch) == set(weights)
  shapes = jax.eval_shape(task.init, key(0), batch)
  assert set(shapes) == {'audio_encoder', 'identity_encoder', 'frame_decoder',
                         'aot_head', 'odd_head'}
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(shapes)]
  assert all("'audio_encoder'" not in p or p.startswith("['audio_encoder']") for p in paths)
  evaluated = jax.eval_shape(task.evaluate, shapes, batch)
  assert {'recon_l1', 'aot_accuracy', 'odd_accuracy'} <= set(evaluated)
  # Random parameters rather than `init`'s (cheaper to get, and recon's decoder starts at
  # zero, which would zero its gradient into the encoder).
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda x: 0.1 * rng.normal(size=x.shape).astype(np.float32), shapes)
  loss_and_grad = jax.jit(jax.value_and_grad(task.loss, has_aux=True))
  (loss, metrics), grads = loss_and_grad(params, batch, key(1))
  assert {'recon_l1', 'aot_accuracy', 'odd_accuracy', 'aot_loss', 'loss'} <= set(metrics)
  np.testing.assert_allclose(
      loss, sum(w * metrics[f'{name}_loss'] for name, w in weights.items()), rtol=1e-5)

  # Zeroing a task's own modules (all but the shared encoder) cuts its path to the encoder.
  def encoder_grad_without(names):
    own = {m for name in names for m in jax.eval_shape(
        task.tasks[name].init, key(0), batch[name])} - {'audio_encoder'}
    cut = {m: jax.tree.map(jnp.zeros_like, v) if m in own else v for m, v in params.items()}
    return loss_and_grad(cut, batch, key(1))[1]['audio_encoder']

  norm = optax.tree.norm(grads['audio_encoder'])
  assert norm > 0
  for name in weights:  # Every task's gradient reaches the shared encoder.
    difference = jax.tree.map(jnp.subtract, grads['audio_encoder'], encoder_grad_without([name]))
    assert optax.tree.norm(difference) > 1e-2 * norm, name
  assert optax.tree.norm(encoder_grad_without(weights)) == 0  # No other path.


def test_merge_params_rejects_a_clash_and_bad_weights():
  a = {'audio_encoder': {'w': jnp.zeros((2, 3))}, 'aot_head': {'w': jnp.zeros(3)}}
  b = {'audio_encoder': {'w': jnp.ones((2, 3))}, 'odd_head': {'w': jnp.zeros(3)}}
  merged = multitask.merge_params({'aot': a, 'odd': b})
  assert set(merged) == {'audio_encoder', 'aot_head', 'odd_head'}
  assert merged['audio_encoder'] is a['audio_encoder']
  with pytest.raises(ValueError, match="'aot_head'"):
    multitask.merge_params({'aot': a, 'other': {'aot_head': {'w': jnp.zeros(4)}}})
  config = multitask_config.get_config('tiny')
  config.multitask.weights = {'recon': 1.0, 'nosuch': 1.0}
  with pytest.raises(ValueError, match='nosuch'):
    multitask.Multitask(config)
