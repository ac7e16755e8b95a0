r"""Does the sync network learn the supervised action task at a learning rate?

  python docs/experiments/action_lr.py LEARNING_RATE [STEPS]

An experiment of docs/sync.md, not part of the package: configs/action.py's
network from scratch, trained with constant Adam at LEARNING_RATE on random
windows of the first 160 avsynth training scenes (batch 16, rendered in this
process), and scored on one window of each of the first 48 validation
scenes; prints the mean training loss of each 20 steps (chance ln 8 = 2.079)
and the validation accuracy (chance 0.125). Then, as a control, the same
network fitted to one fixed batch for 40 steps. One seed (0).
"""

import sys

import jax
import numpy as np
import optax

from avjax.configs import action as action_config
from avjax.data.synth import scenes
from avjax.tasks import action


def stack(task, clips, rng):
  return jax.tree.map(lambda *x: np.stack(x), *[task.preprocess(c, rng) for c in clips])


def main(learning_rate, steps):
  task = action.Action(action_config.get_config())
  world, rng = scenes.PRESETS['scenes'], np.random.default_rng(0)
  train = [scenes.render_clip(world, 'train', i) for i in range(160)]
  val = stack(task, [scenes.render_clip(world, 'validation', i) for i in range(48)], rng)
  draw = lambda: stack(task, [train[i] for i in rng.integers(0, len(train), 16)], rng)
  optimizer = optax.adam(learning_rate)

  @jax.jit
  def step(params, opt_state, batch):
    (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, None)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  evaluate = jax.jit(task.evaluate)
  fixed = draw()
  for name, batches, count in (('fresh windows', draw, steps),
                               ('one fixed batch', lambda: fixed, 40)):
    params = task.init(jax.random.key(0), fixed)
    opt_state, losses = optimizer.init(params), []
    for i in range(1, count + 1):
      params, opt_state, loss = step(params, opt_state, batches())
      losses.append(float(loss))
      if i % 20 == 0:
        print(f'{name}, step {i}: train loss {np.mean(losses[-20:]):.3f}, validation accuracy '
              f'{float(evaluate(params, val)["accuracy"]):.3f}', flush=True)


if __name__ == '__main__':
  main(float(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 100)
