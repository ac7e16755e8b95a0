"""Any tree of one's own videos, for audio-visual pretraining.

Every video file (.mp4 .avi .mkv .webm .mov .flv) under the manual dir is read
(hidden files and folders are not; links are followed). Labels come from the
first of these that the manual dir has:

1. AudioSet's `*_segments.csv` (three `#` header lines, then rows `YTID,
   start_seconds, end_seconds, "/m/..,/m/.."`): `eval_segments.csv` is test,
   every other (`balanced_train_segments.csv`, `unbalanced_train_segments.csv`)
   train. A row's video is the file anywhere in the tree whose name starts with
   its 11-character YTID (`YTID.mp4`, `YTID_30.000_40.000.mp4`, `YTID_30000.mp4`,
   ...; the first in sorted order if several do). A file longer than the segment
   (by over SEGMENT_SLACK_S) that does not end before the segment starts is the
   full video, and the segment is cut from it; any other file is the segment
   already. `labels` are the row's classes (indices into the sorted mids of all
   the CSVs' rows) and `label` the first. A row without its file is skipped as
   'missing'; files no row names are not read.
2. `labels.csv` (header `path,label`, paths relative to the manual dir): its
   labels; a file it does not list is unlabelled, a row without its file is
   skipped as 'missing'.
3. The folders: a file's label is the first folder of its path (below the split
   folder, if any); a file with no folder there is unlabelled.

Unlabelled files get `label` -1 and `labels` []. Label names are
`metadata['class_names']['label']` (and `['labels']`, the same list), sorted.

Splits: AudioSet's come from its CSVs (above). Otherwise, if the top level has
any of the folders `train/`, `validation/` (or `val/`), `test/`, they are the
splits, and videos outside them are skipped as 'unexpected name' (reported with
train); else every file is train. In every case, unless a validation folder
exists, validation is the train files whose relative path (AudioSet: YTID) has
a SHA-1 whose first 8 bytes, big-endian, are below VALIDATION_SHARE of 2**64:
a file's split never depends on what else the tree holds. A split with no files
is left out.

A video without an audio track is skipped ('no audio track'): this is
audio-visual data. Audio other than 16 kHz mono is resampled or down-mixed, and
the report lists that as a repair.
"""

import concurrent.futures
import csv
import dataclasses
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

from avjax.data import media
from avjax.data.builders import manual

EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.flv')
SPLIT_FOLDERS = {'train': 'train', 'validation': 'validation', 'val': 'validation', 'test': 'test'}
SPLITS = ('train', 'validation', 'test')
LABELS_CSV = 'labels.csv'
VALIDATION_SHARE = 0.1
YTID_LENGTH = 11
SEGMENT_SLACK_S = 1.0  # A file at most this much longer than its segment is the segment.


@dataclasses.dataclass(frozen=True)
class Segment:
  """A row of an AudioSet `*_segments.csv`."""
  ytid: str
  start: float
  end: float
  mids: tuple


def video_files(root):
  """Sorted '/'-separated paths, relative to `root`, of the video files under it."""
  paths = []
  for directory, folders, names in os.walk(root, followlinks=True):
    folders[:] = [f for f in folders if not f.startswith('.')]
    paths += [os.path.relpath(os.path.join(directory, name), root).replace(os.sep, '/')
              for name in names
              if name.lower().endswith(EXTENSIONS) and not name.startswith('.')]
  return sorted(paths)


def in_validation(key):
  """Whether `key` is among the VALIDATION_SHARE of keys that SHA-1 puts in validation."""
  digest = hashlib.sha1(key.encode()).digest()
  return int.from_bytes(digest[:8], 'big') < VALIDATION_SHARE * 2**64


def split_folders(root):
  """The split folders (train, validation, val, test) at the top of `root`."""
  return tuple(f for f in SPLIT_FOLDERS if os.path.isdir(os.path.join(root, f)))


def split_of(path, folders):
  """(split, path below the split folder) of a file; split None if outside `folders`."""
  top, _, below = path.partition('/')
  if not folders:
    split, below = 'train', path
  elif top in folders and below:
    split = SPLIT_FOLDERS[top]
  else:
    return None, path
  if split == 'train' and 'validation' not in {SPLIT_FOLDERS[f] for f in folders}:
    split = 'validation' if in_validation(path) else 'train'
  return split, below


def folder_label(below):
  """The first folder of a path below its split folder (None: none)."""
  folder, _, rest = below.partition('/')
  return folder if rest else None


def read_labels(path):
  """{relative path: label or None} of a `labels.csv` (header `path,label`)."""
  with open(path, newline='') as f:
    return {os.path.normpath(row['path']).replace(os.sep, '/'): row['label'].strip() or None
            for row in csv.DictReader(f, skipinitialspace=True)}


def read_segments(path):
  """The Segments of an AudioSet CSV, and a Broken for each row that does not parse."""
  name = os.path.basename(path)
  with open(path, newline='') as f:
    lines = [(n, line) for n, line in enumerate(f, 1) if line.strip() and line[0] != '#']
  rows = []
  for n, line in lines:
    row = next(csv.reader([line], skipinitialspace=True))
    try:
      mids = tuple(m.strip() for m in ','.join(row[3:]).split(',') if m.strip())
      rows.append(Segment(row[0].strip(), float(row[1]), float(row[2]), mids))
    except (IndexError, ValueError):
      rows.append(manual.Broken(f'{name} line {n}', 'bad row', line.strip()))
  return rows


def segment_split(csv_name):
  return 'test' if csv_name.startswith('eval') else 'train'


def cut(segment, seconds):
  """(start, duration) to read from a file of `seconds` for `segment`: (None, None) if the
  file is the segment already."""
  length = segment.end - segment.start
  if seconds is not None and seconds > length + SEGMENT_SLACK_S and seconds > segment.start:
    return segment.start, length
  return None, None


def _labels(ids):
  return dict(label=np.int32(ids[0] if ids else -1), labels=np.array(ids, np.int32))


def _durations(root, paths):
  """{path: seconds in its header, or the Broken of a file that cannot be probed}."""
  def duration(path):
    try:
      return media.probe(os.path.join(root, path)).duration
    except media.MediaError as e:
      return manual.Broken(path, e.kind, e.detail)
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    return dict(zip(paths, pool.map(duration, paths)))


def audioset_items(root, files, csv_names):
  """({split: [Item or Broken]}, label names) of the rows of AudioSet CSVs."""
  by_ytid = {}
  for path in files:
    stem = os.path.splitext(os.path.basename(path))[0]
    if len(stem) >= YTID_LENGTH:
      by_ytid.setdefault(stem[:YTID_LENGTH], path)
  rows = [(name, row) for name in csv_names for row in read_segments(os.path.join(root, name))]
  names = sorted({m for _, row in rows if isinstance(row, Segment) for m in row.mids})
  ids = {m: i for i, m in enumerate(names)}
  durations = _durations(root, sorted({by_ytid[row.ytid] for _, row in rows
                                        if isinstance(row, Segment) and row.ytid in by_ytid}))
  splits = {}
  for name, row in rows:
    split = segment_split(name)
    if isinstance(row, manual.Broken):
      splits.setdefault(split, []).append(row)
      continue
    if split == 'train' and in_validation(row.ytid):
      split = 'validation'
    path = by_ytid.get(row.ytid)
    seconds = durations.get(path)
    if path is None:
      item = manual.Broken(row.ytid, 'missing', f'{name}: no file named {row.ytid}*')
    elif isinstance(seconds, manual.Broken):
      item = seconds
    else:
      start, duration = cut(row, seconds)
      item = manual.Item(path, _labels([ids[m] for m in row.mids]), start, duration)
    splits.setdefault(split, []).append(item)
  return splits, names


def folder_items(root, files, labels=None):
  """({split: [Item or Broken]}, label names) of files labelled by `labels` ({path: label},
  from labels.csv) or, if None, by their folders."""
  folders = split_folders(root)
  listed = {}
  for path in files:
    split, below = split_of(path, folders)
    label = labels.get(path) if labels is not None else folder_label(below)
    listed[path] = (split, label if split else None)
  names = sorted({label for _, label in listed.values() if label is not None}
                 | {label for label in (labels or {}).values() if label is not None})
  ids = {name: i for i, name in enumerate(names)}
  splits = {}
  for path, (split, label) in listed.items():
    if split is None:
      item = manual.Broken(path, 'unexpected name', 'outside the split folders '
                           'train/, validation/ (val/), test/')
    else:
      item = manual.Item(path, _labels([] if label is None else [ids[label]]))
    splits.setdefault(split or 'train', []).append(item)
  for path in sorted(set(labels or {}) - set(listed)):
    splits.setdefault(split_of(path, folders)[0] or 'train', []).append(
        manual.Broken(path, 'missing', f'listed in {LABELS_CSV}, not a video file here'))
  return splits, names


class VideoFolder(manual.ManualBuilder):
  """A tree of one's own videos (or an AudioSet download), labelled by folders, a
  labels.csv or AudioSet's segment CSVs."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = manual.frame_size_configs()
  HOMEPAGE = 'https://research.google.com/audioset/download.html'
  LAYOUT = """
  cats/0001.mp4, dogs/0002.mkv, ...        any tree of .mp4 .avi .mkv .webm .mov .flv files
                                           (label: the first folder; no folder: unlabelled)
  train/cats/0001.mp4, val/..., test/...   (optional split folders)
  labels.csv                               (optional: header path,label; paths from here)
  or AudioSet: balanced_train_segments.csv, unbalanced_train_segments.csv, eval_segments.csv
  beside the videos, each named for its YouTube id (--PJHxphWEs_30000.mp4 or the like)"""

  def _label_features(self):
    return {'label': tfds.features.Scalar(dtype=np.int32), 'labels': manual.sequence()}

  def _items(self, root):
    files = video_files(root)
    if not files:
      raise manual.ManualDownloadError(
          f'{self.name}: no video files ({" ".join(EXTENSIONS)}) under the manual dir {root}; '
          f'{self.manual_instructions()}')
    csv_names = sorted(n for n in os.listdir(root) if n.endswith('_segments.csv'))
    labels_csv = os.path.join(root, LABELS_CSV)
    if csv_names:
      splits, names = audioset_items(root, files, csv_names)
    elif os.path.exists(labels_csv):
      splits, names = folder_items(root, files, read_labels(labels_csv))
    else:
      splits, names = folder_items(root, files)
    self.info.metadata['class_names'] = {'label': names, 'labels': names}
    order = lambda item: (item.path, getattr(item, 'start', None) or 0.0)
    return {split: sorted(splits[split], key=order) for split in SPLITS if split in splits}
