"""Speaker verification and identification metrics on numpy arrays.

Verification scores trials: pairs of utterances, label 1 (target: same
speaker) or 0 (non-target). A trial is accepted when its score is >= the
threshold; FAR is the fraction of non-targets accepted, FRR the fraction of
targets rejected. The operating points are those of every distinct score
value as threshold (trials with equal scores are accepted or rejected
together, as in scikit-learn's `roc_curve`), plus the point that rejects
everything, whose threshold is the next float above the highest score.

The avsynth `heads` builder ships its trials as `builder.info.metadata['trials']`,
rows `(label, test_index_a, test_index_b)`: `labels, a, b = np.asarray(rows).T`
and `cosine_scores(embeddings[a], embeddings[b])` score them.
"""

import numpy as np


def _check_trials(scores, labels):
  """float64 scores and bool target flags of 1D trials; ValueError if unusable."""
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
  if scores.ndim != 1 or scores.shape != labels.shape:
    raise ValueError(f'need 1D scores and labels of one shape, got {scores.shape} '
                     f'and {labels.shape}')
  if not np.all(np.isfinite(scores)):
    raise ValueError(f'{np.sum(~np.isfinite(scores))} scores are not finite')
  if not np.all((labels == 0) | (labels == 1)):
    raise ValueError(f'labels must be 0 or 1, got {np.unique(labels).tolist()}')
  is_target = labels == 1
  if is_target.all() or not is_target.any():
    raise ValueError('need both target (1) and non-target (0) trials')
  return scores, is_target


def _operating_points(scores, labels):
  """(far, frr, thresholds), thresholds increasing: every distinct score, then reject-all."""
  scores, is_target = _check_trials(scores, labels)
  order = np.argsort(scores)
  scores, is_target = scores[order], is_target[order]
  first = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])  # Start of each distinct score.
  num_targets = int(is_target.sum())
  num_nontargets = len(scores) - num_targets
  below = np.r_[first, len(scores)]  # Trials under each threshold.
  targets_below = np.r_[0, np.cumsum(is_target)][below]
  nontargets_below = below - targets_below
  far = (num_nontargets - nontargets_below) / num_nontargets
  frr = targets_below / num_targets
  thresholds = np.r_[scores[first], np.nextafter(scores[-1], np.inf)]
  return far, frr, thresholds


def det_curve(scores, labels):
  """(far, frr) at every operating point, by increasing threshold: from (1, 0) to (0, 1).

  For a DET plot on normal-deviate axes, drop or clip the 0 and 1 ends.
  """
  far, frr, _ = _operating_points(scores, labels)
  return far, frr


def eer(scores, labels):
  """Equal error rate and its threshold: (eer, threshold).

  FAR - FRR falls strictly from 1 to -1 over the operating points; the EER is
  where the straight segment between the last point with FAR >= FRR and the
  next one crosses FAR = FRR. The threshold is interpolated between theirs by
  the same fraction. Tied scores form one operating point, so a tie of
  targets and non-targets gives a segment, not a step: all scores equal
  gives an EER of 0.5. Raises ValueError if a class is missing or a score is
  not finite.
  """
  far, frr, thresholds = _operating_points(scores, labels)
  gap = far - frr
  i = np.flatnonzero(gap >= 0)[-1]  # gap[0] = 1 and gap[-1] = -1: i + 1 exists.
  fraction = gap[i] / (gap[i] - gap[i + 1])
  rate = frr[i] + fraction * (frr[i + 1] - frr[i])
  threshold = thresholds[i] + fraction * (thresholds[i + 1] - thresholds[i])
  return float(rate), float(threshold)


def min_dcf(scores, labels, p_target=0.01, c_miss=1.0, c_fa=1.0):
  """Minimum normalised detection cost and its threshold: (min_dcf, threshold).

  DCF = c_miss p_target FRR + c_fa (1 - p_target) FAR, divided by
  min(c_miss p_target, c_fa (1 - p_target)), the cost of the better trivial
  system (accept all or reject all), as in NIST SRE and VoxSRC; so min_dcf
  <= 1. The default p_target = 0.01 with unit costs is VoxSRC's. The minimum
  is over the operating points; on ties the lowest threshold wins.
  """
  if not 0 < p_target < 1 or c_miss <= 0 or c_fa <= 0:
    raise ValueError(f'need 0 < p_target < 1 and positive costs, got p_target={p_target}, '
                     f'c_miss={c_miss}, c_fa={c_fa}')
  far, frr, thresholds = _operating_points(scores, labels)
  cost = c_miss * p_target * frr + c_fa * (1 - p_target) * far
  cost /= min(c_miss * p_target, c_fa * (1 - p_target))
  i = np.argmin(cost)
  return float(cost[i]), float(thresholds[i])


def _unit(x):
  """x / its L2 norm over the last axis; ValueError for a zero vector."""
  x = np.asarray(x, np.float64)
  norm = np.linalg.norm(x, axis=-1, keepdims=True)
  if np.any(norm == 0):
    raise ValueError('cannot normalise a zero embedding')
  return x / norm


def cosine_scores(embeddings_a, embeddings_b):
  """Cosine similarity [N] of paired rows of two [N, D] arrays."""
  a, b = np.asarray(embeddings_a), np.asarray(embeddings_b)
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(f'need two [N, D] arrays of one shape, got {a.shape} and {b.shape}')
  return np.sum(_unit(a) * _unit(b), axis=-1)


def average_crops(embeddings):
  """[N, crops, D] -> [N, D]: the unit-norm mean of each utterance's unit-norm crops."""
  embeddings = np.asarray(embeddings)
  if embeddings.ndim != 3:
    raise ValueError(f'need [N, crops, D] embeddings, got shape {embeddings.shape}')
  return _unit(_unit(embeddings).mean(axis=1))


def read_trials(path):
  """A VoxCeleb1-format trial list: (labels [N] int, paths_a, paths_b).

  One trial a line, `label path1 path2`, label 1 for the same speaker and 0
  otherwise; blank lines are skipped. A malformed line raises ValueError
  naming the file and line number.
  """
  labels, paths_a, paths_b = [], [], []
  with open(path) as f:
    for number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != 3:
        raise ValueError(f'{path}:{number}: expected "label path1 path2", '
                         f'got {len(fields)} fields: {line.strip()!r}')
      if fields[0] not in ('0', '1'):
        raise ValueError(f'{path}:{number}: label must be 0 or 1, got {fields[0]!r}')
      labels.append(int(fields[0]))
      paths_a.append(fields[1])
      paths_b.append(fields[2])
  if not labels:
    raise ValueError(f'{path}: no trials')
  return np.array(labels, np.int64), paths_a, paths_b


def identification_accuracy(embeddings, speakers, enrol_mask):
  """Closed-set speaker identification accuracy.

  Each speaker's model is the mean of its unit-norm enrolment embeddings
  (rows where `enrol_mask` is true); every other row is assigned the speaker
  whose model has the highest cosine with it (the lowest id on ties).
  Every test speaker must be enrolled.
  """
  embeddings = np.asarray(embeddings)
  speakers, enrol_mask = np.asarray(speakers), np.asarray(enrol_mask, bool)
  if embeddings.ndim != 2 or not speakers.shape == enrol_mask.shape == embeddings.shape[:1]:
    raise ValueError(f'need [N, D] embeddings and [N] speakers and enrol_mask, got '
                     f'{embeddings.shape}, {speakers.shape}, {enrol_mask.shape}')
  embeddings, test = _unit(embeddings), ~enrol_mask
  enrolled = np.unique(speakers[enrol_mask])
  unknown = np.setdiff1d(speakers[test], enrolled)
  if not test.any():
    raise ValueError('no test rows: enrol_mask is all true')
  if unknown.size:
    raise ValueError(f'test speakers {unknown.tolist()} have no enrolment rows')
  models = np.stack([embeddings[enrol_mask & (speakers == s)].mean(axis=0) for s in enrolled])
  similarity = embeddings[test] @ _unit(models).T
  return float(np.mean(enrolled[np.argmax(similarity, axis=1)] == speakers[test]))
