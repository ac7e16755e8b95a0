"""Softmax classification loss and metrics, shared by the supervised tasks (action, speaker)."""

import jax.numpy as jnp
import optax


def class_metrics(logits, labels):
  """(mean softmax cross-entropy, {'loss', 'accuracy'}) of logits [B, C], int labels [B]."""
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, {'loss': loss, 'accuracy': (logits.argmax(-1) == labels).mean()}
