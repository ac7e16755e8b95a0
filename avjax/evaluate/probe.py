"""Trains a BGRU head on per-frame features, frozen or fine-tuned with the encoder.

  probe = Probe('classify', num_classes, config)              # frozen features
  probe = Probe('classify', num_classes, config, encoder)     # fine-tuning
  params = probe.init(seed, train_inputs, encoder_params)
  params, val_score = probe.fit(params, train_inputs, train, val_inputs, val, seed)
  predictions = probe.predict(params, test_inputs, test)

`inputs` hold one entry per clip: features [N, T, D] when frozen, the
encoder's inputs [N, T, W] when fine-tuning, or a tuple of arrays [N, ...]
that `encoder_apply` takes as its second argument (e.g. windows and each
clip's length, for clips padded to one length). `Examples` say which clip and
which of its frames each example reads, and its target: a class per example
('classify': cross-entropy on the mean of the head's GRU outputs) or
per-frame values ('regress': loss 1 - CCC over the batch's valid frames,
averaged over outputs). The head trains for `config.steps` steps on batches
drawn with replacement; every `config.eval_every` steps it is scored on the
validation examples (accuracy, or mean CCC), the best parameters are kept, and
training stops after `config.patience` evaluations without improvement.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from avjax.evaluate import metrics
from avjax.models import heads

KINDS = ('classify', 'regress')


@dataclasses.dataclass(frozen=True)
class Examples:
  """What a probe trains or is scored on."""
  clip: np.ndarray    # [N] int32: the clip (row of `inputs`) each example reads.
  index: np.ndarray   # [N, L] int32: its frames in that clip, left-aligned.
  length: np.ndarray  # [N] int32: how many of `index` are valid.
  target: np.ndarray  # [N] int32 classes, or [N, L, K] float32 per-frame values.

  def __len__(self):
    return len(self.clip)

  def take(self, rows):
    return Examples(*(np.asarray(a)[rows] for a in dataclasses.astuple(self)))


def whole_clips(lengths, target):
  """One example per clip, reading its first `lengths` [N] frames (all of a clip's
  frames, when its features are padded after them); `index` is [N, max(lengths)]."""
  lengths = np.asarray(lengths, np.int32)
  num_frames = int(lengths.max())
  index = np.broadcast_to(np.arange(num_frames, dtype=np.int32), (len(lengths), num_frames))
  return Examples(np.arange(len(lengths), dtype=np.int32), np.ascontiguousarray(index),
                  lengths, np.asarray(target))


def masked_ccc(x, y, mask):
  """jnp CCC of x and y [...] over the entries where `mask` is 1."""
  n = jnp.maximum(mask.sum(), 1.0)
  mx, my = (x * mask).sum() / n, (y * mask).sum() / n
  vx, vy = (((x - mx) ** 2) * mask).sum() / n, (((y - my) ** 2) * mask).sum() / n
  cov = ((x - mx) * (y - my) * mask).sum() / n
  return 2.0 * cov / (vx + vy + (mx - my) ** 2 + 1e-8)


def score(kind, predictions, examples):
  """Accuracy ('classify') or mean CCC over outputs on the valid frames ('regress')."""
  if kind == 'classify':
    return metrics.accuracy(examples.target, predictions)
  valid = np.arange(examples.index.shape[1]) < examples.length[:, None]
  return float(np.mean([metrics.ccc(examples.target[valid][:, k], predictions[valid][:, k])
                        for k in range(examples.target.shape[-1])]))


class Probe:
  """A BGRU head over frozen features, or over an encoder it fine-tunes.

  `config` fields: hidden (GRU width), steps, batch_size, eval_batch_size,
  eval_every, patience, learning_rate (Adam, head), and encoder_learning_rate
  when fine-tuning. Gradients are clipped to global norm 1.
  """

  def __init__(self, kind, num_outputs, config, encoder_apply=None):
    """`encoder_apply(params, inputs) -> (features, aux)`: given, the encoder is fine-tuned."""
    if kind not in KINDS:
      raise ValueError(f'unknown probe kind {kind!r}; known: {KINDS}')
    self.kind = kind
    self.config = config
    self.head = heads.BGRUHead(num_outputs, config.hidden, per_frame=kind == 'regress')
    self._encoder_apply = encoder_apply
    optimizers = {'head': optax.adam(config.learning_rate)}
    if encoder_apply is not None:
      optimizers['encoder'] = optax.adam(config.encoder_learning_rate)
    labels = lambda params: {k: jax.tree.map(lambda _: k, v) for k, v in params.items()}
    self.tx = optax.chain(optax.clip_by_global_norm(1.0),
                          optax.multi_transform(optimizers, labels))
    self._step = jax.jit(self._train_step)
    self._outputs_jit = jax.jit(self._outputs)

  def _features(self, params, inputs, clip):
    x = jax.tree.map(lambda a: a[clip], inputs)
    if self._encoder_apply is not None:
      x = self._encoder_apply(params['encoder'], x)[0]
    return x

  def _outputs(self, params, inputs, clip, index, length):
    x = jnp.take_along_axis(self._features(params, inputs, clip), index[..., None], axis=1)
    return self.head.apply({'params': params['head']}, x, length)

  def init(self, seed, inputs, encoder_params=None):
    """Head parameters (and the encoder's, when fine-tuning) for these inputs."""
    params = {} if encoder_params is None else {'encoder': encoder_params}
    first = jax.tree.map(lambda a: jnp.asarray(a[:1]), inputs)
    x = self._features(params, first, jnp.zeros(1, jnp.int32))
    head = self.head.init(jax.random.key(seed), x, jnp.full(1, x.shape[1]))['params']
    return {**params, 'head': head}

  def _loss(self, params, inputs, batch):
    out = self._outputs(params, inputs, batch['clip'], batch['index'], batch['length'])
    if self.kind == 'classify':
      return optax.softmax_cross_entropy_with_integer_labels(out, batch['target']).mean()
    mask = (jnp.arange(out.shape[1]) < batch['length'][:, None]).astype(jnp.float32)
    cccs = [masked_ccc(out[..., k], batch['target'][..., k], mask) for k in range(out.shape[-1])]
    return 1.0 - jnp.mean(jnp.stack(cccs))

  def _train_step(self, params, opt_state, inputs, batch):
    loss, grads = jax.value_and_grad(self._loss)(params, inputs, batch)
    updates, opt_state = self.tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  def fit(self, params, train_inputs, train, val_inputs, val, seed):
    """Trains from `params`; returns (the best parameters on `val`, their score)."""
    config = self.config
    rng = np.random.default_rng(seed)
    train_inputs = jax.tree.map(jnp.asarray, train_inputs)
    opt_state = self.tx.init(params)
    best, best_score, waited = params, -np.inf, 0
    for step in range(1, config.steps + 1):
      rows = rng.integers(len(train), size=config.batch_size)
      batch = dataclasses.asdict(train.take(rows))
      params, opt_state, _ = self._step(params, opt_state, train_inputs, batch)
      if step % config.eval_every == 0 or step == config.steps:
        current = score(self.kind, self.predict(params, val_inputs, val), val)
        if current > best_score:
          best, best_score, waited = params, current, 0
        else:
          waited += 1
          if waited >= config.patience:
            break
    return best, best_score

  def predict(self, params, inputs, examples):
    """Classes [N] ('classify') or per-frame outputs [N, L, K] ('regress')."""
    size = self.config.eval_batch_size
    inputs = jax.tree.map(jnp.asarray, inputs)
    out = []
    for start in range(0, len(examples), size):
      rows = np.arange(start, min(start + size, len(examples)))
      padded = np.concatenate([rows, np.zeros(size - len(rows), rows.dtype)])
      part = examples.take(padded)
      y = self._outputs_jit(params, inputs, part.clip, part.index, part.length)
      out.append(np.asarray(y)[:len(rows)])
    out = np.concatenate(out)
    return out.argmax(-1) if self.kind == 'classify' else out

