"""Another record of the same track or speaker for every example: the dataset-level
join behind recon's `still='other_clip'`.

  keys = group_keys(info.features)           # ('track', 'speaker'): those it has
  columns = read_columns(load(keys), keys)   # every record read once
  source = WithPartner(source, load(('video', 'mouth_box')), partners(columns, seed),
                       prefix='reference_')

`load(features)` gives one split's source with those features, record for record
the source being joined (the same split, the same subset). A data source sees
record indices, not epochs, so a record's partner is fixed for a seed; what a task
takes from it (a frame) it draws itself, anew every epoch.
"""

import numpy as np

# A partner shares the first of these that it can: the same track (a session or
# video: its background, lighting and pose), else the same speaker.
GROUP_KEYS = ('track', 'speaker')


def group_keys(features):
  """The GROUP_KEYS among `features` (a dataset's feature names), in order."""
  return tuple(k for k in GROUP_KEYS if k in features)


def read_columns(source, keys):
  """The `keys` of every record of `source`: one array [N] a key. Every record is read
  once, whole (array_record): 15 ms for a 680 kB avsynth heads record, measured on a
  loaded 2-core machine; the time grows with the dataset."""
  rows = np.array([[record[k] for k in keys] for record in map(source.__getitem__,
                                                                range(len(source)))])
  return list(rows.reshape(len(source), len(keys)).T)


def partners(columns, seed):
  """For each record i, the index of another record that shares i's value in the first
  of `columns` (arrays [N], in order of preference) where i has company; i itself
  where it has none. Drawn uniformly among those, the same for the same seed."""
  n = len(columns[0])
  u = np.random.default_rng(seed).random(n)
  found = np.full(n, -1)
  for column in columns:
    found = np.where(found < 0, _other_member(np.asarray(column), u), found)
  return np.where(found < 0, np.arange(n), found)


def _other_member(column, u):
  """For each record, the record among the others of its `column` value at quantile
  u [N] in [0, 1) of them (in record order); -1 for one alone."""
  n = len(column)
  _, group, counts = np.unique(column, return_inverse=True, return_counts=True)
  group = group.reshape(-1)
  members = np.argsort(group, kind='stable')  # Records, group by group.
  starts = (np.cumsum(counts) - counts)[group]
  rank = np.empty(n, int)
  rank[members] = np.arange(n) - starts[members]  # Each record's place in its group.
  others = counts[group] - 1
  k = np.minimum((u * others).astype(int), np.maximum(others - 1, 0))
  k += k >= rank  # Skips the record itself.
  return np.where(others > 0, members[np.minimum(starts + k, n - 1)], -1)


class WithPartner:
  """The records of `source`, each with the features of its partner record of
  `partner_source` (record `partners[i]`) added as `prefix + key` (but `path`); a
  data source."""

  def __init__(self, source, partner_source, partners_, prefix):
    if len(partner_source) != len(source) or len(partners_) != len(source):
      raise ValueError(f'a source of {len(source)} records, its partner source of '
                       f'{len(partner_source)} and {len(partners_)} partners')
    self._source, self._partner_source = source, partner_source
    self._partners, self._prefix = np.asarray(partners_), prefix

  def __len__(self):
    return len(self._source)

  def __getitem__(self, i):
    example = dict(self._source[i])
    partner = self._partner_source[int(self._partners[i])]
    example.update({self._prefix + k: v for k, v in partner.items() if k != 'path'})
    return example
