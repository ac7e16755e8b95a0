"""A cheap linear probe of the audio encoder, run by the trainer at each evaluation.

The first `config.probe.num_examples` validation clips are encoded once per
evaluation; their time-averaged features, standardised, feed a closed-form
ridge regression onto one-hot labels (each of `config.probe.labels`, e.g.
emotion or speaker), fitted on the even-numbered clips and scored (accuracy)
on the odd ones. Off when `labels` is empty, and skipped, with one log line,
for a task without an `audio_encoder` or a dataset without those labels.
"""

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from avjax.data import ops
from avjax.data import pipeline


def ridge_accuracy(train_x, train_y, test_x, test_y, ridge=1.0):
  """Accuracy on (test_x, test_y) of ridge regression onto one-hot train labels.

  Features are standardised with the train statistics and get a bias column;
  the weights solve (X'X + ridge I) W = X'Y. A test class never seen in
  training counts as wrong.
  """
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  design = lambda x: np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
  classes = np.unique(train_y)
  x = design(np.asarray(train_x, np.float64))
  targets = (np.asarray(train_y)[:, None] == classes).astype(np.float64)
  weights = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ targets)
  predictions = classes[(design(np.asarray(test_x, np.float64)) @ weights).argmax(1)]
  return float(np.mean(predictions == np.asarray(test_y)))


class LinearProbe:
  """`probe(params) -> {'probe_LABEL_acc': accuracy}` for an audio encoder's params."""

  def __init__(self, encoder, windows, labels, batch_size=64):
    self._windows = windows
    self._labels = labels
    self._batch_size = batch_size
    self._encode = jax.jit(lambda p, x: encoder.apply({'params': p}, x)[0].mean(axis=1))

  def __call__(self, params):
    params = params['audio_encoder']
    if jax.process_count() > 1:
      params = multihost_utils.process_allgather(params, tiled=True)
    size = self._batch_size
    features = []
    for start in range(0, len(self._windows), size):
      batch = self._windows[start:start + size]
      padded = np.concatenate([batch, np.zeros((size - len(batch),) + batch.shape[1:],
                                                batch.dtype)])
      features.append(np.asarray(self._encode(params, padded))[:len(batch)])
    x = np.concatenate(features)
    return {f'probe_{name}_acc': ridge_accuracy(x[0::2], y[0::2], x[1::2], y[1::2])
            for name, y in self._labels.items()}


def from_config(config, task):
  """The probe that `config.probe` asks for on `task`'s audio encoder, or None."""
  labels = tuple(config.get('probe', {}).get('labels', ()))
  if not labels:
    return None
  encoder = task.encoders().get('audio_encoder', (None,))[0]
  if encoder is None:
    logging.info('linear probe skipped: task %s has no audio_encoder', config.task)
    return None
  source = pipeline.load_source(config.data, config.data.eval_split)
  clips = [source[i] for i in range(min(config.probe.num_examples, len(source)))]
  missing = [k for k in ('audio',) + labels if k not in clips[0]]
  if missing or len(clips) < 4:
    logging.info('linear probe skipped: %s lacks %s or has fewer than 4 clips',
                 config.data.eval_split, missing)
    return None
  windows = [encoder.windows(ops.to_float(c['audio'])) for c in clips]
  windows = np.stack([w[:min(map(len, windows))] for w in windows])  # Real clips vary.
  return LinearProbe(encoder, windows.astype(np.float32),
                     {k: np.array([c[k] for c in clips]) for k in labels})
