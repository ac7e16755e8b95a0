"""Downstream metrics on numpy arrays: accuracy, unweighted average recall, CCC."""

import numpy as np


def accuracy(labels, predictions):
  """Fraction of `predictions` equal to `labels`."""
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  return float(np.mean(labels == predictions))


def uar(labels, predictions):
  """Unweighted average recall: the mean over the classes in `labels` of their recall.

  Classes that are only predicted do not count (scikit-learn's macro recall
  with `labels=np.unique(labels)`).
  """
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  return float(np.mean([np.mean(predictions[labels == c] == c) for c in np.unique(labels)]))


def ccc(targets, predictions):
  """Concordance correlation coefficient of two 1D series (population moments).

  2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2); 1 for identical
  series, including identical constants.
  """
  x = np.asarray(targets, np.float64).ravel()
  y = np.asarray(predictions, np.float64).ravel()
  mx, my = x.mean(), y.mean()
  denominator = x.var() + y.var() + (mx - my) ** 2
  if denominator == 0:
    return 1.0
  return float(2.0 * np.mean((x - mx) * (y - my)) / denominator)
