r"""The sync pretext on avsynth scenes whose objects are `scale` times their size.

  python docs/experiments/sync_world.py SCALE MAX_SILENT STEPS [--config.KEY=VALUE ...]

An experiment of docs/sync.md, not part of the package: is the sync network's
failure to learn on avsynth scenes the objects' size (1-3% of the frame each)?
Renders 400 training and 96 validation scenes in this process with every
object `SCALE` times its size (1: the scenes as built) and 1..MAX_SILENT
silent movers (0: none), trains configs/sync.py (its overrides from the
command line, e.g. --config.sync.frame_stride=1) for STEPS steps on random
windows of them, and prints the validation pair accuracy beside the
hand-crafted detector's on the same windows. One seed (0).
"""

import ast
import functools
import sys

import jax
import numpy as np
import optax

from avjax import train
from avjax.data.synth import scenes
from avjax.evaluate import sync_detector
from avjax.tasks import sync
from avjax.configs import sync as sync_config


def scaled_mover(scale):
  """avsynth's `scenes._mover` with objects `scale` times their size."""
  def mover(rng, st, kind, sounding, horizon):
    s = st.size * rng.uniform(0.08, 0.13) * scale
    cx = rng.uniform(0.05, 0.95) * st.size
    if kind in scenes._FLOATING:
      base = rng.uniform(0.15, 0.85) * st.size
    else:
      base = rng.uniform(horizon + 0.05 * st.size, 1.02 * st.size)
    layers, drive, sound = scenes._MAKERS[kind](rng, st, s, cx, base)
    layers = tuple((a.astype(np.float32), np.asarray(c, np.float32)) for a, c in layers)
    return scenes.SceneObject(kind, sounding, layers, drive.astype(np.float32), sound)
  return mover


def render(world, split, count):
  return [scenes.render_clip(world, split, i) for i in range(count)]


def batch_of(task, clips, rng, size):
  picks = rng.integers(0, len(clips), size)
  examples = [task.preprocess(clips[i], rng) for i in picks]
  return jax.tree.map(lambda *x: np.stack(x), *examples)


def main(scale, max_silent, steps, overrides):
  scenes._mover = scaled_mover(scale)
  world = scenes.ScenesConfig(max_silent=max(max_silent, 1), train_clips=400)
  if max_silent == 0:  # No silent movers: keep the sounding object only.
    sample = scenes.sample_scene
    scenes.sample_scene = lambda *a, **k: _without_silent(sample(*a, **k))
  train_clips, val_clips = render(world, 'train', 400), render(world, 'validation', 96)
  config = sync_config.get_config()
  for item in overrides:
    key, value = item.removeprefix('--config.').split('=')
    *path, name = key.split('.')
    node = functools.reduce(getattr, path, config)
    old = node[name]
    node[name] = value if isinstance(old, str) else type(old)(ast.literal_eval(value))
  task = sync.Sync(config)
  rng = np.random.default_rng(0)
  val = batch_of(task, val_clips, np.random.default_rng(1), 96)
  params = jax.jit(task.init)(jax.random.key(0), batch_of(task, train_clips, rng, 2))
  optimizer, _ = train.make_optimizer(config.optimizer, steps)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, batch, key):
    (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  evaluate = jax.jit(task.evaluate)
  stride = config.sync.frame_stride
  print(f'detector on the validation windows: pair accuracy '
        f'{sync_detector.aligned_first(val["video"], val["audio"], stride).mean():.3f}')
  losses = []
  for i in range(1, steps + 1):
    batch = batch_of(task, train_clips, rng, config.batch_size)
    params, opt_state, loss = step(params, opt_state, batch, jax.random.key(i))
    losses.append(float(loss))
    if i % 50 == 0 or i == steps:
      pair = np.mean([float(evaluate(params, jax.tree.map(lambda x: x[j:j + 16], val))
                            ['pair_accuracy']) for j in range(0, 96, 16)])
      print(f'step {i}: train loss {np.mean(losses[-50:]):.4f}, val pair accuracy {pair:.3f}',
            flush=True)


def _without_silent(scene):
  movers = [o for o in scene.objects if o.kind != 'clutter']
  keep = tuple(o for o in scene.objects if o.kind == 'clutter' or o.sounding)
  assert sum(o.sounding for o in movers) == 1
  return scene.__class__(scene.background, scene.light, keep, scene.action, scene.snr_db,
                         scene.audio)


if __name__ == '__main__':
  main(float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
