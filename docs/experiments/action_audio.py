r"""Is the action label in what the action network sees? A hand-crafted read-out.

  python docs/experiments/action_audio.py

An experiment of docs/sync.md, not part of the package: the sounding object's
type (`action`, 8 classes, chance 0.125) of avsynth scenes from the audio of
the whole clip alone, by a hand-crafted feature (the mean log power in 32
bands of 25 ms frames, and its standard deviation over frames) and a
multinomial logistic regression (full-batch Adam, 500 steps, weight decay
1e-3) fitted on the 800 training clips and scored on the 96 test clips: all
labels, and a class-stratified 10% (`pipeline.label_subset`, as the suite's
action runs draw theirs). No
learning from the video; the action network sees this audio and more.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from avjax.configs import action as action_config
from avjax.data import ops
from avjax.data import pipeline
from avjax.data.synth import scenes

BANDS, FRAME = 32, ops.SAMPLE_RATE // 40  # 25 ms frames.


def features(audio):
  """[frames, samples] of one clip -> the mean and spread of its log band powers."""
  audio = ops.to_float(audio)
  frames = audio[:len(audio) // FRAME * FRAME].reshape(-1, FRAME)
  power = np.abs(np.fft.rfft(frames * np.hanning(FRAME), axis=1)) ** 2
  bands = np.array_split(power, BANDS, axis=1)
  log = np.log(np.stack([b.sum(axis=1) for b in bands], axis=1) + 1e-8)
  return np.concatenate([log.mean(axis=0), log.std(axis=0)])


def load(split):
  config = action_config.get_config()
  source = pipeline.load_source(config.data, split, ('audio', 'action'))
  clips = [source[i] for i in range(len(source))]
  return (np.stack([features(c['audio']) for c in clips]),
          np.array([int(c['action']) for c in clips]))


def fit(x, y, steps=500):
  """Multinomial logistic regression; returns a predict function."""
  mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
  x = (x - mean) / std
  params = {'w': jnp.zeros((x.shape[1], len(scenes.ACTIONS))), 'b': jnp.zeros(len(scenes.ACTIONS))}
  optimizer = optax.adamw(1e-2, weight_decay=1e-3)
  state = optimizer.init(params)
  loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(x @ p['w'] + p['b'], y).mean()

  @jax.jit
  def step(params, state):
    grads = jax.grad(loss)(params)
    updates, state = optimizer.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
  return lambda z: np.asarray(((z - mean) / std) @ params['w'] + params['b']).argmax(axis=1)


def main():
  x, y = load('train')
  x_test, y_test = load('test')
  print(f'{len(y)} training clips, {len(y_test)} test clips; chance {1 / len(scenes.ACTIONS):.3f}')
  for name, keep in (('all labels', np.arange(len(y))),
                     ('10% of labels', pipeline.label_subset(y, 0.1, seed=0))):
    predict = fit(x[keep], y[keep])
    print(f'{name} ({len(keep)} clips): train {np.mean(predict(x[keep]) == y[keep]):.3f}, '
          f'test {np.mean(predict(x_test) == y_test):.3f}')


if __name__ == '__main__':
  main()
